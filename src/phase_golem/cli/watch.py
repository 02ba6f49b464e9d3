"""`phase-golem watch`: the live panel of `run`, for a `run` in another terminal or on
another machine of the same project, read from the store and the ledger (never written).

Each refresh asks the store whether anything changed (one cheap counter); only then does
it read, in one read transaction, the live runs, the ledger events after the last one
shown and the counts by status — pages of the database, never a whole table.
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from phase_golem.cli.context import state_of
from phase_golem.cli.output import safe
from phase_golem.clock import utc_now
from phase_golem.domain.events import LedgerEvent
from phase_golem.domain.items import parse_timestamp
from phase_golem.domain.listing import EventPage, RunPage
from phase_golem.domain.runs import Run, RunStatus, Step
from phase_golem.engine.control import pause_state
from phase_golem.errors import known_error_code
from phase_golem.faults import fault_of, is_sqlite_error
from phase_golem.project import ProjectError
from phase_golem.store import Store

REFRESH_SECONDS = 0.5
KEEP_EVENTS = 12
AGENT_ROWS = 50  # the panel shows at most this many live runs, and says how many more
EVENT_BATCH = 200
DATA_CHARS = 80
WATCH_COLUMNS = ("RUN", "ITEM", "PHASE", "ATTEMPT", "STEP", "ELAPSED", "COST")


class ProjectClosed(Exception):
    """The project went away under `watch` (its state removed, its database unreadable)."""


def event_text(event: LedgerEvent) -> str:
    subject = " ".join(part for part in (event.item_id, event.run_id) if part)
    detail = ", ".join(f"{k}={v}" for k, v in sorted(event.data.items()) if _short(v))
    if len(detail) > DATA_CHARS:
        detail = detail[: DATA_CHARS - 1] + "…"
    return safe(f"{event.seq:>6} {event.at[11:19]} {event.kind.value} {subject} {detail}".rstrip())


def _short(value: object) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


class Watcher:
    """What the panel shows, refreshed from the store only when the store changed."""

    def __init__(self, store: Store, database: Path | None) -> None:
        self.store = store
        self.database = database  # the SQLite file whose removal closes the project
        self.events: deque[str] = deque(maxlen=KEEP_EVENTS)
        self.runs: list[Run] = []
        self.more_runs = False
        self.totals = ""
        self.paused: str | None = None
        self.last_seq: int | None = None
        self._version: int | None = None

    def _check_open(self) -> None:
        if self.database is not None and not self.database.exists():
            raise ProjectClosed(f"{self.database} was removed: the project is closed")

    def refresh(self) -> list[LedgerEvent]:
        """Read what changed; the new events, oldest first."""
        self._check_open()
        try:
            return self._read()
        except Exception as exc:
            if fault_of(exc) is not None or is_sqlite_error(exc) or known_error_code(exc):
                raise ProjectClosed(f"the project's store cannot be read: {exc}") from None
            raise

    def _read(self) -> list[LedgerEvent]:
        version = self.store.data_version()
        if version == self._version:
            return []
        self._version = version
        with self.store.reader() as tx:
            runs = tx.run_page(RunPage(statuses=(RunStatus.ACTIVE,), limit=AGENT_ROWS + 1))
            if self.last_seq is None:
                fresh = tx.event_page(EventPage(limit=KEEP_EVENTS, newest=True))
            else:
                fresh = tx.event_page(EventPage(after_seq=self.last_seq, limit=EVENT_BATCH))
            counts = tx.item_counts()
            pause = pause_state(tx)
        self.more_runs = len(runs) > AGENT_ROWS
        self.runs = list(reversed(runs[:AGENT_ROWS]))  # the oldest first, as `run` lists them
        if fresh:
            self.last_seq = fresh[-1].seq
        elif self.last_seq is None:
            self.last_seq = 0
        self.events.extend(event_text(e) for e in fresh)
        queued = sum(1 for r in runs if r.step is Step.QUEUED)
        sections = "  ".join(f"{name} {n}" for name, n in counts.by_section.items() if n)
        self.totals = (
            f"items: {sections or 'none'}  archived {counts.archived}  queued runs {queued}"
        )
        self.paused = pause.line() if pause is not None else None
        return fresh

    def rows(self, now: datetime) -> list[tuple[str, ...]]:
        out: list[tuple[str, ...]] = []
        for run in self.runs:
            if run.step is Step.QUEUED:
                continue
            elapsed = ""
            if run.started_at:
                seconds = (now - parse_timestamp(run.started_at)).total_seconds()
                elapsed = f"{max(seconds, 0.0):5.1f} s"
            cells = (run.id, run.item_id, run.phase, str(run.attempt), run.step.value)
            out.append((*cells, elapsed, f"${run.cost_usd:.4f}"))
        return out

    def footer(self) -> str:
        lines = [self.totals]
        if self.more_runs:
            lines.append(f"(the first {AGENT_ROWS} live runs are shown)")
        if self.paused:
            lines.append(self.paused)
        return "\n".join(lines)


def _database(store: Store) -> Path | None:
    path = getattr(store, "path", None)
    return path if isinstance(path, Path) else None


def _live(watcher: Watcher, stop: threading.Event) -> None:
    from rich.console import RenderableType
    from rich.live import Live

    from phase_golem.cli.live import panel

    def render() -> RenderableType:
        return panel(watcher.rows(utc_now()), watcher.events, watcher.footer(), WATCH_COLUMNS)

    with Live(get_renderable=render, refresh_per_second=4, redirect_stdout=False) as live:
        while not stop.is_set():
            watcher.refresh()
            live.refresh()
            stop.wait(REFRESH_SECONDS)


def _plain(watcher: Watcher, stop: threading.Event) -> None:
    """Off a terminal: one line per new event, and a line when the pause flag changes."""
    paused: str | None = None
    while not stop.is_set():
        for event in watcher.refresh():
            sys.stdout.write(event_text(event) + "\n")
        if watcher.paused != paused:
            paused = watcher.paused
            sys.stdout.write((paused or "Scheduler not paused") + "\n")
        sys.stdout.flush()
        stop.wait(REFRESH_SECONDS)


def watch(
    ctx: typer.Context,
    plain: Annotated[
        bool, typer.Option("--plain", help="One line per event, even on a terminal.")
    ] = False,
) -> None:
    """Watch a `run` working elsewhere: agents now, latest events, totals (read-only).

    Works for a `run` in another terminal, or on another machine of the same project
    (PostgreSQL). Ctrl-C ends it (exit 0); if the project is closed under it (its state
    removed or unreadable) it stops with one line (exit 3).
    """
    store = state_of(ctx).store()
    watcher = Watcher(store, _database(store))
    stop = threading.Event()
    import signal

    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if plain or not sys.stdout.isatty():
            _plain(watcher, stop)
        else:
            _live(watcher, stop)
    except KeyboardInterrupt:
        pass
    except ProjectClosed as exc:
        raise ProjectError(f"watch stopped: {exc}") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
