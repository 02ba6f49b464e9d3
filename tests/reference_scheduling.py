"""The scheduler before it read the snapshot's indexes: a plain scan of every item.

Kept only as the reference the property tests compare the indexed `select_actions`
against (tests/test_domain_snapshot.py). Never used by the engine.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime

from phase_golem.domain.dependencies import unmet_dependencies
from phase_golem.domain.items import Item, ItemStatus, PhasePool, impact_priority, parse_timestamp
from phase_golem.domain.pipelines import ExecutionConfig, Isolation, PipelineConfig
from phase_golem.domain.scheduling import Action, Promote, RunningTask, RunPhase, Triage


def waiting_on_dependencies(items: Sequence[Item]) -> list[tuple[str, list[str]]]:
    """Diagnostics for a halt: each schedulable item still waiting, with `DEP (status)`."""
    active = {item.id: item for item in items if not item.archived}
    waiting = []
    for item in items:
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


def _progress(item: Item, pipelines: Mapping[str, PipelineConfig]) -> int:
    pipeline = pipelines.get(item.effective_pipeline)
    if pipeline is None or item.phase is None:
        return -1
    rank = pipeline.order_index(item.effective_pool, item.phase)
    return -1 if rank is None else rank


def _first_main_phase(item: Item, pipelines: Mapping[str, PipelineConfig]) -> str | None:
    pipeline = pipelines.get(item.effective_pipeline)
    if pipeline is None or not pipeline.phases:
        return None
    return pipeline.phases[0].name


def _by_created(items: Iterable[Item]) -> list[Item]:
    return sorted(items, key=lambda i: (i.created_at, i.id))


def _phase_candidates(
    items: Sequence[Item],
    promoted: Mapping[str, str],
    pipelines: Mapping[str, PipelineConfig],
    eligible: set[str],
) -> list[Action]:
    """(a) in progress, furthest first; (b) scoping, furthest first; (c) new, oldest first."""
    candidates: list[Action] = []
    in_progress: list[tuple[int, Item, RunPhase]] = []
    for item in items:
        if item.id not in eligible:
            continue
        if item.id in promoted:
            action = _phase_action(item, pipelines, promoted[item.id])
        elif item.status is ItemStatus.IN_PROGRESS:
            action = _phase_action(item, pipelines)
        else:
            continue
        if action is not None:
            rank = _progress(item.replace(phase=action.phase, phase_pool=action.pool), pipelines)
            in_progress.append((rank, item, action))
    in_progress.sort(key=lambda entry: (-entry[0], entry[1].created_at, entry[1].id))
    candidates.extend(action for _, _, action in in_progress)

    scoping: list[tuple[int, Item, RunPhase]] = []
    for item in items:
        if item.id in eligible and item.status is ItemStatus.SCOPING:
            action = _phase_action(item, pipelines)
            if action is not None:
                scoping.append((_progress(item, pipelines), item, action))
    scoping.sort(key=lambda entry: (-entry[0], entry[1].created_at, entry[1].id))
    candidates.extend(action for _, _, action in scoping)

    fresh = [i for i in items if i.id in eligible and i.status is ItemStatus.NEW]
    candidates.extend(Triage(item.id) for item in _by_created(fresh))
    return candidates


def select_actions(
    items: Sequence[Item],
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

    by_id = {item.id: item for item in items if not item.archived}
    eligible = {
        item.id
        for item in items
        if item.id not in running
        and (only is None or item.id in only)
        and not item.archived
        and not unmet_dependencies(item, by_id)
        and not is_sleeping(item, now)
    }

    actions: list[Action] = []
    promoted: dict[str, str] = {}
    allowed = execution.max_wip - sum(1 for i in items if i.status is ItemStatus.IN_PROGRESS)
    ready = [
        i
        for i in items
        if i.status is ItemStatus.READY
        and i.id in eligible
        and _first_main_phase(i, pipelines) is not None
    ]
    ready.sort(key=lambda i: (-impact_priority(i), i.created_at, i.id))
    for item in ready[: max(allowed, 0)]:
        first = _first_main_phase(item, pipelines)
        if first is None:
            continue
        actions.append(Promote(item.id, first))
        promoted[item.id] = first

    phase_actions: list[Action] = []
    for candidate in _phase_candidates(items, promoted, pipelines, eligible):
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
