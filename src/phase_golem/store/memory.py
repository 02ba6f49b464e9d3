"""In-memory store: the same protocol and rules, for fast tests. Not shared across processes."""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from phase_golem.clock import utc_now
from phase_golem.domain.events import EventKind, LedgerEvent, Schedule
from phase_golem.domain.items import Item, status_sort_key
from phase_golem.domain.listing import (
    ARCHIVED_SECTIONS,
    EventPage,
    ItemCounts,
    RunCursor,
    RunPage,
    RunTotal,
    section_of,
    section_sort_key,
)
from phase_golem.domain.notifications import Notification, NotificationStatus
from phase_golem.domain.receipts import Receipt
from phase_golem.domain.runs import Run, RunStatus, Step
from phase_golem.store.base import CHANGE_COUNTER, Transaction, TransactionBase
from phase_golem.store.keeper import SnapshotKeeper
from phase_golem.store.snapshot import BacklogSnapshot
from phase_golem.store.state import Leftover, PausedAgent, PendingCommit


@dataclass
class _State:
    items: dict[str, Item] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    runs: dict[str, Run] = field(default_factory=dict)
    events: list[LedgerEvent] = field(default_factory=list)
    schedules: dict[str, Schedule] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    receipts: dict[str, Receipt] = field(default_factory=dict)  # insertion order = recorded
    change_seqs: dict[tuple[str, str], int] = field(default_factory=dict)  # (table, id) → seq
    notifications: dict[int, Notification] = field(default_factory=dict)
    pending: tuple[PendingCommit, ...] = ()
    leftovers: tuple[Leftover, ...] = ()
    paused: tuple[PausedAgent, ...] = ()
    resumed: tuple[tuple[str, str], ...] = ()

    def copy(self) -> _State:
        return _State(
            dict(self.items),
            dict(self.counters),
            dict(self.runs),
            list(self.events),
            dict(self.schedules),
            dict(self.meta),
            dict(self.receipts),
            dict(self.change_seqs),
            dict(self.notifications),
            self.pending,
            self.leftovers,
            self.paused,
            self.resumed,
        )


def _value(error_class: Any) -> str | None:
    return None if error_class is None else str(error_class.value)


def _seconds(run: Run) -> float:
    if run.started_at is None or run.ended_at is None:
        return 0.0
    start, end = datetime.fromisoformat(run.started_at), datetime.fromisoformat(run.ended_at)
    return (end - start).total_seconds()


class MemoryTransaction(TransactionBase):
    def __init__(
        self,
        state: _State,
        now: datetime,
        *,
        writable: bool,
        snapshots: Callable[[TransactionBase], BacklogSnapshot] | None = None,
        keep_base: bool = False,
    ) -> None:
        super().__init__(now, writable=writable, snapshots=snapshots, keep_base=keep_base)
        self.state = state

    def _load_item(self, item_id: str) -> Item | None:
        return self.state.items.get(item_id)

    def _load_items(self, include_archived: bool) -> list[Item]:
        items = [i for i in self.state.items.values() if include_archived or not i.archived]
        return sorted(items, key=lambda i: (i.created, i.id))

    def _insert_item(self, item: Item, change_seq: int) -> None:
        self.state.items[item.id] = item
        self.state.change_seqs["items", item.id] = change_seq

    def _update_item(self, item: Item, change_seq: int) -> None:
        self._insert_item(item, change_seq)

    def _change_seq(self) -> int:
        return self.state.counters.get(CHANGE_COUNTER, 0)

    def _items_changed_since(self, seq: int) -> list[Item]:
        seqs = self.state.change_seqs
        return [i for i in self.state.items.values() if seqs.get(("items", i.id), 0) > seq]

    def _runs_changed_since(self, seq: int) -> list[Run]:
        seqs = self.state.change_seqs
        return [r for r in self.state.runs.values() if seqs.get(("runs", r.id), 0) > seq]

    def _load_counter(self, name: str) -> int:
        return self.state.counters.get(name, 0)

    def _store_counter(self, name: str, value: int) -> None:
        self.state.counters[name] = value

    def _load_run(self, run_id: str) -> Run | None:
        return self.state.runs.get(run_id)

    def _load_runs(
        self,
        item_id: str | None,
        statuses: Sequence[RunStatus] | None,
        limit: int | None,
    ) -> list[Run]:
        runs = [
            r
            for r in self.state.runs.values()
            if (item_id is None or r.item_id == item_id) and (not statuses or r.status in statuses)
        ]
        runs.sort(key=lambda r: (r.queued_at, r.id), reverse=True)
        return runs[:limit] if limit is not None else runs

    def _insert_run(self, run: Run, change_seq: int) -> None:
        self.state.runs[run.id] = run
        self.state.change_seqs["runs", run.id] = change_seq

    def _update_run(self, run: Run, change_seq: int) -> None:
        self._insert_run(run, change_seq)

    def _queued_runs_due(
        self, now_stamp: str, limit: int, item_ids: Collection[str] | None
    ) -> list[Run]:
        due = [
            r
            for r in self.state.runs.values()
            if r.is_active
            and r.step is Step.QUEUED
            and (r.not_before is None or r.not_before <= now_stamp)
            and (item_ids is None or r.item_id in item_ids)
        ]
        due.sort(key=lambda r: (r.queued_at, r.id))
        return due[:limit]

    def _insert_event(
        self,
        at: str,
        kind: EventKind,
        item_id: str | None,
        run_id: str | None,
        data: Mapping[str, Any],
    ) -> int:
        seq = (self.state.events[-1].seq if self.state.events else 0) + 1
        self.state.events.append(LedgerEvent(seq, at, kind, item_id, run_id, dict(data)))
        return seq

    def _load_events(
        self, after_seq: int, item_id: str | None, limit: int | None
    ) -> list[LedgerEvent]:
        found = [
            e
            for e in self.state.events
            if e.seq > after_seq and (item_id is None or e.item_id == item_id)
        ]
        return found[:limit] if limit is not None else found

    def _insert_receipt(self, receipt: Receipt) -> None:
        self.state.receipts[receipt.run_id] = receipt

    def _load_receipt(self, run_id: str) -> Receipt | None:
        return self.state.receipts.get(run_id)

    def _load_receipts(self, item_id: str | None) -> list[Receipt]:
        return [r for r in self.state.receipts.values() if item_id in (None, r.item_id)]

    def _update_receipt(self, receipt: Receipt) -> None:
        self.state.receipts[receipt.run_id] = receipt

    def _load_schedule(self, source: str) -> Schedule | None:
        return self.state.schedules.get(source)

    def _load_schedules(self) -> list[Schedule]:
        return [self.state.schedules[k] for k in sorted(self.state.schedules)]

    def _upsert_schedule(self, schedule: Schedule) -> None:
        self.state.schedules[schedule.source] = schedule

    def _delete_schedule(self, source: str) -> None:
        self.state.schedules.pop(source, None)

    def _load_item_by_external(self, source: str, external_id: str) -> Item | None:
        for item in self.state.items.values():
            if item.source == source and item.external_id == external_id:
                return item
        return None

    def _load_meta(self, key: str) -> str | None:
        return self.state.meta.get(key)

    def _insert_notification(self, notification: Notification) -> int:
        new_id = max(self.state.notifications, default=0) + 1
        self.state.notifications[new_id] = notification.replace(id=new_id)
        return new_id

    def _update_notification(self, notification: Notification) -> None:
        self.state.notifications[notification.id] = notification

    def _load_notification(self, notification_id: int) -> Notification | None:
        return self.state.notifications.get(notification_id)

    def _load_notifications(
        self,
        statuses: Sequence[NotificationStatus] | None,
        due_by: str | None,
        limit: int | None,
    ) -> list[Notification]:
        rows = [
            n
            for _, n in sorted(self.state.notifications.items())
            if (statuses is None or n.status in statuses)
            and (due_by is None or n.next_attempt_at is None or n.next_attempt_at <= due_by)
        ]
        return rows if limit is None else rows[:limit]

    def _load_notification_page(
        self, statuses: Sequence[NotificationStatus] | None, before_id: int | None, limit: int
    ) -> list[Notification]:
        rows = [
            n
            for _, n in sorted(self.state.notifications.items(), reverse=True)
            if (statuses is None or n.status in statuses)
            and (before_id is None or n.id < before_id)
        ]
        return rows[:limit]

    def _store_meta(self, key: str, value: str) -> None:
        self.state.meta[key] = value

    # -- owed commits, leftovers, agent pauses (store/state.py)
    def _load_pending(self) -> list[PendingCommit]:
        return list(self.state.pending)

    def _replace_pending(self, entries: Sequence[PendingCommit]) -> None:
        self.state.pending = tuple(entries)

    def _load_leftovers(self) -> list[Leftover]:
        return list(self.state.leftovers)

    def _replace_leftovers(self, entries: Sequence[Leftover]) -> None:
        self.state.leftovers = tuple(entries)

    def _load_pauses(self) -> tuple[list[PausedAgent], dict[str, str]]:
        return list(self.state.paused), dict(self.state.resumed)

    def _replace_pauses(self, paused: Sequence[PausedAgent], resumed: Mapping[str, str]) -> None:
        self.state.paused = tuple(paused)
        self.state.resumed = tuple(sorted(resumed.items()))

    # -- pages for the read commands (store/pages.py)
    def _count_items(self, include_archived: bool) -> ItemCounts:
        counts: dict[str, int] = {}
        archived = 0
        for item in self.state.items.values():
            archived += item.archived
            if include_archived or not item.archived:
                section = section_of(item)
                counts[section] = counts.get(section, 0) + 1
        return ItemCounts(counts, archived)

    def _run_totals(self) -> list[RunTotal]:
        groups: dict[tuple[str, str, str | None, str | None, str | None], list[Run]] = {}
        for run in self.state.runs.values():
            key = (run.status.value, run.step.value, _value(run.error_class), run.agent, run.model)
            groups.setdefault(key, []).append(run)
        return [
            RunTotal(
                *key,
                len(runs),
                sum(r.cost_usd for r in runs),
                sum(r.tokens_in for r in runs),
                sum(r.tokens_out for r in runs),
                sum(_seconds(r) for r in runs),
            )
            for key, runs in groups.items()
        ]

    def _load_section(self, section: str, include_archived: bool, limit: int | None) -> list[Item]:
        if section in ARCHIVED_SECTIONS and not include_archived:
            return []
        found = sorted(
            (
                i
                for i in self.state.items.values()
                if (include_archived or not i.archived) and section_of(i) == section
            ),
            key=section_sort_key,
        )
        return found[:limit] if limit is not None else found

    def _iter_status_order(self, include_archived: bool) -> Iterator[Item]:
        items = [i for i in self.state.items.values() if include_archived or not i.archived]
        return iter(sorted(items, key=status_sort_key))

    def _load_run_page(self, page: RunPage) -> list[Run]:
        runs = sorted(
            (r for r in self.state.runs.values() if page.admits(r)),
            key=RunCursor.of,
            reverse=True,
        )
        if page.limit is None:
            return runs
        if not page.limit:
            return []
        return runs[-page.limit :] if page.oldest else runs[: page.limit]

    def _load_event_page(self, page: EventPage) -> list[LedgerEvent]:
        events = [e for e in self.state.events if page.admits(e.seq, e.item_id)]
        if page.limit is None:
            return events
        if not page.limit:
            return []
        return events[-page.limit :] if page.newest else events[: page.limit]


class MemoryStore:
    # One process only: nothing another worker runs can be in it.
    shared = False

    def __init__(self, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._state = _State()
        self._version = 0
        self._keeper = SnapshotKeeper()

    def data_version(self) -> int:
        """Commits by other connections: a memory store has none."""
        return self._version

    def snapshot(self) -> BacklogSnapshot:
        with self._lock:
            published = self._keeper.published
            if published is not None:
                return published  # every write of this store publishes itself
            with self.reader() as tx:
                return self._keeper.refresh(tx)

    @contextmanager
    def transaction(
        self, *, now: datetime | None = None, scheduling: bool = False
    ) -> Iterator[Transaction]:
        with self._lock:
            # Work on a copy so an exception leaves the committed state untouched.
            tx = MemoryTransaction(
                self._state.copy(),
                now or self._clock(),
                writable=True,
                snapshots=lambda t: self.snapshot(),
                keep_base=self._keeper.published is not None,
            )
            yield tx
            self._state = tx.state
            if not self._keeper.committed(tx):
                self._keeper.invalidate()

    @contextmanager
    def reader(self) -> Iterator[Transaction]:
        with self._lock:
            yield MemoryTransaction(self._state, self._clock(), writable=False)

    def close(self) -> None:
        pass
