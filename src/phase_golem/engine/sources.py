"""Intake sources and their schedules (DESIGN §11): claim, fetch, apply, record.

One run of a source is three steps. A claim (its own transaction) marks the source
running for this worker, so one tick never fires twice and `sources run` is refused
while a run is in progress. The fetch reads the source outside any transaction (an inbox
file is moved aside first). The apply writes every created, updated and closed item,
the schedule row and the `source.fired` event in ONE transaction; only after it
committed is the inbox file removed. A failure (a non-zero exit, a timeout, a malformed
line, gh not authenticated) applies nothing: the schedule does not move forward, the
source backs off durably, and the third failure in a row raises `source.failing`.
A SIGKILL at any moment leaves either no trace of the run or all of it, and a claim its
dead holder can no longer renew, which the next run takes over.
"""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from phase_golem.clock import utc_now
from phase_golem.domain.errors import DomainError
from phase_golem.domain.events import EventKind, Schedule
from phase_golem.domain.pipelines import Settings
from phase_golem.domain.sources import (
    RunCounts,
    SourceConfig,
    after_failure,
    after_success,
    backoff_seconds,
    claim,
    claim_held,
    earliest_due,
    interval_seconds,
    is_due,
    sync_schedules,
)
from phase_golem.engine.source_apply import apply_entries
from phase_golem.engine.source_fetch import Fetched, SourceFailure, fetch, one_line
from phase_golem.faults import fault_of
from phase_golem.processes import pid_alive
from phase_golem.store import Store, Transaction


class SourceBusy(DomainError):
    """That source is running now; a second run of it is refused."""


class UnknownSource(DomainError):
    pass


def this_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_alive(holder: str | None) -> bool:
    """A claim's holder still lives: on this host, its pid exists; elsewhere, assume so
    (its lease decides)."""
    if holder is None:
        return False
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    return int(pid) == os.getpid() or pid_alive(int(pid))


@dataclass(frozen=True)
class SourceRun:
    """What one run of a source did, for the faces."""

    source: str
    counts: RunCounts | None = None
    error: str | None = None
    bad_output: bool = False
    failing: bool = False
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None

    def line(self) -> str:
        if self.counts is not None:
            c = self.counts
            parts = [f"{c.created} created", f"{c.updated} updated", f"{c.closed} closed"]
            if c.deferred:
                parts.append(f"{c.deferred} to close once a side effect settles")
            return f"[source {self.source}] fired: {', '.join(parts)}"
        tail = " (three failures in a row: source.failing)" if self.failing else ""
        return f"[source {self.source}] failed: {self.error}{tail}"


def sync(store: Store, settings: Settings) -> list[Schedule]:
    """Make the schedule rows follow the configuration; returns them all."""
    with store.reader() as tx:
        rows = tx.list_schedules()
        plan = sync_schedules(settings.sources, rows, tx.now)
    if not plan.save and not plan.remove:
        return rows
    with store.transaction() as tx:
        plan = sync_schedules(settings.sources, tx.list_schedules(), tx.now)
        for row in plan.save:
            tx.save_schedule(row)
        for name in plan.remove:
            tx.delete_schedule(name)
        return tx.list_schedules()


def find_source(settings: Settings, name: str) -> SourceConfig:
    for source in settings.sources:
        if source.name == name:
            return source
    known = ", ".join(s.name for s in settings.sources) or "none configured"
    raise UnknownSource(f"no source named {name!r} (sources: {known})")


def due_sources(settings: Settings, rows: list[Schedule], now: datetime) -> list[SourceConfig]:
    by_name = {row.source: row for row in rows}
    return [s for s in settings.sources if s.name in by_name and is_due(by_name[s.name], now)]


def next_source_time(rows: list[Schedule], settings: Settings) -> datetime | None:
    configured = {s.name for s in settings.sources}
    return earliest_due([r for r in rows if r.source in configured])


def _claim(tx: Transaction, source: SourceConfig, worker: str, manual: bool) -> bool:
    """Claim the source for this run; False when it is not due (someone ran it)."""
    row = tx.get_schedule(source.name) or Schedule(
        source.name, source.schedule_kind, source.schedule_value
    )
    if claim_held(row, tx.now, holder_alive(row.claimed_by)):
        if not manual:
            return False
        raise SourceBusy(
            f"source {source.name!r} is running now ({row.claimed_by}, until "
            f"{row.claimed_until}); try again when that run ends"
        )
    if not manual and not is_due(row, tx.now):
        return False
    tx.save_schedule(claim(row, worker, tx.now, source.timeout_seconds))
    return True


def run_source(
    root: Path,
    store: Store,
    settings: Settings,
    source: SourceConfig,
    *,
    manual: bool = False,
    worker: str | None = None,
) -> SourceRun | None:
    """Run one source now (manual) or if it is due; None when it was not due after all."""
    worker = worker or this_worker()
    with store.transaction() as tx:
        if not _claim(tx, source, worker, manual):
            return None
        started = tx.now
    try:
        fetched = fetch(source, root)
        return _apply(store, settings, source, fetched, started)
    except SourceFailure as exc:
        return _failed(store, settings, source, str(exc), started, exc.bad_output)
    except DomainError as exc:  # an entry the store refuses (its text, say): bad output
        message = one_line(f"{exc}; nothing was applied")
        return _failed(store, settings, source, message, started, True)
    except Exception as exc:
        if fault_of(exc) is not None:
            raise
        _failed(store, settings, source, one_line(f"internal error: {exc!r}"), started, False)
        raise
    except BaseException:
        # Cut off (Ctrl-C): let the claim go, the schedule unchanged, and stop.
        with contextlib.suppress(Exception):
            _release(store, source)
        raise


def _apply(
    store: Store, settings: Settings, source: SourceConfig, fetched: Fetched, started: datetime
) -> SourceRun:
    with store.transaction() as tx:
        counts = apply_entries(tx, settings, source, fetched.entries)
        row = tx.get_schedule(source.name) or Schedule(
            source.name, source.schedule_kind, source.schedule_value
        )
        tx.save_schedule(after_success(row, source, started, tx.now, counts))
        tx.append_event(
            EventKind.SOURCE_FIRED,
            data={
                "source": source.name,
                "kind": source.kind.value,
                "entries": len(fetched.entries),
                **counts.to_dict(),
                "warnings": list(fetched.warnings[:20]),
            },
        )
    if fetched.taken is not None:  # committed: only now may the drop file go
        with contextlib.suppress(FileNotFoundError):
            fetched.taken.unlink()
    return SourceRun(source.name, counts=counts, warnings=fetched.warnings)


def _failed(
    store: Store,
    settings: Settings,
    source: SourceConfig,
    error: str,
    started: datetime,
    bad_output: bool,
) -> SourceRun:
    backoff = settings.execution.backoff
    with store.transaction() as tx:
        row = tx.get_schedule(source.name) or Schedule(
            source.name, source.schedule_kind, source.schedule_value
        )
        delay = backoff_seconds(
            row.failures + 1,
            backoff.base_seconds,
            backoff.factor,
            backoff.max_seconds,
            interval_seconds(source, tx.now),
        )
        failure = after_failure(row, error, started, tx.now, delay)
        tx.save_schedule(failure.row)
        data = {"source": source.name, "error": error, "failures": failure.row.failures}
        tx.append_event(EventKind.SOURCE_FAILED, data=data)
        if failure.failing:
            tx.append_event(EventKind.SOURCE_FAILING, data=data)
    return SourceRun(source.name, error=error, bad_output=bad_output, failing=failure.failing)


def _release(store: Store, source: SourceConfig) -> None:
    with store.transaction() as tx:
        row = tx.get_schedule(source.name)
        if row is not None and row.claimed_by == this_worker():
            tx.save_schedule(
                Schedule(**{**row.to_dict(), "claimed_by": None, "claimed_until": None})
            )


def run_due(root: Path, store: Store, settings: Settings) -> list[SourceRun]:
    """Every source that is due, one after the other (what `run` does when it wakes)."""
    rows = sync(store, settings)
    done: list[SourceRun] = []
    for source in due_sources(settings, rows, utc_now()):
        outcome = run_source(root, store, settings, source)
        if outcome is not None:
            done.append(outcome)
    return done


def run_now(root: Path, store: Store, settings: Settings, name: str) -> SourceRun:
    """`phase-golem sources run NAME` and the dashboard's "run now": the named source runs
    at once, whatever its schedule. UnknownSource for a name not configured, SourceBusy
    while that source runs (anywhere); a failed run is an outcome, not an exception."""
    source = find_source(settings, name)
    sync(store, settings)
    outcome = run_source(root, store, settings, source, manual=True)
    assert outcome is not None  # a manual run is never "not due"
    return outcome


def schedule_rows(store: Store) -> list[Schedule]:
    with store.reader() as tx:
        return tx.list_schedules()
