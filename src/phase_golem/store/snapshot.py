"""The immutable backlog snapshot (DESIGN §3, the question of WRK-022/WRK-024).

A snapshot is a persistent hash map (HAMT) of the active items. Taking one is
returning a reference; a write derives a new map that shares every untouched
node with the old one, so nothing ever deep-copies the backlog.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import immutables

from phase_golem.domain.items import Item


@dataclass(frozen=True, slots=True)
class BacklogSnapshot:
    """Active (not archived) items at one moment; `version` grows with every publish."""

    items_by_id: immutables.Map[str, Item]
    version: int = 0

    @classmethod
    def empty(cls) -> BacklogSnapshot:
        return cls(immutables.Map())

    @classmethod
    def of(cls, items: Iterable[Item], version: int = 0) -> BacklogSnapshot:
        return cls(immutables.Map({i.id: i for i in items if not i.archived}), version)

    def get(self, item_id: str) -> Item | None:
        return self.items_by_id.get(item_id)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.items_by_id

    def __len__(self) -> int:
        return len(self.items_by_id)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items())

    def items(self) -> list[Item]:
        """Items oldest first (created, then ID): the FIFO order the scheduler relies on."""
        return sorted(self.items_by_id.values(), key=lambda i: (i.created_at, i.id))

    def ids(self) -> frozenset[str]:
        return frozenset(self.items_by_id.keys())

    def with_changes(self, changed: Iterable[Item]) -> BacklogSnapshot:
        """A new snapshot with `changed` applied; archived items leave the active set."""
        with self.items_by_id.mutate() as draft:
            for item in changed:
                if item.archived:
                    draft.pop(item.id, None)
                else:
                    draft[item.id] = item
            updated = draft.finish()
        return BacklogSnapshot(updated, self.version + 1)
