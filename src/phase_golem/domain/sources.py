"""Intake sources (DESIGN §11): what a source is, and when it runs. Pure: time is given.

A source is a producer with its own schedule. Its schedule row remembers when it runs
next; these rules decide how that row follows the configuration (a new or changed
schedule is due at once, an unchanged one keeps its time, a removed source's row goes),
where the next run falls after a success (end of the run plus the interval, or the next
cron time after now: missed ticks coalesce into that one run) and after a failure (the
agents' backoff formula, capped at the source's own interval, without moving the schedule
forward). croniter is imported only where a cron expression is looked at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from phase_golem.domain.events import Schedule
from phase_golem.domain.items import Size, format_timestamp, parse_timestamp

GITHUB_REPO = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
FAILING_AFTER = 3  # failures in a row before `source.failing` is raised (once per streak)
DEFAULT_TIMEOUT_SECONDS = 60.0
DEFAULT_GITHUB_LIMIT = 1000
# How far ahead a cron expression is searched for a firing time: one that never fires
# (30 February) is a config error, not a source that silently never runs.
CRON_HORIZON_YEARS = 8


class SourceKind(StrEnum):
    INBOX = "inbox"
    COMMAND = "command"
    GITHUB = "github"


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One `[[sources]]` table, validated (config.py builds it)."""

    name: str
    inbox: str | None = None
    command: str | None = None
    every_seconds: float | None = None
    cron: str | None = None
    github: str | None = None
    labels: tuple[str, ...] = ()
    timezone: str | None = None
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    pipeline_type: str | None = None
    tags: tuple[str, ...] = ()
    size: Size | None = None
    limit: int = DEFAULT_GITHUB_LIMIT

    @property
    def kind(self) -> SourceKind:
        if self.github is not None:
            return SourceKind.GITHUB
        if self.command is not None:
            return SourceKind.COMMAND
        return SourceKind.INBOX

    @property
    def target(self) -> str:
        """The inbox path, the command line or the repository."""
        return self.inbox or self.command or self.github or ""

    @property
    def schedule_kind(self) -> str:
        return "cron" if self.cron is not None else "every"

    @property
    def schedule_value(self) -> str:
        """The schedule as stored: with its kind, what tells a changed schedule apart."""
        if self.cron is not None:
            return f"{self.cron} @{self.timezone}" if self.timezone else self.cron
        seconds = self.every_seconds or 0.0
        return f"{seconds:g}"

    def describe_schedule(self) -> str:
        if self.cron is not None:
            return f"cron {self.schedule_value}"
        return f"every {_seconds_text(self.every_seconds or 0.0)}"


def _seconds_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


# ---- validation of the schedule values (config.py reports each problem in one line) ----
def cron_problem(expression: str, timezone: str | None, now: datetime) -> str | None:
    """Why a five-field cron expression (in `timezone`, else local time) cannot be used."""
    if len(expression.split()) != 5:
        return f"cron {expression!r} must have 5 fields (minute hour day month weekday)"
    if timezone is not None and _zone(timezone) is None:
        return f"unknown timezone {timezone!r} (use an IANA name such as Europe/Paris)"
    from croniter import croniter

    if not croniter.is_valid(expression):
        return f"cron {expression!r} is not a valid expression"
    try:
        next_cron_time(expression, timezone, now)
    except ValueError:
        return (
            f"cron {expression!r} never fires (no such date in the next {CRON_HORIZON_YEARS} years)"
        )
    return None


def github_problem(value: str) -> str | None:
    if not GITHUB_REPO.match(value):
        return f"{value!r} is not a GitHub repository as owner/name"
    return None


def _zone(name: str) -> Any:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def next_cron_time(expression: str, timezone: str | None, after: datetime) -> datetime:
    """The first firing strictly after `after` (aware), in UTC; ValueError if none soon."""
    from croniter import croniter

    zone = _zone(timezone) if timezone else None
    local = after.astimezone(zone) if zone is not None else after.astimezone()
    try:
        found = croniter(expression, local, max_years_between_matches=CRON_HORIZON_YEARS)
        moment = found.get_next(datetime)
    except Exception as exc:  # croniter raises its own types for "no match" and bad input
        raise ValueError(str(exc)) from None
    assert isinstance(moment, datetime)
    if moment.year - local.year > CRON_HORIZON_YEARS:
        raise ValueError("no firing time")
    return moment.astimezone(after.tzinfo)


def interval_seconds(source: SourceConfig, now: datetime) -> float:
    """How long the source waits between runs: its `every`, or its cron's current gap."""
    if source.cron is None:
        return source.every_seconds or 0.0
    first = next_cron_time(source.cron, source.timezone, now)
    second = next_cron_time(source.cron, source.timezone, first)
    return (second - first).total_seconds()


# ---- the schedule rows -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ScheduleSync:
    """What the rows must become to follow the configuration."""

    save: tuple[Schedule, ...]
    remove: tuple[str, ...]


def sync_schedules(
    sources: tuple[SourceConfig, ...], rows: list[Schedule], now: datetime
) -> ScheduleSync:
    """A new or changed schedule is due at once; an unchanged one keeps its times; rows
    of sources no longer configured go (their items stay)."""
    by_name = {row.source: row for row in rows}
    stamp = format_timestamp(now)
    save: list[Schedule] = []
    for source in sources:
        row = by_name.get(source.name)
        kind, value = source.schedule_kind, source.schedule_value
        if row is None:
            save.append(Schedule(source.name, kind, value, next_run_at=stamp))
        elif (row.kind, row.value) != (kind, value):
            # A changed schedule starts over: due now, its failure streak forgotten.
            save.append(
                replace(row, kind=kind, value=value, next_run_at=stamp, failures=0, last_error=None)
            )
    configured = {source.name for source in sources}
    remove = tuple(sorted(name for name in by_name if name not in configured))
    return ScheduleSync(tuple(save), remove)


def is_due(row: Schedule, now: datetime) -> bool:
    return row.next_run_at is None or parse_timestamp(row.next_run_at) <= now


def claim_held(row: Schedule, now: datetime, holder_alive: bool) -> bool:
    """Another run of this source is in progress: claimed, unexpired, its holder alive."""
    if row.claimed_by is None or row.claimed_until is None:
        return False
    return holder_alive and parse_timestamp(row.claimed_until) > now


def claim(row: Schedule, worker: str, now: datetime, timeout_seconds: float) -> Schedule:
    """Mark the source running for `worker`, for at most its timeout and a margin."""
    until = now + timedelta(seconds=timeout_seconds + 60)
    return replace(row, claimed_by=worker, claimed_until=format_timestamp(until))


@dataclass(frozen=True, slots=True)
class RunCounts:
    created: int = 0
    updated: int = 0
    closed: int = 0
    unchanged: int = 0
    deferred: int = 0  # closed at the source, but a side effect in flight settles first

    def to_dict(self) -> dict[str, int]:
        return {
            "created": self.created,
            "updated": self.updated,
            "closed": self.closed,
            "unchanged": self.unchanged,
            "deferred": self.deferred,
        }


def after_success(
    row: Schedule,
    source: SourceConfig,
    started: datetime,
    ended: datetime,
    counts: RunCounts,
) -> Schedule:
    """A run went through: the next one is the interval after its end, or the next cron
    time after now; however many ticks were missed, this was the one run for them all."""
    if source.cron is not None:
        following = next_cron_time(source.cron, source.timezone, ended)
    else:
        following = ended + timedelta(seconds=source.every_seconds or 0.0)
    return replace(
        row,
        next_run_at=format_timestamp(following),
        last_run_at=format_timestamp(started),
        last_error=None,
        failures=0,
        claimed_by=None,
        claimed_until=None,
        runs=row.runs + 1,
        items_created=row.items_created + counts.created,
        items_updated=row.items_updated + counts.updated,
        items_closed=row.items_closed + counts.closed,
    )


def backoff_seconds(
    failures: int, base: float, factor: float, max_seconds: float, interval: float
) -> float:
    """The agents' formula (base * factor**(n-1), at most max), capped at the interval."""
    delay = base * factor ** max(failures - 1, 0)
    return max(min(delay, max_seconds, interval), 0.0)


@dataclass(frozen=True, slots=True)
class Failure:
    row: Schedule
    failing: bool  # this failure makes three in a row: raise `source.failing`


def after_failure(
    row: Schedule,
    error: str,
    started: datetime,
    now: datetime,
    delay_seconds: float,
) -> Failure:
    """The schedule does not move forward: the source retries after the backoff."""
    failures = row.failures + 1
    retry = now + timedelta(seconds=delay_seconds)
    failed = replace(
        row,
        next_run_at=format_timestamp(retry),
        last_run_at=format_timestamp(started),
        last_error=error,
        failures=failures,
        claimed_by=None,
        claimed_until=None,
    )
    return Failure(failed, failures == FAILING_AFTER)


def earliest_due(rows: list[Schedule]) -> datetime | None:
    """When the next source runs (what the scheduler's idle wait includes)."""
    times = [parse_timestamp(r.next_run_at) for r in rows if r.next_run_at is not None]
    return min(times) if times else None


def external_link(origin: str | None) -> str | None:
    """An item's page at its source: its origin when that is a web address (a source
    entry's `url`, a GitHub issue's page); None for "source NAME" and hand-made origins."""
    if origin is None:
        return None
    text = origin.strip()
    return text if text.lower().startswith(("https://", "http://")) else None
