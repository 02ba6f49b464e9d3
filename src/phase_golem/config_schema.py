"""The shape of `phase-golem.toml` as pydantic models (parsing only; rules are in config.py).

Phase Golem ignores unknown keys in [project], [guardrails] and [execution] and rejects
them in [agent] and phase tables; our own new tables reject unknown keys too
(config_checks.py reports them, with "did you mean"). Every number is finite and bounded:
the limits below are far beyond any sensible setting and well inside what timers,
dates and SQLite integers can hold.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from phase_golem.domain.errors import ParseError
from phase_golem.domain.items import Level, Size


def _size(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return Size.parse(value, what="size")
        except ParseError as exc:
            raise ValueError(str(exc)) from None
    return value


def _level(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return Level.parse(value, what="level")
        except ParseError as exc:
            raise ValueError(str(exc)) from None
    return value


MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
WEEK = 7 * DAY
YEAR = 366 * DAY


def bounded(low: float, high: float, *, inclusive_low: bool = False) -> Any:
    """A number in (low, high] — or [low, high] — for `Annotated[float | int, …]`."""
    if inclusive_low:
        return Field(ge=low, le=high)
    return Field(gt=low, le=high)


Seconds = Annotated[float, bounded(0, WEEK)]
Count = Annotated[int, bounded(1, 10_000, inclusive_low=True)]
Retries = Annotated[int, bounded(0, 100, inclusive_low=True)]
Dollars = Annotated[float, bounded(0, 1_000_000)]
EnvNames = list[Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_*?]+$")]]


class Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ProjectSection(Lenient):
    prefix: str = "WRK"
    backlog_path: str | None = None


class GuardrailsSection(Lenient):
    max_size: Size = Size.MEDIUM
    max_complexity: Level = Level.MEDIUM
    max_risk: Level = Level.LOW

    _size = field_validator("max_size", mode="before")(_size)
    _levels = field_validator("max_complexity", "max_risk", mode="before")(_level)


class BackoffSection(Strict):
    base_seconds: Annotated[float, bounded(0, DAY)] = 10.0
    factor: Annotated[float, bounded(1, 100, inclusive_low=True)] = 2.0
    max_seconds: Annotated[float, bounded(0, WEEK)] = 600.0
    max_transient: Count = 5


class WakeSection(Strict):
    min_seconds: Annotated[float, bounded(0, YEAR, inclusive_low=True)] = 30.0
    max_seconds: Annotated[float, bounded(0, YEAR)] = 86400.0


class ExecutionSection(Lenient):
    phase_timeout_minutes: Annotated[float, bounded(0, WEEK / MINUTE)] = 30.0
    max_retries: Retries = 2
    default_phase_cap: Annotated[int, bounded(1, 1_000_000, inclusive_low=True)] = 100
    # Below 1 is reported by the rules in Phase Golem's words; the bound is ours.
    max_wip: Annotated[int, Field(le=10_000)] = 1
    max_concurrent: Annotated[int, Field(le=1_000)] = 1
    isolation: str = "shared"
    merge_strategy: str = "merge-commit"
    lease_seconds: Annotated[float, bounded(0, DAY)] = 60.0
    reconcile_timeout_seconds: Annotated[float, bounded(0, DAY)] = 60.0
    backoff: BackoffSection = BackoffSection()
    wake: WakeSection = WakeSection()
    max_result_bytes: Annotated[int, bounded(1024, 256 << 20, inclusive_low=True)] = 1_048_576
    max_triage_attempts: Annotated[int, bounded(1, 100, inclusive_low=True)] = 3
    # How many follow-ups one result may create; the rest are reported, not created.
    max_follow_ups: Annotated[int, bounded(0, 10_000, inclusive_low=True)] = 20
    # The git remote item branches and merges go through (default with PostgreSQL: origin).
    remote: str | None = None


class AgentSection(Strict):
    cli: str = "claude"
    model: str | None = None
    command: str | None = None
    scenario: str | None = None
    permission: str = "edit"
    # More environment variables agents may see (names or globs: "NPM_TOKEN", "AWS_*").
    pass_env: EnvNames = []


class PhaseTable(Strict):
    name: str
    workflows: list[str] = []
    is_destructive: bool = Field(validation_alias=AliasChoices("is_destructive", "destructive"))
    staleness: str = "ignore"
    side_effect: bool = False
    reconcile: str | None = None
    approval: str = "none"
    agent: str | None = None
    model: str | None = None
    timeout_seconds: Seconds | None = None
    max_retries: Retries | None = None


class PipelineTable(Strict):
    pre_phases: list[PhaseTable] = []
    phases: list[PhaseTable] = []


class StorageSection(Strict):
    url: str = "sqlite:///.phase-golem/state.db"


class BudgetSection(Strict):
    max_cost_usd_per_run: Dollars | None = None
    max_cost_usd_per_item: Dollars | None = None


class RedactionSection(Strict):
    # Environment variables whose values are secrets too (names or globs), beyond those
    # whose names say so (…KEY, …TOKEN, …SECRET, …PASSWORD, …WEBHOOK) and credential URLs.
    env: EnvNames = []


class ServeSection(Strict):
    # Let Prometheus scrape /metrics (and scripts read /api/v1/state) without the token.
    metrics_public: bool = False
    # Where people reach the dashboard: notifications link to /items/ID under it.
    public_url: str | None = None


class SourceTable(Strict):
    name: str
    inbox: str | None = None
    command: str | None = None
    github: str | None = None
    labels: list[str] = []
    limit: int = Field(default=1000, ge=1, le=100_000)  # github: issues per run (gh pages)
    every: str | float | None = None
    cron: str | None = None
    timezone: str | None = None
    timeout_seconds: float = Field(default=60.0, gt=0, le=86400)
    # The defaults of the items the source makes.
    pipeline: str | None = None
    tags: list[str] = []
    size: str | None = None
    write_back: bool = False  # DESIGN §11/§12: accepted, not yet acted on


class NotifyTable(Strict):
    name: str
    webhook: str | None = None
    webhook_env: str | None = None
    command: str | None = None
    on: list[str] = ["*"]
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    max_attempts: int = Field(default=10, ge=1, le=100)


class ConfigFile(Lenient):
    project: ProjectSection = ProjectSection()
    guardrails: GuardrailsSection = GuardrailsSection()
    execution: ExecutionSection = ExecutionSection()
    agent: AgentSection = AgentSection()
    pipelines: dict[str, PipelineTable] = {}
    storage: StorageSection = StorageSection()
    budget: BudgetSection = BudgetSection()
    sources: list[SourceTable] = []
    redaction: RedactionSection = RedactionSection()
    notify: list[NotifyTable] = []
    serve: ServeSection = ServeSection()
