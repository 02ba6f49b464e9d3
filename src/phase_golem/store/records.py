"""Receipts, intake schedules and store metadata, over a few row primitives.

A committed run has at most one receipt (DESIGN §9), whose commit is filled in once;
a source's schedule is its next and last run time (DESIGN §11); metadata are flags such
as the scheduler's pause. Every change writes its ledger event, as everywhere else.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Collection, Mapping
from typing import Any, Protocol

from phase_golem.domain.events import EventKind, Schedule
from phase_golem.domain.items import Item
from phase_golem.domain.receipts import ArtifactState, Receipt
from phase_golem.domain.runs import Run, RunStatus
from phase_golem.store.errors import ConflictError, NotFoundError, StoreError


class RecordsAccess(Protocol):
    # Receipts (one per committed run; only its commit is filled in later)
    def save_receipt(self, receipt: Receipt) -> None: ...
    def get_receipt(self, run_id: str) -> Receipt | None: ...
    def list_receipts(self, item_id: str | None = None) -> list[Receipt]: ...
    def set_receipt_commit(self, run_ids: Collection[str], commit: str) -> None: ...

    # Schedules and metadata
    def get_schedule(self, source: str) -> Schedule | None: ...
    def save_schedule(self, schedule: Schedule) -> None: ...
    def list_schedules(self) -> list[Schedule]: ...
    def delete_schedule(self, source: str) -> None: ...
    def item_by_external_id(self, source: str, external_id: str) -> Item | None: ...
    def get_meta(self, key: str) -> str | None: ...
    def set_meta(self, key: str, value: str) -> None: ...


class RecordsBase(abc.ABC):
    @abc.abstractmethod
    def _insert_receipt(self, receipt: Receipt) -> None: ...
    @abc.abstractmethod
    def _load_receipt(self, run_id: str) -> Receipt | None: ...
    @abc.abstractmethod
    def _load_receipts(self, item_id: str | None) -> list[Receipt]: ...
    @abc.abstractmethod
    def _update_receipt(self, receipt: Receipt) -> None: ...
    @abc.abstractmethod
    def _load_schedule(self, source: str) -> Schedule | None: ...
    @abc.abstractmethod
    def _load_schedules(self) -> list[Schedule]: ...
    @abc.abstractmethod
    def _upsert_schedule(self, schedule: Schedule) -> None: ...
    @abc.abstractmethod
    def _delete_schedule(self, source: str) -> None: ...
    @abc.abstractmethod
    def _load_item_by_external(self, source: str, external_id: str) -> Item | None:
        """The item a source made for this external id, active or archived."""

    @abc.abstractmethod
    def _load_meta(self, key: str) -> str | None: ...
    @abc.abstractmethod
    def _store_meta(self, key: str, value: str) -> None: ...

    # Provided by the transaction these records are part of.
    @abc.abstractmethod
    def _require_writable(self) -> None: ...
    @abc.abstractmethod
    def _load_run(self, run_id: str) -> Run | None: ...
    @abc.abstractmethod
    def append_event(
        self,
        kind: EventKind,
        *,
        item_id: str | None = None,
        run_id: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> int: ...

    def save_receipt(self, receipt: Receipt) -> None:
        """Record the receipt of a committed run; a run has at most one."""
        self._require_writable()
        run = self._load_run(receipt.run_id)
        if run is None:
            raise NotFoundError(f"no run {receipt.run_id} for its receipt")
        if run.status is not RunStatus.COMMITTED:
            raise ConflictError(
                f"run {run.id} is {run.status.value}; only a committed run has a receipt"
            )
        if run.item_id != receipt.item_id:
            raise ConflictError(f"run {run.id} belongs to {run.item_id}, not {receipt.item_id}")
        if self._load_receipt(receipt.run_id) is not None:
            raise ConflictError(f"run {run.id} already has a receipt")
        self._insert_receipt(receipt)
        not_clean = [a.path for a in receipt.artifacts if a.state is not ArtifactState.PRESENT]
        self.append_event(
            EventKind.RECEIPT_RECORDED,
            item_id=receipt.item_id,
            run_id=receipt.run_id,
            data={"artifacts": len(receipt.artifacts), "not_present": not_clean},
        )

    def get_receipt(self, run_id: str) -> Receipt | None:
        return self._load_receipt(run_id)

    def list_receipts(self, item_id: str | None = None) -> list[Receipt]:
        """Oldest first (the order they were recorded in), so the last one of a path wins."""
        return self._load_receipts(item_id)

    def set_receipt_commit(self, run_ids: Collection[str], commit: str) -> None:
        """The git commit that recorded these runs' work; set once (again: same value only)."""
        self._require_writable()
        if not commit:
            raise StoreError("a receipt's commit cannot be empty")
        for run_id in sorted(set(run_ids)):
            receipt = self._load_receipt(run_id)
            if receipt is None:
                raise NotFoundError(f"no receipt for run {run_id}")
            if receipt.commit == commit:
                continue
            if receipt.commit is not None:
                raise ConflictError(
                    f"the receipt of {run_id} already names commit {receipt.commit}"
                )
            self._update_receipt(dataclasses.replace(receipt, commit=commit))
            self.append_event(
                EventKind.RECEIPT_COMMITTED,
                item_id=receipt.item_id,
                run_id=run_id,
                data={"commit": commit},
            )

    def get_schedule(self, source: str) -> Schedule | None:
        return self._load_schedule(source)

    def save_schedule(self, schedule: Schedule) -> None:
        self._require_writable()
        self._upsert_schedule(schedule)
        self.append_event(
            EventKind.SCHEDULE_UPDATED,
            data={
                "source": schedule.source,
                "next_run_at": schedule.next_run_at,
                "last_run_at": schedule.last_run_at,
            },
        )

    def list_schedules(self) -> list[Schedule]:
        return self._load_schedules()

    def delete_schedule(self, source: str) -> None:
        """A source no longer configured: its row goes (its items stay)."""
        self._require_writable()
        if self._load_schedule(source) is None:
            return
        self._delete_schedule(source)
        self.append_event(EventKind.SCHEDULE_UPDATED, data={"source": source, "removed": True})

    def item_by_external_id(self, source: str, external_id: str) -> Item | None:
        return self._load_item_by_external(source, external_id)

    def get_meta(self, key: str) -> str | None:
        return self._load_meta(key)

    def set_meta(self, key: str, value: str) -> None:
        self._require_writable()
        self._store_meta(key, value)
