"""Ledger events: the append-only record every state change writes in its own transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    ITEM_CREATED = "item.created"
    ITEM_UPDATED = "item.updated"
    ITEM_TRANSITION = "item.transition"
    ITEM_MERGED = "item.merged"
    ITEM_ARCHIVED = "item.archived"
    ITEM_IMPORTED = "item.imported"
    RUN_QUEUED = "run.queued"
    RUN_CLAIMED = "run.claimed"
    RUN_STARTED = "run.started"
    RUN_UPDATED = "run.updated"
    RUN_FINISHED = "run.finished"
    RUN_RETRY_SCHEDULED = "run.retry_scheduled"
    RUN_INDETERMINATE = "run.indeterminate"
    RUN_RESOLVED = "run.resolved"
    RECEIPT_RECORDED = "receipt.recorded"
    RECEIPT_COMMITTED = "receipt.committed"
    RUN_WORKSPACE = "run.workspace"
    RUN_LEFTOVERS = "run.leftovers"
    GIT_COMMITTED = "git.committed"
    ITEM_STALE = "item.stale"
    RUN_RECONCILED = "run.reconciled"
    AGENT_PAUSED = "agent.paused"
    AGENT_RESUMED = "agent.resumed"
    APPROVAL_REQUESTED = "approval.requested"
    APPROVAL_GRANTED = "approval.granted"
    APPROVAL_REJECTED = "approval.rejected"
    SOURCE_FIRED = "source.fired"
    SOURCE_FAILED = "source.failed"
    SOURCE_FAILING = "source.failing"
    SCHEDULE_UPDATED = "schedule.updated"
    SCHEDULER_STARTED = "scheduler.started"
    SCHEDULER_HALTED = "scheduler.halted"
    SCHEDULER_PAUSED = "scheduler.paused"
    SCHEDULER_RESUMED = "scheduler.resumed"
    ITEM_RETRIED = "item.retried"
    BACKLOG_IMPORTED = "backlog.imported"


@dataclass(frozen=True, slots=True)
class LedgerEvent:
    seq: int
    at: str
    kind: EventKind
    item_id: str | None = None
    run_id: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "kind": self.kind.value,
            "item_id": self.item_id,
            "run_id": self.run_id,
            "data": dict(self.data),
        }


@dataclass(frozen=True, slots=True)
class Schedule:
    """One intake source's timer and its record (DESIGN §4, §11).

    `kind` and `value` (`every`: seconds; `cron`: the expression and its timezone) are
    what tells a changed schedule apart. `claimed_by`/`claimed_until` mark a run in
    progress (a worker and its lease), so one tick never runs twice; `failures` counts
    failed runs in a row; the item counts are totals over the source's runs.
    """

    source: str
    kind: str
    value: str
    next_run_at: str | None = None
    last_run_at: str | None = None
    last_error: str | None = None
    failures: int = 0
    claimed_by: str | None = None
    claimed_until: str | None = None
    runs: int = 0
    items_created: int = 0
    items_updated: int = 0
    items_closed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}
