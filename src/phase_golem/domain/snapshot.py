"""The backlog as one immutable value, with the indexes the rules read (DESIGN §3 "Snapshots").

A `BacklogSnapshot` holds the active (not archived) items in a persistent hash map, the
live runs (status `active`: queued or running anywhere) in another, and the indexes that
let one decision cost what can be dispatched rather than what is stored:

- items by status (so WIP is a count, not a scan);
- the *queues*: items that could be dispatched if nothing ran — a candidate status, every
  dependency met, no `wake_at` — grouped by what decides their order (status, pipeline,
  pool, phase) and kept sorted (ready ones by impact then age, the others by age);
- the *sleepers*: items (not blocked) with a `wake_at`, sorted by it (the due ones join
  the queues at decision time, the first future one is the next moment to wake);
- the reverse dependency map, and the items whose dependencies are not all met.

Timestamps are parsed once, when an item enters the snapshot. A change builds a new value
that shares everything it did not touch with the old one; nothing ever copies the backlog.
Everything here is pure: the store decides when to apply which rows.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

import immutables

from phase_golem.domain.items import Item, ItemStatus, PhasePool, impact_priority, parse_timestamp
from phase_golem.domain.runs import Run

# Statuses an item can be scheduled from (triage, scoping phases, promotion, phases).
CANDIDATE_STATUSES = frozenset(
    {ItemStatus.NEW, ItemStatus.SCOPING, ItemStatus.READY, ItemStatus.IN_PROGRESS}
)
# Above this many changes at once a sorted index is rebuilt instead of edited in place.
_REBUILD_AT = 16

# (status, pipeline, pool, phase): everything that decides where an item's next action
# ranks. New and ready items have one queue each; their pipeline and phase do not matter.
GroupKey = tuple[ItemStatus, str, PhasePool | None, str | None]
SortKey = tuple[Any, ...]
StatusIndex = immutables.Map[ItemStatus, immutables.Map[str, Item]]


def group_of(item: Item) -> GroupKey | None:
    """The queue an item waits in when it is dispatchable; None for blocked and done."""
    if item.status is ItemStatus.NEW or item.status is ItemStatus.READY:
        return (item.status, "", None, None)
    if item.status in CANDIDATE_STATUSES:
        return (item.status, item.effective_pipeline, item.effective_pool, item.phase)
    return None


class ItemEntry(NamedTuple):
    """What the indexes know of one item, parsed once when the item entered the snapshot."""

    created: datetime
    wake: datetime | None
    order: SortKey  # its place in its queue
    group: GroupKey | None
    unmet: bool  # some dependency is active and not done
    blocked: bool

    @property
    def queued(self) -> bool:
        return self.group is not None and not self.unmet and self.wake is None

    @property
    def sleeps(self) -> bool:
        """Counted when the next wake is due: a blocked item waits for a human instead."""
        return self.wake is not None and not self.blocked


@dataclass(frozen=True, slots=True)
class SortedKeys:
    """An immutable sorted tuple of unique keys; edits return a new one."""

    keys: tuple[SortKey, ...] = ()

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[SortKey]:
        return iter(self.keys)

    def edited(self, removed: Iterable[SortKey], added: Iterable[SortKey]) -> SortedKeys:
        gone, new = list(removed), list(added)
        if len(gone) + len(new) > _REBUILD_AT:
            dropped = set(gone)
            return SortedKeys(tuple(sorted([k for k in self.keys if k not in dropped] + new)))
        keys = list(self.keys)
        for key in gone:
            at = bisect_left(keys, key)
            if at < len(keys) and keys[at] == key:
                del keys[at]
        for key in new:
            insort(keys, key)
        return SortedKeys(tuple(keys))

    def first_after(self, bound: SortKey) -> int:
        return bisect_right(self.keys, bound)


def _order(item: Item, created: datetime) -> SortKey:
    if item.status is ItemStatus.READY:
        return (-impact_priority(item), created, item.id)
    return (created, item.id)


def _unmet(item: Item, items: Mapping[str, Item]) -> bool:
    for dep in item.dependencies:
        other = items.get(dep)
        if other is not None and other.status is not ItemStatus.DONE:
            return True
    return False


@dataclass(frozen=True, slots=True)
class _Draft:
    """The mutable pieces of one `with_changes`, finished into a new snapshot."""

    items: Any
    entries: Any
    dependents: Any
    old_by_status: StatusIndex
    by_status: dict[ItemStatus, Any] = field(default_factory=dict)
    queue_edits: dict[GroupKey, tuple[list[SortKey], list[SortKey]]] = field(default_factory=dict)
    sleeper_edits: tuple[list[SortKey], list[SortKey]] = field(default_factory=lambda: ([], []))
    waiting_edits: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BacklogSnapshot:
    """Active items and live runs at one moment, with their indexes.

    `version` grows with every published change; `change_seq` is the highest store-wide
    change sequence applied (DESIGN §3), so a refresh asks the store only for rows above it.
    """

    items_by_id: immutables.Map[str, Item] = field(default_factory=immutables.Map)
    version: int = 0
    change_seq: int = 0
    runs_by_id: immutables.Map[str, Run] = field(default_factory=immutables.Map)
    run_of_item: immutables.Map[str, str] = field(default_factory=immutables.Map)
    entries: immutables.Map[str, ItemEntry] = field(default_factory=immutables.Map)
    by_status: StatusIndex = field(default_factory=immutables.Map)
    queues: immutables.Map[GroupKey, SortedKeys] = field(default_factory=immutables.Map)
    sleepers: SortedKeys = field(default_factory=SortedKeys)
    dependents: immutables.Map[str, frozenset[str]] = field(default_factory=immutables.Map)
    waiting: immutables.Map[str, bool] = field(default_factory=immutables.Map)

    # ---- building ---------------------------------------------------------------------
    @classmethod
    def empty(cls) -> BacklogSnapshot:
        return cls()

    @classmethod
    def of(
        cls,
        items: Iterable[Item],
        version: int = 0,
        runs: Iterable[Run] = (),
        change_seq: int = 0,
    ) -> BacklogSnapshot:
        """A snapshot of these items (archived ones are left out) and live runs, built in
        bulk (the one full load at open): plain dicts and lists first, sorted once."""
        active = {item.id: item for item in items if not item.archived}
        dependents: dict[str, set[str]] = {}
        for item in active.values():
            for dep in item.dependencies:
                dependents.setdefault(dep, set()).add(item.id)
        entries: dict[str, ItemEntry] = {}
        by_status: dict[ItemStatus, dict[str, Item]] = {}
        queues: dict[GroupKey, list[SortKey]] = {}
        sleepers: list[SortKey] = []
        waiting: dict[str, bool] = {}
        for item in active.values():
            entry = entries[item.id] = _entry(item, None, None, active)
            by_status.setdefault(item.status, {})[item.id] = item
            if entry.queued and entry.group is not None:
                queues.setdefault(entry.group, []).append(entry.order)
            if entry.sleeps and entry.wake is not None:
                sleepers.append((entry.wake, item.id))
            if entry.unmet:
                waiting[item.id] = True
        live = {run.id: run for run in runs if run.is_active}
        return cls(
            items_by_id=immutables.Map(active),
            version=version,
            change_seq=change_seq,
            runs_by_id=immutables.Map(live),
            run_of_item=immutables.Map({run.item_id: run.id for run in live.values()}),
            entries=immutables.Map(entries),
            by_status=immutables.Map({k: immutables.Map(v) for k, v in by_status.items()}),
            queues=immutables.Map({g: SortedKeys(tuple(sorted(q))) for g, q in queues.items()}),
            sleepers=SortedKeys(tuple(sorted(sleepers))),
            dependents=immutables.Map({k: frozenset(v) for k, v in dependents.items()}),
            waiting=immutables.Map(waiting),
        )

    def at_version(self, version: int) -> BacklogSnapshot:
        return _replace(self, version=version)

    def with_changes(
        self,
        changed: Iterable[Item] = (),
        runs: Iterable[Run] = (),
        *,
        change_seq: int | None = None,
    ) -> BacklogSnapshot:
        """A new snapshot with these item and run rows applied (the latest row of each wins).

        Archived items leave the active set; runs that ended leave the live runs.
        """
        item_rows = {item.id: item for item in changed}
        run_rows = {run.id: run for run in runs}
        seq = self.change_seq if change_seq is None else max(self.change_seq, change_seq)
        if not item_rows and not run_rows:
            if seq == self.change_seq:
                return self
            return _replace(self, change_seq=seq, version=self.version + 1)
        items_by_id, entries, by_status, queues, sleepers, dependents, waiting = (
            self._apply_items(item_rows)
            if item_rows
            else (
                self.items_by_id,
                self.entries,
                self.by_status,
                self.queues,
                self.sleepers,
                self.dependents,
                self.waiting,
            )
        )
        runs_by_id, run_of_item = self._apply_runs(run_rows)
        return BacklogSnapshot(
            items_by_id=items_by_id,
            version=self.version + 1,
            change_seq=seq,
            runs_by_id=runs_by_id,
            run_of_item=run_of_item,
            entries=entries,
            by_status=by_status,
            queues=queues,
            sleepers=sleepers,
            dependents=dependents,
            waiting=waiting,
        )

    def _apply_runs(
        self, rows: Mapping[str, Run]
    ) -> tuple[immutables.Map[str, Run], immutables.Map[str, str]]:
        if not rows:
            return self.runs_by_id, self.run_of_item
        runs, of_item = self.runs_by_id.mutate(), self.run_of_item.mutate()
        for run in rows.values():
            if run.is_active:
                runs[run.id] = run
                of_item[run.item_id] = run.id
            else:
                runs.pop(run.id, None)
                if of_item.get(run.item_id) == run.id:
                    del of_item[run.item_id]
        return runs.finish(), of_item.finish()

    def _apply_items(self, rows: Mapping[str, Item]) -> tuple[Any, ...]:
        old_items = self.items_by_id
        draft = _Draft(
            old_items.mutate(), self.entries.mutate(), self.dependents.mutate(), self.by_status
        )
        affected: set[str] = set()
        for item in rows.values():
            before = old_items.get(item.id)
            after = None if item.archived else item
            if after is None:
                draft.items.pop(item.id, None)
            else:
                draft.items[item.id] = after
            _relink(draft.dependents, item.id, before, after)
            affected.add(item.id)
        for item_id in list(affected):  # whose dependencies may have come or gone
            affected.update(draft.dependents.get(item_id, ()))
        for item_id in affected:
            self._reindex(draft, item_id, old_items.get(item_id))
        return (
            draft.items.finish(),
            draft.entries.finish(),
            self._finish_status(draft),
            self._finish_queues(draft),
            self.sleepers.edited(*draft.sleeper_edits),
            draft.dependents.finish(),
            self._finish_waiting(draft),
        )

    def _reindex(self, draft: _Draft, item_id: str, before: Item | None) -> None:
        old_entry = self.entries.get(item_id)
        item = draft.items.get(item_id)
        entry = None if item is None else _entry(item, before, old_entry, draft.items)
        if before is item and old_entry == entry:
            return  # unchanged (or absent before and after)
        if entry is None:
            draft.entries.pop(item_id, None)
        else:
            draft.entries[item_id] = entry
        if before is not None:
            _status_edit(draft, before.status, item_id, None)
        if item is not None:
            _status_edit(draft, item.status, item_id, item)
        if old_entry != entry:
            if old_entry is not None:
                _index_edit(draft, old_entry, item_id, remove=True)
            if entry is not None:
                _index_edit(draft, entry, item_id, remove=False)
        draft.waiting_edits[item_id] = entry is not None and entry.unmet

    def _finish_status(self, draft: _Draft) -> StatusIndex:
        by_status = self.by_status.mutate()
        for status, group in draft.by_status.items():
            finished = group.finish()
            if len(finished):
                by_status[status] = finished
            else:
                by_status.pop(status, None)
        return by_status.finish()

    def _finish_queues(self, draft: _Draft) -> immutables.Map[GroupKey, SortedKeys]:
        queues = self.queues.mutate()
        for group, (removed, added) in draft.queue_edits.items():
            edited = queues.get(group, SortedKeys()).edited(removed, added)
            if len(edited):
                queues[group] = edited
            else:
                queues.pop(group, None)
        return queues.finish()

    def _finish_waiting(self, draft: _Draft) -> immutables.Map[str, bool]:
        waiting = self.waiting.mutate()
        for item_id, unmet in draft.waiting_edits.items():
            if unmet:
                waiting[item_id] = True
            else:
                waiting.pop(item_id, None)
        return waiting.finish()

    # ---- reading ----------------------------------------------------------------------
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
        entries = self.entries
        return sorted(self.items_by_id.values(), key=lambda i: (entries[i.id].created, i.id))

    def ids(self) -> frozenset[str]:
        return frozenset(self.items_by_id.keys())

    def with_status(self, status: ItemStatus) -> Mapping[str, Item]:
        return self.by_status.get(status, _NO_ITEMS)

    def count(self, status: ItemStatus) -> int:
        return len(self.by_status.get(status, _NO_ITEMS))

    def runs(self) -> list[Run]:
        """Live runs (queued or running anywhere), oldest first."""
        return sorted(self.runs_by_id.values(), key=lambda r: (r.queued_at, r.id))

    def run_for(self, item_id: str) -> Run | None:
        run_id = self.run_of_item.get(item_id)
        return None if run_id is None else self.runs_by_id.get(run_id)

    def entry(self, item_id: str) -> ItemEntry | None:
        return self.entries.get(item_id)

    def waiting_ids(self) -> list[str]:
        """Items some active, not-done dependency holds back, oldest first."""
        entries = self.entries
        return sorted(self.waiting.keys(), key=lambda i: (entries[i].created, i))

    def due_sleepers(self, now: datetime) -> list[str]:
        """Items (not blocked) whose `wake_at` has come."""
        end = self.sleepers.first_after((now, "\U0010ffff"))
        return [key[1] for key in self.sleepers.keys[:end]]

    def wakes_after(self, now: datetime) -> Iterator[tuple[datetime, str]]:
        """(wake_at, ID) of sleeping items still to wake, earliest first."""
        keys = self.sleepers.keys
        for key in keys[self.sleepers.first_after((now, "\U0010ffff")) :]:
            yield key[0], key[1]

    def content(self) -> tuple[Any, ...]:
        """Everything but the version: equal for equal backlogs however they were built."""
        return (
            dict(self.items_by_id),
            dict(self.runs_by_id),
            dict(self.run_of_item),
            dict(self.entries),
            {s: dict(m) for s, m in self.by_status.items()},
            {g: q.keys for g, q in self.queues.items()},
            self.sleepers.keys,
            {k: v for k, v in self.dependents.items() if v},
            dict(self.waiting),
        )


_NO_ITEMS: immutables.Map[str, Item] = immutables.Map()


def _replace(snapshot: BacklogSnapshot, **changes: Any) -> BacklogSnapshot:
    values = {name: getattr(snapshot, name) for name in BacklogSnapshot.__dataclass_fields__}
    values.update(changes)
    return BacklogSnapshot(**values)


def _relink(dependents: Any, item_id: str, before: Item | None, after: Item | None) -> None:
    """Keep the reverse dependency map in step with one item's dependencies."""
    old = set(before.dependencies) if before is not None else set()
    new = set(after.dependencies) if after is not None else set()
    for dep in old - new:
        remaining = dependents.get(dep, frozenset()) - {item_id}
        if remaining:
            dependents[dep] = remaining
        else:
            dependents.pop(dep, None)
    for dep in new - old:
        dependents[dep] = dependents.get(dep, frozenset()) | {item_id}


def _entry(
    item: Item, before: Item | None, old: ItemEntry | None, items: Mapping[str, Item]
) -> ItemEntry:
    """The item's index entry; its timestamps are parsed only when they changed."""
    if old is not None and before is not None and before.created == item.created:
        created = old.created
    else:
        created = parse_timestamp(item.created)
    if item.wake_at is None:
        wake = None
    elif old is not None and before is not None and before.wake_at == item.wake_at:
        wake = old.wake
    else:
        wake = parse_timestamp(item.wake_at)
    return ItemEntry(
        created=created,
        wake=wake,
        order=_order(item, created),
        group=group_of(item),
        unmet=_unmet(item, items),
        blocked=item.status is ItemStatus.BLOCKED,
    )


def _status_edit(draft: _Draft, status: ItemStatus, item_id: str, item: Item | None) -> None:
    group = draft.by_status.get(status)
    if group is None:
        group = draft.by_status[status] = draft.old_by_status.get(status, _NO_ITEMS).mutate()
    if item is None:
        group.pop(item_id, None)
    else:
        group[item_id] = item


def _index_edit(draft: _Draft, entry: ItemEntry, item_id: str, *, remove: bool) -> None:
    slot = 0 if remove else 1
    if entry.queued and entry.group is not None:
        edits = draft.queue_edits.setdefault(entry.group, ([], []))
        edits[slot].append(entry.order)
    if entry.sleeps and entry.wake is not None:
        draft.sleeper_edits[slot].append((entry.wake, item_id))
