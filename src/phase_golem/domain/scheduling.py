"""What to run next: Phase Golem's pure `select_actions` (research §4.5) plus DESIGN §7.

Nothing here reads a clock or a store: the backlog, what is running and `now` come in as
arguments, and an ordered list of actions comes out.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from phase_golem.domain.dependencies import unmet_dependencies
from phase_golem.domain.items import Item, ItemStatus, PhasePool, parse_timestamp
from phase_golem.domain.pipelines import ExecutionConfig, Isolation, PipelineConfig
from phase_golem.domain.runs import Run, Step
from phase_golem.domain.snapshot import BacklogSnapshot, GroupKey, SortKey


@dataclass(frozen=True, slots=True)
class Promote:
    item_id: str
    phase: str


@dataclass(frozen=True, slots=True)
class Triage:
    item_id: str


@dataclass(frozen=True, slots=True)
class RunPhase:
    item_id: str
    phase: str
    pool: PhasePool
    is_destructive: bool


Action = Promote | Triage | RunPhase


@dataclass(frozen=True, slots=True)
class RunningTask:
    """A run that is queued or active somewhere; it holds its item and maybe the tree.

    A `waiting` run (queued, its backoff not over) still holds its item, but neither a
    concurrency slot nor the tree: a ten-minute rate-limit pause must not stall the rest.
    """

    phase: str
    is_destructive: bool = False
    waiting: bool = False

    @property
    def holds_tree(self) -> bool:
        return self.is_destructive and not self.waiting


Backlog = Sequence[Item] | BacklogSnapshot


def _snapshot_of(items: Backlog) -> BacklogSnapshot:
    return items if isinstance(items, BacklogSnapshot) else BacklogSnapshot.of(items)


def waiting_on_dependencies(items: Backlog) -> list[tuple[str, list[str]]]:
    """Diagnostics for a halt: each schedulable item still waiting, with `DEP (status)`."""
    if isinstance(items, BacklogSnapshot):
        active: Mapping[str, Item] = items.items_by_id
        candidates: Iterable[Item] = (items.items_by_id[i] for i in items.waiting_ids())
    else:
        active = {item.id: item for item in items if not item.archived}
        candidates = items
    waiting = []
    for item in candidates:
        if item.status in (ItemStatus.DONE, ItemStatus.BLOCKED):
            continue
        unmet = unmet_dependencies(item, active)
        if unmet:
            waiting.append((item.id, unmet))
    return waiting


def is_sleeping(item: Item, now: datetime) -> bool:
    return item.wake_at is not None and parse_timestamp(item.wake_at) > now


def _phase_action(
    item: Item, pipelines: Mapping[str, PipelineConfig], phase: str | None = None
) -> RunPhase | None:
    pipeline = pipelines.get(item.effective_pipeline)
    name = phase or item.phase
    if pipeline is None or name is None:
        return None
    pool = item.effective_pool if phase is None else PhasePool.MAIN
    position = pipeline.locate(name, pool)
    if position is None:
        return None
    return RunPhase(item.id, name, pool, position.phase.is_destructive)


def _first_main_phase(item: Item, pipelines: Mapping[str, PipelineConfig]) -> str | None:
    pipeline = pipelines.get(item.effective_pipeline)
    if pipeline is None or not pipeline.phases:
        return None
    return pipeline.phases[0].name


_NEW_QUEUE: GroupKey = (ItemStatus.NEW, "", None, None)
_READY_QUEUE: GroupKey = (ItemStatus.READY, "", None, None)


@dataclass(frozen=True, slots=True)
class _Queues:
    """The dispatchable items of one decision, in queue order, due sleepers merged in."""

    backlog: BacklogSnapshot
    due: Mapping[GroupKey, list[SortKey]]

    @classmethod
    def at(cls, backlog: BacklogSnapshot, now: datetime) -> _Queues:
        due: dict[GroupKey, list[SortKey]] = {}
        for item_id in backlog.due_sleepers(now):
            entry = backlog.entries[item_id]
            if entry.group is not None and not entry.unmet:
                due.setdefault(entry.group, []).append(entry.order)
        for keys in due.values():
            keys.sort()
        return cls(backlog, due)

    def groups(self, status: ItemStatus) -> set[GroupKey]:
        found = {g for g in self.backlog.queues if g[0] is status}
        return found | {g for g in self.due if g[0] is status}

    def ids(self, group: GroupKey) -> Iterator[str]:
        queue = self.backlog.queues.get(group)
        waking = self.due.get(group, [])
        keys: Iterable[SortKey] = queue.keys if queue is not None else ()
        if waking:
            keys = heapq.merge(keys, waking)
        return (key[-1] for key in keys)


def _group_actions(
    queues: _Queues,
    group: GroupKey,
    pool: PhasePool,
    destructive: bool,
    eligible: Callable[[str], bool],
) -> Iterator[tuple[SortKey, RunPhase]]:
    phase = group[3] or ""
    entries = queues.backlog.entries
    for item_id in queues.ids(group):
        if eligible(item_id):
            yield entries[item_id].order, RunPhase(item_id, phase, pool, destructive)


def _ranked(
    queues: _Queues,
    status: ItemStatus,
    pipelines: Mapping[str, PipelineConfig],
    eligible: Callable[[str], bool],
    promoted: Sequence[tuple[SortKey, RunPhase, int]] = (),
) -> Iterator[RunPhase]:
    """Phase actions of one status, furthest phase first, then oldest, then ID."""
    by_rank: dict[int, list[Iterator[tuple[SortKey, RunPhase]]]] = {}
    for group in queues.groups(status):
        _, pipeline_name, pool, phase = group
        pipeline = pipelines.get(pipeline_name)
        if pipeline is None or phase is None or pool is None:
            continue
        position = pipeline.locate(phase, pool)
        if position is None:
            continue
        rank = pipeline.order_index(pool, phase)
        actions = _group_actions(queues, group, pool, position.phase.is_destructive, eligible)
        by_rank.setdefault(-1 if rank is None else rank, []).append(actions)
    for order, action, rank in promoted:
        by_rank.setdefault(rank, []).append(iter([(order, action)]))
    for rank in sorted(by_rank, reverse=True):
        for _, action in heapq.merge(*by_rank[rank], key=lambda entry: entry[0]):
            yield action


def _phase_candidates(
    queues: _Queues,
    promoted: Mapping[str, str],
    pipelines: Mapping[str, PipelineConfig],
    eligible: Callable[[str], bool],
) -> Iterator[Action]:
    """(a) in progress, furthest first; (b) scoping, furthest first; (c) new, oldest first."""
    backlog = queues.backlog
    lifted = []
    for item_id, phase in promoted.items():
        item = backlog.items_by_id[item_id]
        action = _phase_action(item, pipelines, phase)
        pipeline = pipelines.get(item.effective_pipeline)
        if action is None or pipeline is None:
            continue
        rank = pipeline.order_index(action.pool, action.phase)
        created = backlog.entries[item_id].created
        lifted.append(((created, item_id), action, -1 if rank is None else rank))
    yield from _ranked(queues, ItemStatus.IN_PROGRESS, pipelines, eligible, lifted)
    yield from _ranked(queues, ItemStatus.SCOPING, pipelines, eligible)
    yield from (Triage(i) for i in queues.ids(_NEW_QUEUE) if eligible(i))


def select_actions(
    items: Backlog,
    running: Mapping[str, RunningTask],
    execution: ExecutionConfig,
    pipelines: Mapping[str, PipelineConfig],
    now: datetime,
    only: Collection[str] | None = None,
) -> list[Action]:
    """Promotions, then phase and triage actions in priority order, within the limits.

    Promoted items are scheduled at their first main phase in the same call, so one
    decision both promotes and starts work. `only` (the `--only` matches) narrows what
    may be scheduled, while dependencies and WIP are still judged against the whole
    backlog (Phase Golem judged them inside the filtered subset, research §7.1.8).

    Given the store's snapshot, a decision reads its queues and stops as soon as the free
    slots are filled: its cost grows with what can be dispatched, not with the backlog.
    """
    exclusive = execution.isolation is Isolation.SHARED
    if exclusive and any(task.holds_tree for task in running.values()):
        return []
    busy = sum(
        1 for task in running.values() if not task.waiting and not (exclusive and task.holds_tree)
    )
    slots = execution.max_concurrent - busy
    if slots <= 0:
        return []

    backlog = _snapshot_of(items)
    if isinstance(items, BacklogSnapshot):
        in_progress = items.count(ItemStatus.IN_PROGRESS)
    else:
        in_progress = sum(1 for i in items if i.status is ItemStatus.IN_PROGRESS)
    queues = _Queues.at(backlog, now)

    def eligible(item_id: str) -> bool:
        return item_id not in running and (only is None or item_id in only)

    actions: list[Action] = []
    promoted: dict[str, str] = {}
    allowed = execution.max_wip - in_progress
    if allowed > 0:
        for item_id in queues.ids(_READY_QUEUE):
            if not eligible(item_id):
                continue
            first = _first_main_phase(backlog.items_by_id[item_id], pipelines)
            if first is None:
                continue
            actions.append(Promote(item_id, first))
            promoted[item_id] = first
            if len(promoted) >= allowed:
                break

    phase_actions: list[Action] = []
    for candidate in _phase_candidates(queues, promoted, pipelines, eligible):
        destructive = isinstance(candidate, RunPhase) and candidate.is_destructive
        if exclusive and destructive:
            # Alone or not at all; stopping here lets running work drain so it is not starved.
            if not any(not t.waiting for t in running.values()) and not phase_actions:
                actions.append(candidate)
            break
        if slots <= 0:
            break
        actions.append(candidate)
        phase_actions.append(candidate)
        slots -= 1
    return actions


def select_targeted_actions(
    target: Item | None,
    items: Backlog,
    running: Mapping[str, RunningTask],
    execution: ExecutionConfig,
    pipelines: Mapping[str, PipelineConfig],
    now: datetime,
) -> list[Action]:
    """Only the current target, ignoring WIP and concurrency limits (Phase Golem)."""
    if target is None or target.id in running:
        return []
    exclusive = execution.isolation is Isolation.SHARED
    if exclusive and any(task.holds_tree for task in running.values()):
        return []
    if isinstance(items, BacklogSnapshot):
        by_id: Mapping[str, Item] = items.items_by_id
    else:
        by_id = {item.id: item for item in items if not item.archived}
    if unmet_dependencies(target, by_id) or is_sleeping(target, now):
        return []
    if target.status is ItemStatus.NEW:
        return [Triage(target.id)]
    if target.status is ItemStatus.READY:
        first = _first_main_phase(target, pipelines)
        if first is None:
            return []
        action = _phase_action(target, pipelines, first)
        promote: list[Action] = [Promote(target.id, first)]
        busy = any(not t.waiting for t in running.values())
        if action is None or (exclusive and action.is_destructive and busy):
            return promote
        return [*promote, action]
    if target.status in (ItemStatus.SCOPING, ItemStatus.IN_PROGRESS):
        action = _phase_action(target, pipelines)
        if action is None:
            return []
        if exclusive and action.is_destructive and any(not t.waiting for t in running.values()):
            return []
        return [action]
    return []


def next_moment(
    live_runs: Iterable[Run],
    items: Iterable[Item] | BacklogSnapshot,
    now: datetime,
    in_scope: Callable[[str], bool],
) -> datetime | None:
    """The next future moment something waits for: a run's backoff or a sleeping item."""
    moments = [
        parse_timestamp(r.not_before)
        for r in live_runs
        if r.step is Step.QUEUED and r.not_before is not None
    ]
    if isinstance(items, BacklogSnapshot):
        # Sleepers are sorted by wake: the first one still ahead and in scope is the answer.
        wake = next((at for at, item_id in items.wakes_after(now) if in_scope(item_id)), None)
        moments += [wake] if wake is not None else []
    else:
        moments += [
            parse_timestamp(i.wake_at)
            for i in items
            if i.wake_at is not None and i.status is not ItemStatus.BLOCKED and in_scope(i.id)
        ]
    future = [moment for moment in moments if moment > now]
    return min(future) if future else None
