"""Intake sources inside `run` (DESIGN §11): fired when due, off the event loop.

The scheduler asks this object three things: fire what is due (a background task in a
worker thread, so a slow command never delays a decision or a run start), the earliest
moment a source is due (its idle wait includes it: no polling), and whether a source run
just finished (its wait wakes on that too). The schedule rows are a small table read
only at start, after a source run and when another process changed the store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from phase_golem.clock import utc_now
from phase_golem.domain.events import Schedule
from phase_golem.engine.offloop import settle_then_cancel
from phase_golem.engine.selection import RunOptions
from phase_golem.engine.sources import (
    SourceRun,
    due_sources,
    next_source_time,
    run_due,
    schedule_rows,
    sync,
)

if TYPE_CHECKING:
    from phase_golem.engine.context import EngineContext

log = logging.getLogger(__name__)


class SourceIntake:
    def __init__(
        self, ctx: EngineContext, options: RunOptions, emit: Callable[[str], None]
    ) -> None:
        self.ctx = ctx
        self.emit = emit
        self.enabled = (
            options.sources
            and bool(ctx.settings.sources)
            and not options.triage_only
            and options.step_item is None
            and not options.targets
        )
        self.next_at: datetime | None = None
        self.rows: list[Schedule] = []
        self.task: asyncio.Task[list[SourceRun]] | None = None
        self.running: tuple[str, ...] = ()  # the sources due when the task began
        self.started = 0.0  # its time.monotonic()
        self.fired = 0

    def _schedule(self, rows: list[Schedule]) -> None:
        self.rows = rows
        self.next_at = next_source_time(rows, self.ctx.settings)

    def start(self) -> None:
        if self.enabled:
            self._schedule(sync(self.ctx.store, self.ctx.settings))

    def refresh(self) -> None:
        if self.enabled and self.task is None:
            self._schedule(schedule_rows(self.ctx.store))

    @property
    def busy(self) -> bool:
        """A source run is in progress: what it brings is work still to come, so an idle
        `run` waits for it (its end wakes the wait) instead of halting."""
        return self.task is not None

    def in_progress(self) -> tuple[tuple[str, ...], float] | None:
        """The sources of the source run in progress and its age in seconds, if one is."""
        if self.task is None:
            return None
        return self.running, time.monotonic() - self.started

    def earliest(self, other: datetime | None) -> datetime | None:
        """`other`, or the next source time when sooner (not while a source runs: its
        end wakes the wait by itself)."""
        if not self.enabled or self.task is not None or self.next_at is None:
            return other
        return self.next_at if other is None else min(other, self.next_at)

    def fire(self) -> None:
        if not self.enabled or self.task is not None or self.next_at is None:
            return
        now = utc_now()
        if self.next_at > now:
            return
        ctx = self.ctx
        self.running = tuple(s.name for s in due_sources(ctx.settings, self.rows, now))
        self.started = time.monotonic()
        self.task = asyncio.create_task(
            settle_then_cancel(run_due, ctx.root, ctx.store, ctx.settings), name="sources"
        )

    def pending(self) -> list[asyncio.Task[list[SourceRun]]]:
        return [self.task] if self.task is not None else []

    def collect(self) -> bool:
        """Say what a finished source run did; True when one finished just now."""
        task = self.task
        if task is None or not task.done():
            return False
        self.task = None
        if task.cancelled():
            return True
        error = task.exception()
        if error is not None:
            log.error("an intake source failed inside phase-golem", exc_info=error)
            self.emit(f"[source] internal error: {error!r}")
        else:
            for outcome in task.result():
                self.fired += 1
                self.emit(outcome.line())
                for warning in outcome.warnings:
                    self.emit(f"[source {outcome.source}] warning: {warning}")
        self._schedule(schedule_rows(self.ctx.store))
        return True

    async def settle(self) -> None:
        """At the end of `run`: a source run in progress finishes (it is in a thread)."""
        if self.task is not None:
            await asyncio.wait([self.task])
            self.collect()
