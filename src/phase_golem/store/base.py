"""The one persistence protocol every store implements (memory, SQLite, PostgreSQL).

A `Transaction` is a unit of work: everything done through it commits together or
not at all. Every state change goes through a method that also writes its ledger
event, so no caller can change state without leaving a record. Adapters implement
only the row-level primitives of `TransactionBase`; the rules live here, once.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from phase_golem.domain.errors import ParseError
from phase_golem.domain.events import EventKind, LedgerEvent
from phase_golem.domain.item_text import item_text_problem, redact_item
from phase_golem.domain.items import Item, format_item_id, format_timestamp, split_item_id
from phase_golem.domain.redaction import redact
from phase_golem.domain.runs import Run, RunStatus, Step, ensure_valid_transition
from phase_golem.domain.text import storable
from phase_golem.store.errors import ConflictError, NotFoundError, StoreError
from phase_golem.store.outbox import OutboxAccess, OutboxBase
from phase_golem.store.pages import PageReads, PagesBase
from phase_golem.store.records import RecordsAccess, RecordsBase
from phase_golem.store.snapshot import BacklogSnapshot
from phase_golem.store.state import StateAccess, StateBase

RUN_COUNTER = "__run__"
# The store-wide change sequence (DESIGN §3): bumped once by every transaction that writes
# an item or a run row, and stamped on each of those rows.
CHANGE_COUNTER = "__change__"


def _storable_run(run: Run) -> Run:
    """A run's free text comes from agents (errors, session ids): escaped, not refused."""
    changes = {
        name: storable(value)
        for name in ("error", "session_id", "model")
        if isinstance(value := getattr(run, name), str) and storable(value) != value
    }
    return run.replace(**changes) if changes else run


def _storable(item: Item) -> Item:
    """What every store writes for an item: text it can hold, and no secret in it."""
    problem = item_text_problem(item)
    if problem is not None:
        raise ParseError(problem)
    return redact_item(item)


class Transaction(PageReads, OutboxAccess, StateAccess, RecordsAccess, Protocol):
    """What callers may do inside one unit of work (the read commands' pages: pages.py;
    owed commits, leftovers and agent pauses: state.py; receipts, schedules and
    metadata: records.py)."""

    @property
    def now(self) -> datetime: ...

    # Items
    def get_item(self, item_id: str) -> Item | None: ...
    def require_item(self, item_id: str) -> Item: ...
    def list_items(self, *, include_archived: bool = False) -> list[Item]: ...
    def create_item(
        self,
        item: Item,
        *,
        kind: EventKind = EventKind.ITEM_CREATED,
        data: Mapping[str, Any] | None = None,
    ) -> None: ...
    def save_item(
        self, item: Item, kind: EventKind, data: Mapping[str, Any] | None = None
    ) -> None: ...
    def allocate_item_id(self, prefix: str) -> str: ...
    def raise_high_water(self, prefix: str, number: int) -> None: ...
    def high_water(self, prefix: str) -> int: ...

    # Runs
    def allocate_run_id(self) -> str: ...
    def create_run(self, run: Run, data: Mapping[str, Any] | None = None) -> None: ...
    def save_run(
        self, run: Run, kind: EventKind, data: Mapping[str, Any] | None = None
    ) -> None: ...
    def get_run(self, run_id: str) -> Run | None: ...
    def list_runs(
        self,
        *,
        item_id: str | None = None,
        statuses: Sequence[RunStatus] | None = None,
        limit: int | None = None,
    ) -> list[Run]: ...
    def claim_runs(
        self,
        worker_id: str,
        limit: int,
        lease_until: datetime,
        item_ids: Collection[str] | None = None,
        *,
        alone: bool = False,
    ) -> list[Run]: ...
    def renew_lease(self, run_id: str, worker_id: str, lease_until: datetime) -> bool: ...

    # The change sequence and the snapshot (DESIGN §3 "Snapshots")
    def change_seq(self) -> int: ...
    def items_changed_since(self, seq: int) -> list[Item]: ...
    def runs_changed_since(self, seq: int) -> list[Run]: ...
    def snapshot(self) -> BacklogSnapshot: ...

    # Ledger
    def append_event(
        self,
        kind: EventKind,
        *,
        item_id: str | None = None,
        run_id: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int: ...
    def events(
        self,
        *,
        after_seq: int = 0,
        item_id: str | None = None,
        limit: int | None = None,
    ) -> list[LedgerEvent]: ...


class Store(Protocol):
    """A backlog store. `transaction()` writes; `reader()` only reads.

    `snapshot()` is the read path of the engine's hot loop: the published, immutable
    `BacklogSnapshot` (active items, live runs, the indexes of DESIGN §3), brought up to
    date by change sequence. When nothing changed it costs one cheap check and returns the
    same object; after writes it reads only the rows above the sequence it has applied.
    Inside a transaction, `tx.snapshot()` is the same value refreshed under that
    transaction's lock (what `decide` reads).
    """

    # True when other orchestrators (other clones, other hosts) work in it at the same time:
    # then a run left active proves nothing until its lease expires.
    shared: bool

    def snapshot(self) -> BacklogSnapshot: ...

    def transaction(
        self, *, now: datetime | None = None, scheduling: bool = False
    ) -> AbstractContextManager[Transaction]: ...

    def reader(self) -> AbstractContextManager[Transaction]: ...

    def data_version(self) -> int: ...

    def close(self) -> None: ...


class TransactionBase(PagesBase, OutboxBase, StateBase, RecordsBase, abc.ABC):
    """The rules of every store, written once over a few row-level primitives."""

    def __init__(
        self,
        now: datetime,
        *,
        writable: bool,
        snapshots: Callable[[TransactionBase], BacklogSnapshot] | None = None,
        keep_base: bool = False,
    ) -> None:
        self._now = now
        self._writable = writable
        self._snapshots = snapshots
        # Refresh the snapshot at the first write, so `snapshot()` works after writes too;
        # only where one is published already (a one-off CLI write never loads the backlog).
        self._keep_base = keep_base and snapshots is not None
        # What this transaction wrote (the last version of each row), and the change
        # sequence it stamped them with: the store publishes them after the commit.
        self.touched_items: dict[str, Item] = {}
        self.touched_runs: dict[str, Run] = {}
        self.change_stamp: int | None = None
        self._base: BacklogSnapshot | None = None

    @property
    def now(self) -> datetime:
        return self._now

    @property
    def stamp(self) -> str:
        return format_timestamp(self._now)

    # ---- primitives the adapters implement -------------------------------------------
    @abc.abstractmethod
    def _load_item(self, item_id: str) -> Item | None: ...
    @abc.abstractmethod
    def _load_items(self, include_archived: bool) -> list[Item]: ...
    @abc.abstractmethod
    def _insert_item(self, item: Item, change_seq: int) -> None: ...
    @abc.abstractmethod
    def _update_item(self, item: Item, change_seq: int) -> None: ...
    @abc.abstractmethod
    def _load_counter(self, name: str) -> int: ...
    @abc.abstractmethod
    def _store_counter(self, name: str, value: int) -> None: ...
    @abc.abstractmethod
    def _load_run(self, run_id: str) -> Run | None: ...
    @abc.abstractmethod
    def _load_runs(
        self,
        item_id: str | None,
        statuses: Sequence[RunStatus] | None,
        limit: int | None,
    ) -> list[Run]: ...
    @abc.abstractmethod
    def _insert_run(self, run: Run, change_seq: int) -> None: ...
    @abc.abstractmethod
    def _update_run(self, run: Run, change_seq: int) -> None: ...
    @abc.abstractmethod
    def _change_seq(self) -> int:
        """The change counter's value (as this transaction sees it)."""

    @abc.abstractmethod
    def _items_changed_since(self, seq: int) -> list[Item]:
        """Item rows stamped above `seq`, archived ones included."""

    @abc.abstractmethod
    def _runs_changed_since(self, seq: int) -> list[Run]:
        """Run rows stamped above `seq`, whatever their status."""

    def _bump_change_counter(self) -> int:
        """Take the next change sequence. Stores override this with one UPSERT that also
        takes the counter row's lock (PostgreSQL: commits then become visible in order)."""
        value = self._load_counter(CHANGE_COUNTER) + 1
        self._store_counter(CHANGE_COUNTER, value)
        return value

    def _stamp(self) -> int:
        """This transaction's change sequence, taken at its first item or run write."""
        if self.change_stamp is None:
            if self._keep_base:
                self._base_snapshot()  # what it saw before it wrote: its snapshot's base
            self.change_stamp = self._bump_change_counter()
        return self.change_stamp

    @abc.abstractmethod
    def _queued_runs_due(
        self, now_stamp: str, limit: int, item_ids: Collection[str] | None
    ) -> list[Run]: ...
    @abc.abstractmethod
    def _insert_event(
        self,
        at: str,
        kind: EventKind,
        item_id: str | None,
        run_id: str | None,
        data: Mapping[str, Any],
    ) -> int: ...
    @abc.abstractmethod
    def _load_events(
        self, after_seq: int, item_id: str | None, limit: int | None
    ) -> list[LedgerEvent]: ...
    # ---- the protocol ---------------------------------------------------------------
    def _require_writable(self) -> None:
        if not self._writable:
            raise StoreError("this is a read-only transaction")

    def get_item(self, item_id: str) -> Item | None:
        return self._load_item(item_id)

    def require_item(self, item_id: str) -> Item:
        item = self._load_item(item_id)
        if item is None:
            raise NotFoundError(f"no item {item_id}")
        return item

    def list_items(self, *, include_archived: bool = False) -> list[Item]:
        return self._load_items(include_archived)

    def create_item(
        self,
        item: Item,
        *,
        kind: EventKind = EventKind.ITEM_CREATED,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        self._require_writable()
        item = _storable(item)
        if self._load_item(item.id) is not None:
            raise ConflictError(f"item {item.id} already exists")
        if item.source is not None and item.external_id is not None:
            holder = self._load_item_by_external(item.source, item.external_id)
            if holder is not None:  # unique over active and archived items (DESIGN §11)
                raise ConflictError(
                    f"{holder.id} already stands for {item.external_id} of source {item.source}"
                )
        prefix, number = split_item_id(item.id)
        if number is not None:
            self.raise_high_water(prefix, number)
        self._insert_item(item, self._stamp())
        self.touched_items[item.id] = item
        payload = {"title": item.title, "status": item.status.value, **(data or {})}
        self.append_event(kind, item_id=item.id, data=payload)

    def save_item(self, item: Item, kind: EventKind, data: Mapping[str, Any] | None = None) -> None:
        self._require_writable()
        item = _storable(item)
        before = self._load_item(item.id)
        if before is None:
            raise NotFoundError(f"no item {item.id}")
        self._update_item(item, self._stamp())
        self.touched_items[item.id] = item
        payload: dict[str, Any] = dict(data or {})
        if before.status is not item.status:
            payload.setdefault("from", before.status.value)
            payload.setdefault("to", item.status.value)
        self.append_event(kind, item_id=item.id, data=payload)

    def high_water(self, prefix: str) -> int:
        return self._load_counter(prefix)

    def raise_high_water(self, prefix: str, number: int) -> None:
        self._require_writable()
        if number > self._load_counter(prefix):
            self._store_counter(prefix, number)

    def allocate_item_id(self, prefix: str) -> str:
        """Next `PREFIX-NNN` above the persisted high-water mark; never reused."""
        self._require_writable()
        number = self._load_counter(prefix) + 1
        self._store_counter(prefix, number)
        return format_item_id(prefix, number)

    def allocate_run_id(self) -> str:
        self._require_writable()
        number = self._load_counter(RUN_COUNTER) + 1
        self._store_counter(RUN_COUNTER, number)
        return f"run-{number:06d}"

    def create_run(self, run: Run, data: Mapping[str, Any] | None = None) -> None:
        self._require_writable()
        run = _storable_run(run)
        if self._load_run(run.id) is not None:
            raise ConflictError(f"run {run.id} already exists")
        if self._load_item(run.item_id) is None:
            raise NotFoundError(f"no item {run.item_id} for run {run.id}")
        live = self._load_runs(run.item_id, [RunStatus.ACTIVE], None)
        if run.is_active and live:
            raise ConflictError(
                f"{run.item_id} already has an active run ({live[0].id}); one run per item"
            )
        self._insert_run(run, self._stamp())
        self.touched_runs[run.id] = run
        payload = {"phase": run.phase, "attempt": run.attempt, **(data or {})}
        self.append_event(EventKind.RUN_QUEUED, item_id=run.item_id, run_id=run.id, data=payload)

    def save_run(self, run: Run, kind: EventKind, data: Mapping[str, Any] | None = None) -> None:
        self._require_writable()
        run = _storable_run(run)
        before = self._load_run(run.id)
        if before is None:
            raise NotFoundError(f"no run {run.id}")
        ensure_valid_transition(before, run)
        self._update_run(run, self._stamp())
        self.touched_runs[run.id] = run
        payload: dict[str, Any] = {"step": run.step.value, "status": run.status.value}
        payload.update(data or {})
        self.append_event(kind, item_id=run.item_id, run_id=run.id, data=payload)

    def get_run(self, run_id: str) -> Run | None:
        return self._load_run(run_id)

    def list_runs(
        self,
        *,
        item_id: str | None = None,
        statuses: Sequence[RunStatus] | None = None,
        limit: int | None = None,
    ) -> list[Run]:
        return self._load_runs(item_id, statuses, limit)

    def claim_runs(
        self,
        worker_id: str,
        limit: int,
        lease_until: datetime,
        item_ids: Collection[str] | None = None,
        *,
        alone: bool = False,
    ) -> list[Run]:
        """Claim up to `limit` queued runs that are due (of these items only, when given).

        Destructive exclusivity, for every worker of the store at once: nothing is claimed
        while a run claimed `alone` is live, and a claim `alone` takes one run, only when
        no run is live at all, and marks it so (DESIGN §7, §14).
        """
        self._require_writable()
        claimed: list[Run] = []
        if limit <= 0:
            return claimed
        live = [
            r for r in self._load_runs(None, [RunStatus.ACTIVE], None) if r.step is not Step.QUEUED
        ]
        if any(r.exclusive for r in live) or (alone and live):
            return claimed
        lease = format_timestamp(lease_until)
        for run in self._queued_runs_due(self.stamp, 1 if alone else limit, item_ids):
            updated = run.replace(
                step=Step.CLAIMED, worker_id=worker_id, lease_until=lease, exclusive=alone
            )
            self.save_run(updated, EventKind.RUN_CLAIMED, {"worker_id": worker_id})
            claimed.append(updated)
        return claimed

    def renew_lease(self, run_id: str, worker_id: str, lease_until: datetime) -> bool:
        """Extend a live run's lease if `worker_id` holds it; True when it did.

        The one run update without a ledger event: a heartbeat is liveness, not history.
        """
        self._require_writable()
        run = self._load_run(run_id)
        if run is None or not run.is_active or run.worker_id != worker_id:
            return False
        renewed = run.replace(lease_until=format_timestamp(lease_until))
        self._update_run(renewed, self._stamp())
        self.touched_runs[run.id] = renewed
        return True

    def change_seq(self) -> int:
        return self._change_seq()

    def items_changed_since(self, seq: int) -> list[Item]:
        return self._items_changed_since(seq)

    def runs_changed_since(self, seq: int) -> list[Run]:
        return self._runs_changed_since(seq)

    def snapshot(self) -> BacklogSnapshot:
        """The backlog as this transaction sees it, without reading the tables.

        The store's published snapshot, refreshed under this transaction's lock before its
        first item or run write (so what `decide` reads is exactly what it locks), with
        this transaction's own writes laid over it. Only the published part is shared:
        the overlay is this transaction's alone until it commits.
        """
        base = self._base_snapshot()
        if not self.touched_items and not self.touched_runs:
            return base
        return base.with_changes(self.touched_items.values(), self.touched_runs.values())

    def _base_snapshot(self) -> BacklogSnapshot:
        if self._base is None:
            if self._snapshots is None:
                raise StoreError("this transaction has no snapshot")
            if self.change_stamp is not None:
                raise StoreError("the snapshot must be taken before the transaction writes")
            self._base = self._snapshots(self)
        return self._base

    def append_event(
        self,
        kind: EventKind,
        *,
        item_id: str | None = None,
        run_id: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int:
        self._require_writable()
        clean = redact(dict(data or {}))
        seq = self._insert_event(self.stamp, kind, item_id, run_id, clean)
        # The one place every event passes: its notification commits with it (DESIGN §12).
        self.record_notification(self.stamp, kind.value, seq, item_id, run_id, clean)
        return seq

    def events(
        self,
        *,
        after_seq: int = 0,
        item_id: str | None = None,
        limit: int | None = None,
    ) -> list[LedgerEvent]:
        return self._load_events(after_seq, item_id, limit)
