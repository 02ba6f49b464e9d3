"""`phase-golem.toml` → a validated, immutable `Settings` (DESIGN §5).

Every problem in a file is gathered and reported together, each with its dotted
key, so a user fixes a config in one pass.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from phase_golem.config_checks import (
    BUILTIN_PREFIX,
    RESERVED_PHASE_NAMES,
    Checker,
    builtin_path_problem,
    key_problems,
    place,
    shown,
    storage_path_problem,
    storage_url_problem,
)
from phase_golem.config_notify import notify_sinks, validate_notify_tables
from phase_golem.config_schema import YEAR, ConfigFile, PhaseTable, PipelineTable, SourceTable
from phase_golem.config_source import (
    ConfigError,
    ConfigSource,
    read_config_source,
)
from phase_golem.config_sources import build_sources
from phase_golem.config_template import render_config_template
from phase_golem.domain.guardrails import Guardrails
from phase_golem.domain.pipelines import (
    AgentCli,
    AgentConfig,
    ApprovalGate,
    BackoffConfig,
    BudgetConfig,
    ExecutionConfig,
    Isolation,
    MergeStrategy,
    Permission,
    PhaseConfig,
    PipelineConfig,
    ProjectConfig,
    RedactionConfig,
    ServeConfig,
    Settings,
    Staleness,
    StorageConfig,
    WakeConfig,
)
from phase_golem.domain.templates import (
    COMMAND_PLACEHOLDERS,
    RECONCILE_PLACEHOLDERS,
)

__all__ = [
    "BUILTIN_PREFIX",
    "ConfigError",
    "LoadedConfig",
    "default_pipelines",
    "load_config",
    "parse_duration",
    "render_config_template",
    "resolve_workflow_path",
]

_PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")
_REMOTE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_DURATION_SECONDS = YEAR


@dataclass(frozen=True)
class LoadedConfig:
    settings: Settings
    path: Path | None
    base_dir: Path
    # One line each: unknown keys in Phase Golem's own tables (ignored, as it does).
    warnings: tuple[str, ...] = ()


def _builtin(pipeline: str, phase: str) -> tuple[str, ...]:
    return (f"{BUILTIN_PREFIX}{pipeline}/{phase}.md",)


def default_pipelines() -> dict[str, PipelineConfig]:
    """`feature` and `simple`, with our own workflow prompts shipped as package data."""
    feature = PipelineConfig(
        name="feature",
        pre_phases=(PhaseConfig("research", False, _builtin("feature", "research")),),
        phases=tuple(
            PhaseConfig(name, name == "build", _builtin("feature", name))
            for name in ("prd", "design", "spec", "build", "review")
        ),
    )
    simple = PipelineConfig(
        name="simple",
        phases=tuple(
            PhaseConfig(name, name == "build", _builtin("simple", name))
            for name in ("plan", "build", "review")
        ),
    )
    return {"feature": feature, "simple": simple}


MERGE_PHASE = PhaseConfig("merge", True, side_effect=True, agent=AgentCli.MERGE)


def with_merge_phase(pipelines: dict[str, PipelineConfig]) -> dict[str, PipelineConfig]:
    """Worktree isolation ships the default pipelines with a final `merge` phase."""
    return {
        name: PipelineConfig(name, (*pipeline.phases, MERGE_PHASE), pipeline.pre_phases)
        for name, pipeline in pipelines.items()
    }


def _worktree_pipelines(
    problems: list[str], pipelines: dict[str, PipelineConfig]
) -> dict[str, PipelineConfig]:
    """In worktree isolation an item's work reaches the base branch only through a merge
    phase: the built-in pipelines (also as `init` writes them out) get one; any other
    pipeline without one is an error, or its items would end done with their work stranded."""
    builtin = default_pipelines()
    kept = {}
    for name, pipeline in pipelines.items():
        if any(p.agent is AgentCli.MERGE for p in pipeline.pre_phases + pipeline.phases):
            kept[name] = pipeline
        elif builtin.get(name) == pipeline:
            kept[name] = with_merge_phase({name: pipeline})[name]
        else:
            kept[name] = pipeline
            problems.append(
                f'pipelines.{name}: isolation = "worktree" needs a last phase that merges the '
                "item's branch, or its work never reaches the base branch: add "
                '{ name = "merge", is_destructive = true, side_effect = true, agent = "merge" }'
            )
    return kept


def resolve_workflow_path(workflow: str, base_dir: Path) -> Path:
    if workflow.startswith(BUILTIN_PREFIX):
        problem = builtin_path_problem(workflow)
        if problem is not None:
            raise ConfigError(problem)
        relative = workflow.removeprefix(BUILTIN_PREFIX)
        root = resources.files("phase_golem") / "prompts" / "workflows"
        return Path(str(root / relative))
    return base_dir / workflow


def parse_duration(value: str | float) -> float:
    """`10s`, `5m`, `1h30m`, `250ms` or a bare number of seconds → seconds (> 0)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):
            seconds = float(text)
        else:
            parts = _DURATION_PART.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ValueError(f"invalid duration {value!r} (use e.g. 10s, 5m, 1h30m)")
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"duration must be positive and finite (got {value!r})")
    if seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"duration {value!r} is longer than a year")
    return seconds


def _location(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for piece in loc:
        if isinstance(piece, int):
            parts.append(f"[{piece}]")
        else:
            parts.append(("." if parts else "") + str(piece))
    return "".join(parts)


def _pydantic_problems(error: ValidationError, prefix: tuple[Any, ...]) -> list[str]:
    problems = []
    for detail in error.errors():
        where = _location(prefix + tuple(detail["loc"]))
        kind = detail["type"]
        if kind == "extra_forbidden":
            continue  # config_checks.key_problems names it, with a "did you mean"
        if kind == "missing" and where.endswith("is_destructive"):
            problems.append(f"{where}: required (true or false; `destructive` also works)")
        elif kind == "missing":
            problems.append(f"{where}: required")
        else:
            message = str(detail["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {message} (got {detail.get('input')!r})")
    return problems


def _validate_sections(data: dict[str, Any]) -> tuple[ConfigFile, list[str]]:
    """Validate each table on its own, so one bad table does not hide another's problems."""
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key, field in ConfigFile.model_fields.items():
        if key not in data or key in ("pipelines", "sources", "notify"):
            continue
        table = data[key]
        model = field.annotation
        # Drop the keys that failed and validate the rest again, so the remaining
        # rules still run on the good keys instead of on defaults.
        while True:
            try:
                values[key] = model.model_validate(table)  # type: ignore[union-attr]
                break
            except ValidationError as exc:
                problems += _pydantic_problems(exc, (key,))
                bad = {e["loc"][0] for e in exc.errors() if e["loc"]}
                if not isinstance(table, dict) or not bad & set(table):
                    break
                table = {k: v for k, v in table.items() if k not in bad}
    pipelines = data.get("pipelines", {})
    if isinstance(pipelines, dict):
        good: dict[str, PipelineTable] = {}
        for name, table in pipelines.items():
            try:
                good[name] = PipelineTable.model_validate(table)
            except ValidationError as exc:
                problems += _pydantic_problems(exc, ("pipelines", name))
        values["pipelines"] = good
    else:
        problems.append("pipelines: must be a table of pipelines")
    sources = data.get("sources", [])
    if isinstance(sources, list):
        kept: list[SourceTable] = []
        for index, table in enumerate(sources):
            try:
                kept.append(SourceTable.model_validate(table))
            except ValidationError as exc:
                problems += _pydantic_problems(exc, ("sources", index))
        values["sources"] = kept
    else:
        problems.append("sources: must be an array of tables ([[sources]])")
    if "notify" in data:
        values["notify"] = validate_notify_tables(data["notify"], problems, _pydantic_problems)
    return ConfigFile(**values), problems


def _phase(check: Checker, where: str, table: PhaseTable) -> PhaseConfig:
    if check.name(f"{where}.name", table.name.strip()) and (
        table.name.strip().lower() in RESERVED_PHASE_NAMES
    ):
        check.problems.append(
            f"{where}.name: {table.name.strip()!r} is the built-in phase every new item goes "
            "through; call yours something else"
        )
    for index, workflow in enumerate(table.workflows):
        check.workflow(f"{where}.workflows[{index}]", workflow)
    agent = check.enum(f"{where}.agent", table.agent, AgentCli) if table.agent else None
    if table.reconcile is not None:
        if not table.reconcile.strip():
            check.problems.append(f"{where}.reconcile: must not be empty when given")
        elif not table.side_effect:
            check.problems.append(f"{where}.reconcile: only a side_effect = true phase has one")
        else:
            check.template(f"{where}.reconcile", table.reconcile, RECONCILE_PLACEHOLDERS)
    return PhaseConfig(
        name=table.name.strip(),
        is_destructive=table.is_destructive,
        workflows=tuple(table.workflows),
        staleness=check.enum(f"{where}.staleness", table.staleness, Staleness) or Staleness.IGNORE,
        side_effect=table.side_effect,
        reconcile=table.reconcile,
        approval=check.enum(f"{where}.approval", table.approval, ApprovalGate) or ApprovalGate.NONE,
        agent=agent,
        model=check.model(f"{where}.model", table.model),
        timeout_seconds=table.timeout_seconds,
        max_retries=table.max_retries,
    )


def _pipelines(check: Checker, raw: ConfigFile) -> dict[str, PipelineConfig]:
    if not raw.pipelines:
        return default_pipelines()
    built: dict[str, PipelineConfig] = {}
    for name, table in raw.pipelines.items():
        where = place(f"pipelines.{name}")
        check.name(where, name)
        pre = tuple(
            _phase(check, f"{where}.pre_phases[{i}]", p) for i, p in enumerate(table.pre_phases)
        )
        main = tuple(_phase(check, f"{where}.phases[{i}]", p) for i, p in enumerate(table.phases))
        if not main:
            check.problems.append(f"{where}: needs at least one main phase")
        seen: set[str] = set()
        for phase in pre + main:
            if phase.name in seen:
                check.problems.append(f"{where}: phase name {phase.name!r} is used twice")
            seen.add(phase.name)
        for phase in pre:
            if phase.is_destructive:
                check.problems.append(
                    f"{where}.pre_phases: {phase.name!r} is destructive; pre-phases must not be"
                )
        built[name] = PipelineConfig(name=name, pre_phases=pre, phases=main)
    return built


def build_settings(raw: ConfigFile, base_dir: Path | None = None) -> tuple[Settings, list[str]]:
    """Apply Phase Golem's validation rules plus ours; returns every problem found.

    With `base_dir` (the config file's folder) source commands are looked up too."""
    check = Checker()
    execution_raw = raw.execution
    if execution_raw.max_wip < 1:
        check.problems.append(
            f"execution.max_wip: must be at least 1 (got {execution_raw.max_wip})"
        )
    if execution_raw.max_concurrent < 1:
        check.problems.append(
            f"execution.max_concurrent: must be at least 1 (got {execution_raw.max_concurrent})"
        )
    if execution_raw.backoff.max_seconds < execution_raw.backoff.base_seconds:
        check.problems.append("execution.backoff.max_seconds: must be at least base_seconds")
    if execution_raw.wake.max_seconds < execution_raw.wake.min_seconds:
        check.problems.append("execution.wake.max_seconds: must be at least min_seconds")
    if not _PREFIX_PATTERN.fullmatch(raw.project.prefix):
        check.problems.append(
            f"project.prefix: {shown(raw.project.prefix)} may use only letters, digits, "
            "'_' and '-' (at most 32)"
        )
    url = raw.storage.url
    problem = storage_url_problem(url)
    if problem is not None:
        check.problems.append(f"storage.url: {problem}")
    agent_cli = check.enum("agent.cli", raw.agent.cli, AgentCli) or AgentCli.CLAUDE
    if agent_cli is AgentCli.COMMAND and not (raw.agent.command or "").strip():
        check.problems.append('agent.command: required when agent.cli = "command"')
    elif raw.agent.command is not None and raw.agent.command.strip():
        check.template("agent.command", raw.agent.command, COMMAND_PLACEHOLDERS)
    check.text("agent.scenario", raw.agent.scenario)
    if agent_cli is AgentCli.MERGE:
        check.problems.append('agent.cli: "merge" is a phase agent only (agent = "merge")')
    agent = AgentConfig(
        cli=agent_cli,
        model=check.model("agent.model", raw.agent.model),
        command=raw.agent.command,
        scenario=raw.agent.scenario,
        permission=check.enum("agent.permission", raw.agent.permission, Permission)
        or Permission.EDIT,
        pass_env=tuple(raw.agent.pass_env),
    )
    pipelines = _pipelines(check, raw)
    if execution_raw.max_wip > 1:
        for name, pipeline in pipelines.items():
            for phase in pipeline.pre_phases + pipeline.phases:
                if phase.staleness is Staleness.BLOCK:
                    check.problems.append(
                        f'pipelines.{name}: phase {phase.name!r} has staleness = "block", '
                        f"which is not allowed with max_wip > 1 (it cascades blocks)"
                    )
    execution = ExecutionConfig(
        phase_timeout_minutes=execution_raw.phase_timeout_minutes,
        max_retries=execution_raw.max_retries,
        default_phase_cap=execution_raw.default_phase_cap,
        max_wip=execution_raw.max_wip,
        max_concurrent=execution_raw.max_concurrent,
        isolation=check.enum("execution.isolation", execution_raw.isolation, Isolation)
        or Isolation.SHARED,
        merge_strategy=check.enum(
            "execution.merge_strategy", execution_raw.merge_strategy, MergeStrategy
        )
        or MergeStrategy.MERGE_COMMIT,
        lease_seconds=execution_raw.lease_seconds,
        reconcile_timeout_seconds=execution_raw.reconcile_timeout_seconds,
        backoff=BackoffConfig(**execution_raw.backoff.model_dump()),
        wake=WakeConfig(**execution_raw.wake.model_dump()),
        max_result_bytes=execution_raw.max_result_bytes,
        max_triage_attempts=execution_raw.max_triage_attempts,
        max_follow_ups=execution_raw.max_follow_ups,
        remote=_remote(check, execution_raw.remote, url),
    )
    if execution.isolation is Isolation.WORKTREE:
        pipelines = _worktree_pipelines(check.problems, pipelines)
    elif execution.isolation is Isolation.SHARED:
        for name, pipeline in pipelines.items():
            for phase in pipeline.pre_phases + pipeline.phases:
                if phase.agent is AgentCli.MERGE:
                    check.problems.append(
                        f'pipelines.{name}: phase {phase.name!r} uses agent = "merge", '
                        'which needs [execution] isolation = "worktree"'
                    )
    settings = Settings(
        project=ProjectConfig(raw.project.prefix, raw.project.backlog_path),
        guardrails=Guardrails(
            raw.guardrails.max_size, raw.guardrails.max_complexity, raw.guardrails.max_risk
        ),
        execution=execution,
        agent=agent,
        pipelines=MappingProxyType(pipelines),
        storage=StorageConfig(url),
        budget=BudgetConfig(**raw.budget.model_dump()),
        sources=build_sources(check, raw.sources, parse_duration, pipelines, base_dir),
        redaction=RedactionConfig(env=tuple(raw.redaction.env)),
        notify=notify_sinks(check.problems, raw.notify),
        serve=ServeConfig(
            metrics_public=raw.serve.metrics_public,
            public_url=_public_url(check.problems, raw.serve.public_url),
        ),
    )
    return settings, check.problems


def _remote(check: Checker, remote: str | None, url: str) -> str | None:
    """The shared git remote: as configured, else `origin` when the store is shared."""
    if remote is None:
        return "origin" if StorageConfig(url).is_shared else None
    if not _REMOTE_PATTERN.fullmatch(remote):
        check.problems.append(
            f"execution.remote: {shown(remote)} is not a git remote name (as `git remote` lists)"
        )
        return None
    return remote


def _public_url(problems: list[str], url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        problems.append(f"serve.public_url: {url!r} is not an http(s) URL without ?query or #")
        return None
    return url.rstrip("/")


def parse_config(
    text: str, source: str, base_dir: Path | None = None
) -> tuple[Settings, tuple[str, ...]]:
    """(settings, warnings); ConfigError listing every problem of the file."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from None
    key_errors, key_warnings = key_problems(data, ConfigFile)
    raw, problems = _validate_sections(data)
    problems = key_errors + problems
    settings, rule_problems = build_settings(raw, base_dir)
    problems += rule_problems
    if not problems:
        return settings, tuple(f"{source}: {warning}" for warning in key_warnings)
    if len(problems) == 1:
        raise ConfigError(f"{source}: {problems[0]}")
    # One line, as every CLI error is; problems are separated so each stays readable.
    raise ConfigError(f"{source}: {len(problems)} problems: {'; '.join(problems)}")


def parse_config_text(text: str, source: str) -> Settings:
    return parse_config(text, source)[0]


def load_config(root: Path, config_path: Path | None = None) -> LoadedConfig:
    """Read `--config` or `ROOT/phase-golem.toml`; a missing default file means defaults."""
    return config_from_source(read_config_source(root, config_path))


def config_from_source(source: ConfigSource) -> LoadedConfig:
    """Validate a config text fully (every problem reported together)."""
    if source.path is None or source.text is None:
        return LoadedConfig(
            Settings(pipelines=MappingProxyType(default_pipelines())), None, source.base_dir
        )
    settings, warnings = parse_config(source.text, source.path.name, source.base_dir)
    problem = storage_path_problem(settings.storage.url, source.root)
    if problem is not None:
        raise ConfigError(f"{source.path.name}: storage.url: {problem}")
    return LoadedConfig(settings, source.path, source.base_dir, warnings)
