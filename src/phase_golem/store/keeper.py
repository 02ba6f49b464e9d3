"""Keeping the published snapshot up to date by change sequence (DESIGN §3 "Snapshots").

Every store holds one `SnapshotKeeper`. The first refresh is the only full load; after it,
a refresh reads the change counter and, when it moved, only the item and run rows stamped
above the sequence already applied. A transaction of our own publishes what it wrote
directly when its stamp is the very next sequence — proof that no other writer committed
an item or run in between — so the common case decodes nothing at all.
"""

from __future__ import annotations

from collections.abc import Iterable

from phase_golem.domain.items import Item
from phase_golem.domain.runs import Run, RunStatus
from phase_golem.domain.snapshot import BacklogSnapshot
from phase_golem.store.base import Transaction, TransactionBase


class SnapshotKeeper:
    """The published snapshot of one store; the store serialises calls with its lock."""

    def __init__(self) -> None:
        self._snapshot: BacklogSnapshot | None = None
        self.full_loads = 0  # how many times the whole backlog was decoded (once, at open)

    @property
    def published(self) -> BacklogSnapshot | None:
        return self._snapshot

    def refresh(self, tx: Transaction) -> BacklogSnapshot:
        """Bring the snapshot up to what `tx` sees; one counter read when nothing changed."""
        seq = tx.change_seq()
        current = self._snapshot
        if current is None:
            items = tx.list_items()
            runs = tx.list_runs(statuses=[RunStatus.ACTIVE])
            self.full_loads += 1
            current = BacklogSnapshot.of(items, runs=runs, change_seq=seq)
        elif seq != current.change_seq:
            items = tx.items_changed_since(current.change_seq)
            runs = tx.runs_changed_since(current.change_seq)
            current = current.with_changes(items, runs, change_seq=seq)
        self._snapshot = current
        return current

    def committed(self, tx: TransactionBase) -> bool:
        """Publish a committed transaction's own rows; False when a refresh must read them.

        Its stamp being the next sequence after the one applied proves nobody else wrote an
        item or run since; otherwise the rows (ours and theirs) come with the next refresh.
        """
        return self.publish(tx.change_stamp, tx.touched_items.values(), tx.touched_runs.values())

    def publish(self, stamp: int | None, items: Iterable[Item], runs: Iterable[Run]) -> bool:
        """`committed` for rows a store wrote without a transaction object (one statement)."""
        current = self._snapshot
        if stamp is None or current is None:
            return True
        if stamp != current.change_seq + 1:
            return False
        self._snapshot = current.with_changes(items, runs, change_seq=stamp)
        return True

    def invalidate(self) -> None:
        self._snapshot = None
