"""`[[sources]]` tables → validated `SourceConfig`s (DESIGN §11).

Every problem is one entry of the config's problem list, so a bad `every`, a cron that
never fires, a source with two kinds or none, a duplicate name, a command that is not
there and a `github` value that is not `owner/name` are all reported together, before
anything runs. Only a config with sources pays for croniter.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from pathlib import Path

from phase_golem.config_checks import Checker
from phase_golem.config_schema import SourceTable
from phase_golem.domain.items import Size, normalize_tags
from phase_golem.domain.sources import (
    SourceConfig,
    cron_problem,
    github_problem,
)


def command_problem(command: str, base_dir: Path) -> str | None:
    """Why the first word of a source's command cannot be run from `base_dir`, or None."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return f"cannot be split into words: {exc}"
    if not argv:
        return "must not be empty"
    program = argv[0]
    if "/" in program:
        path = Path(program) if Path(program).is_absolute() else base_dir / program
        if not path.is_file():
            return f"command {program!r} not found (looked for {path})"
        if not path.stat().st_mode & 0o111:
            return f"command {program!r} is not executable"
        return None
    if shutil.which(program) is None:
        return f"command {program!r} not found on PATH"
    return None


def build_sources(
    check: Checker,
    tables: list[SourceTable],
    parse_duration: Callable[[str | float], float],
    pipelines: Collection[str],
    base_dir: Path | None,
    now: datetime | None = None,
) -> tuple[SourceConfig, ...]:
    sources: list[SourceConfig] = []
    names: set[str] = set()
    moment = now or datetime.now(UTC)
    for index, table in enumerate(tables):
        where = f"sources[{index}]"
        if check.name(f"{where}.name", table.name) and table.name in names:
            check.problems.append(f"{where}.name: {table.name!r} is used twice")
        names.add(table.name)
        kinds = [k for k in ("inbox", "command", "github") if getattr(table, k) is not None]
        if len(kinds) != 1:
            given = f" (given: {', '.join(kinds)})" if kinds else ""
            check.problems.append(
                f"{where}: give exactly one of `inbox` or `command` or `github`{given}"
            )
        if (table.every is None) == (table.cron is None):
            check.problems.append(f"{where}: give exactly one of `every` or `cron`")
        every: float | None = None
        if table.every is not None:
            try:
                every = parse_duration(table.every)
            except ValueError as exc:
                check.problems.append(f"{where}.every: {exc}")
        if table.cron is not None:
            problem = cron_problem(table.cron, table.timezone, moment)
            if problem is not None:
                check.problems.append(f"{where}.cron: {problem}")
        elif table.timezone is not None:
            check.problems.append(f"{where}.timezone: only a `cron` schedule has a timezone")
        if table.github is not None:
            problem = github_problem(table.github)
            if problem is not None:
                check.problems.append(f"{where}.github: {problem}")
        elif table.labels:
            check.problems.append(f"{where}.labels: only a `github` source has labels")
        if table.command is not None and base_dir is not None:
            problem = command_problem(table.command, base_dir)
            if problem is not None:
                check.problems.append(f"{where}.command: {problem}")
        if table.pipeline is not None and table.pipeline not in pipelines:
            known = ", ".join(sorted(pipelines))
            check.problems.append(
                f"{where}.pipeline: unknown pipeline {table.pipeline!r} (configured: {known})"
            )
        size = check.enum(f"{where}.size", table.size, Size) if table.size else None
        for label in table.labels:
            check.text(f"{where}.labels", label)
        sources.append(
            SourceConfig(
                name=table.name,
                inbox=table.inbox,
                command=table.command,
                every_seconds=every,
                cron=table.cron,
                github=table.github,
                labels=tuple(table.labels),
                timezone=table.timezone,
                timeout_seconds=table.timeout_seconds,
                pipeline_type=table.pipeline,
                tags=normalize_tags(table.tags),
                size=size,
                limit=table.limit,
            )
        )
    return tuple(sources)
