"""Unit tests for the pure scheduler (domain/scheduling.py): Phase Golem's select_actions matrix."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from phase_golem.config import default_pipelines
from phase_golem.domain.items import Item, ItemStatus, Level, PhasePool, format_timestamp, new_item
from phase_golem.domain.pipelines import ExecutionConfig, Isolation, PhaseConfig, PipelineConfig
from phase_golem.domain.scheduling import (
    Action,
    Promote,
    RunningTask,
    RunPhase,
    Triage,
    select_actions,
    select_targeted_actions,
    waiting_on_dependencies,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
S = ItemStatus
SHARED, WORKTREE = Isolation.SHARED, Isolation.WORKTREE

# feature: pre (research), main (prd, design, spec, build*, review); simple: plan, build*, review.
PIPES: dict[str, PipelineConfig] = {
    **default_pipelines(),
    "deep": PipelineConfig(
        "deep",
        pre_phases=(PhaseConfig("scan", False), PhaseConfig("research", False)),
        phases=(PhaseConfig("draft", False), PhaseConfig("ship", True)),
    ),
    "hot": PipelineConfig("hot", phases=(PhaseConfig("ship", True), PhaseConfig("check", False))),
}


def make(n: int, status: ItemStatus = S.NEW, *, age: float | None = None, **fields: Any) -> Item:
    """WRK-n; by default a lower number is older (age in hours before NOW)."""
    hours = 1000 - n if age is None else age
    return new_item(f"WRK-{n:03d}", f"Item {n}", NOW - timedelta(hours=hours)).replace(
        status=status, **fields
    )


def ip(n: int, phase: str = "prd", **fields: Any) -> Item:
    return make(n, S.IN_PROGRESS, phase=phase, phase_pool=PhasePool.MAIN, **fields)


def scoping(n: int, phase: str = "research", **fields: Any) -> Item:
    return make(n, S.SCOPING, phase=phase, phase_pool=PhasePool.PRE, **fields)


def ready(n: int, **fields: Any) -> Item:
    return make(n, S.READY, **fields)


def show(actions: Sequence[Action]) -> list[str]:
    """`promote 3 prd`, `triage 1`, `run 2 build!` (`!` marks a destructive phase)."""
    out = []
    for a in actions:
        n = int(a.item_id.removeprefix("WRK-"))
        if isinstance(a, Promote):
            out.append(f"promote {n} {a.phase}")
        elif isinstance(a, Triage):
            out.append(f"triage {n}")
        else:
            out.append(f"run {n} {a.phase}{'!' if a.is_destructive else ''}")
    return out


def select(
    items: Sequence[Item],
    running: Mapping[str, RunningTask] | None = None,
    *,
    wip: int = 1,
    conc: int = 1,
    iso: Isolation = SHARED,
    only: Collection[str] | None = None,
) -> list[str]:
    config = ExecutionConfig(max_wip=wip, max_concurrent=conc, isolation=iso)
    return show(select_actions(items, running or {}, config, PIPES, NOW, only))


def nd(phase: str = "prd") -> RunningTask:
    return RunningTask(phase, False)


def destructive(phase: str = "build") -> RunningTask:
    return RunningTask(phase, True)


# --- priority ordering -----------------------------------------------------------------


def test_empty_backlog_selects_nothing() -> None:
    assert select([]) == []


def test_in_progress_furthest_phase_first() -> None:
    items = [ip(1, "prd"), ip(2, "review"), ip(3, "design")]
    assert select(items, wip=5, conc=5) == ["run 2 review", "run 3 design", "run 1 prd"]


def test_in_progress_same_phase_oldest_first_then_id() -> None:
    items = [ip(1, "spec", age=1), ip(2, "spec", age=5), ip(3, "spec", age=1)]
    assert select(items, wip=5, conc=5) == ["run 2 spec", "run 1 spec", "run 3 spec"]


def test_progress_rank_counts_pre_phases_across_pipelines() -> None:
    # feature review is rank 1+4=5, deep ship 2+1=3, simple review 0+2=2.
    items = [
        ip(1, "review", pipeline_type="simple"),
        ip(2, "ship", pipeline_type="deep"),
        ip(3, "review"),
    ]
    assert select(items, wip=5, conc=5, iso=WORKTREE) == [
        "run 3 review",
        "run 2 ship!",
        "run 1 review",
    ]


def test_scoping_furthest_first_after_in_progress_and_before_new() -> None:
    items = [
        make(1),
        scoping(2, "scan", pipeline_type="deep"),
        scoping(3, "research", pipeline_type="deep"),
        ip(4, "prd"),
        make(5),
    ]
    assert select(items, wip=5, conc=9) == [
        "run 4 prd",
        "run 3 research",
        "run 2 scan",
        "triage 1",
        "triage 5",
    ]


def test_new_items_triaged_oldest_first() -> None:
    items = [make(1, age=1), make(2, age=3), make(3, age=2)]
    assert select(items, conc=3) == ["triage 2", "triage 3", "triage 1"]


def test_in_progress_without_phase_is_skipped_but_holds_wip() -> None:
    items = [make(1, S.IN_PROGRESS), ready(2)]
    assert select(items, wip=1, conc=3) == []
    assert select(items, wip=2, conc=3) == ["promote 2 prd", "run 2 prd"]


def test_blocked_and_done_never_scheduled_and_blocked_holds_no_wip() -> None:
    items = [make(1, S.BLOCKED, phase="prd"), make(2, S.DONE), ready(3)]
    assert select(items, wip=1, conc=3) == ["promote 3 prd", "run 3 prd"]


@pytest.mark.parametrize(
    "item",
    [
        ip(1, "nope"),
        ip(1, "prd", pipeline_type="gone"),
        ip(1, "research"),  # a pre phase in the main pool is not found
        scoping(1, "prd"),  # a main phase in the pre pool is not found
        make(1, S.SCOPING, phase="research"),  # a missing pool counts as main
    ],
)
def test_unknown_pipeline_or_phase_means_no_action(item: Item) -> None:
    assert select([item], wip=3, conc=3) == []


def test_missing_pool_counts_as_main() -> None:
    assert select([make(1, S.IN_PROGRESS, phase="design")]) == ["run 1 design"]


# --- promotions ------------------------------------------------------------------------


def test_promotions_by_impact_then_age_up_to_max_wip() -> None:
    items = [
        ready(1, impact=None),
        ready(2, impact=Level.MEDIUM),
        ready(3, impact=Level.HIGH, age=1),
        ready(4, impact=Level.HIGH, age=2),
        ready(5, impact=Level.LOW),
    ]
    actions = select(items, wip=3, conc=9)
    promotes = [a for a in actions if a.startswith("promote")]
    assert promotes == ["promote 4 prd", "promote 3 prd", "promote 2 prd"]


def test_impact_none_ranks_below_low() -> None:
    items = [ready(1, impact=None), ready(2, impact=Level.LOW)]
    assert select(items, wip=1)[0] == "promote 2 prd"


def test_promotions_use_no_slot_and_promoted_items_run_in_same_call() -> None:
    items = [ready(1), ready(2), ready(3, pipeline_type="simple")]
    assert select(items, wip=3, conc=1) == [
        "promote 1 prd",
        "promote 2 prd",
        "promote 3 plan",
        "run 1 prd",
    ]


def test_promoted_action_is_a_main_pool_run_phase() -> None:
    config = ExecutionConfig(max_wip=1, max_concurrent=1)
    actions = select_actions([ready(1, pipeline_type="simple")], {}, config, PIPES, NOW)
    assert actions == [
        Promote("WRK-001", "plan"),
        RunPhase("WRK-001", "plan", PhasePool.MAIN, False),
    ]


def test_wip_full_means_no_promotion() -> None:
    assert select([ip(1), ready(2)], wip=1, conc=3) == ["run 1 prd"]


def test_running_in_progress_items_count_toward_wip() -> None:
    items = [ip(1), ip(2), ready(3)]
    assert select(items, {"WRK-001": nd()}, wip=2, conc=3) == ["run 2 prd"]
    assert select(items, {"WRK-001": nd()}, wip=3, conc=3)[0] == "promote 3 prd"


def test_promoted_item_ranks_with_in_progress_by_phase() -> None:
    items = [ip(1, "prd", age=1), ready(2, age=9), ip(3, "spec")]
    assert select(items, wip=3, conc=9) == ["promote 2 prd", "run 3 spec", "run 2 prd", "run 1 prd"]


def test_promotion_still_happens_when_its_run_finds_no_slot() -> None:
    assert select([ip(1, "spec"), ready(2)], wip=2, conc=1) == ["promote 2 prd", "run 1 spec"]


def test_unpromotable_ready_item_does_not_starve_others() -> None:
    items = [ready(1, impact=Level.HIGH, pipeline_type="gone"), ready(2)]
    assert select(items, wip=1) == ["promote 2 prd", "run 2 prd"]


# --- concurrency -----------------------------------------------------------------------


def test_max_concurrent_limits_phase_actions() -> None:
    assert select([make(1), make(2), make(3)], conc=2) == ["triage 1", "triage 2"]


def test_running_tasks_take_slots() -> None:
    items = [make(1), make(2), make(3)]
    assert select(items, {"WRK-009": nd()}, conc=2) == ["triage 1"]


def test_no_free_slot_means_nothing_at_all_not_even_promotions() -> None:
    assert select([make(1), ready(2)], {"WRK-009": nd()}, wip=3, conc=1) == []


def test_one_run_per_item() -> None:
    items = [ip(1), make(2)]
    assert select(items, {"WRK-001": nd()}, wip=3, conc=5) == ["triage 2"]


# --- destructive exclusivity (shared isolation) ----------------------------------------


def test_nothing_while_a_destructive_task_runs() -> None:
    assert select([make(1), ready(2), ip(3)], {"WRK-009": destructive()}, wip=5, conc=5) == []


def test_destructive_runs_alone_when_nothing_is_running() -> None:
    items = [ip(1, "build"), ip(2, "prd"), make(3)]
    assert select(items, wip=5, conc=5) == ["run 1 build!"]


def test_destructive_after_a_queued_phase_action_stops_filling() -> None:
    # review outranks build; build then waits, and lower priorities are not scheduled past it.
    items = [ip(1, "review"), ip(2, "build"), ip(3, "prd"), make(4)]
    assert select(items, wip=5, conc=5) == ["run 1 review"]


def test_destructive_waits_for_running_work_to_drain() -> None:
    items = [ip(1, "build"), make(2)]
    assert select(items, {"WRK-009": nd()}, wip=5, conc=5) == []


def test_promotions_before_a_destructive_do_not_count_as_queued_work() -> None:
    actions = select([ready(1, pipeline_type="hot"), make(2)], wip=1, conc=5)
    assert actions == ["promote 1 ship", "run 1 ship!"]


def test_promotion_kept_when_its_destructive_phase_must_wait() -> None:
    actions = select([ready(1, pipeline_type="hot"), make(2)], {"WRK-009": nd()}, wip=1, conc=5)
    assert actions == ["promote 1 ship"]


def test_worktree_isolation_lifts_exclusivity() -> None:
    items = [ip(1, "build"), ip(2, "build", age=1), make(3)]
    assert select(items, wip=5, conc=5, iso=WORKTREE) == [
        "run 1 build!",
        "run 2 build!",
        "triage 3",
    ]


def test_worktree_running_destructive_blocks_nothing_but_takes_a_slot() -> None:
    items = [ip(1, "build"), make(2), make(3)]
    running = {"WRK-009": destructive()}
    assert select(items, running, wip=5, conc=3, iso=WORKTREE) == ["run 1 build!", "triage 2"]


# --- dependencies ----------------------------------------------------------------------


def dep_item(status: ItemStatus | None, *, archived: bool = False) -> list[Item]:
    """The dependency WRK-050 in the given state (None: not in the list at all)."""
    if status is None:
        return []
    phase = {S.SCOPING: "research", S.IN_PROGRESS: "prd"}.get(status)
    pool = PhasePool.PRE if status is S.SCOPING else PhasePool.MAIN
    return [make(50, status, phase=phase, phase_pool=pool, archived=archived)]


DEPENDENTS = {
    "new": lambda: make(1, dependencies=("WRK-050",)),
    "scoping": lambda: scoping(1, dependencies=("WRK-050",)),
    "ready": lambda: ready(1, dependencies=("WRK-050",)),
    "in_progress": lambda: ip(1, dependencies=("WRK-050",)),
}


@pytest.mark.parametrize("dependent", sorted(DEPENDENTS))
@pytest.mark.parametrize(
    ("dep_status", "archived", "met"),
    [
        (None, False, True),
        (S.DONE, False, True),
        (S.IN_PROGRESS, True, True),
        (S.NEW, False, False),
        (S.SCOPING, False, False),
        (S.READY, False, False),
        (S.IN_PROGRESS, False, False),
        (S.BLOCKED, False, False),
    ],
)
def test_dependency_gating(
    dependent: str, dep_status: ItemStatus | None, archived: bool, met: bool
) -> None:
    item = DEPENDENTS[dependent]()
    others = dep_item(dep_status, archived=archived)
    running = {"WRK-050": nd()}  # keep the dependency itself out of the picture
    actions = select([item, *others], running, wip=9, conc=9)
    assert any(a.split()[1] == "1" for a in actions) is met


@pytest.mark.parametrize(
    ("statuses", "met"),
    [
        ((S.DONE, S.DONE), True),
        ((S.DONE, None), True),
        ((S.DONE, S.READY), False),
        ((None, S.BLOCKED), False),
    ],
)
def test_every_dependency_must_be_met(statuses: tuple[ItemStatus | None, ...], met: bool) -> None:
    deps = [make(60 + i, s) for i, s in enumerate(statuses) if s is not None]
    item = make(1, dependencies=("WRK-060", "WRK-061"))
    running = {d.id: nd() for d in deps}
    assert (select([item, *deps], running, conc=9) == ["triage 1"]) is met


def test_dependency_on_running_item_is_unmet() -> None:
    items = [make(1, dependencies=("WRK-002",)), ip(2)]
    assert select(items, {"WRK-002": nd()}, wip=3, conc=3) == []


def test_dependent_scheduled_once_dependency_is_done() -> None:
    items = [make(1, dependencies=("WRK-002",)), make(2, S.DONE)]
    assert select(items) == ["triage 1"]


def test_blocked_dependency_does_not_stop_unrelated_items() -> None:
    items = [make(1, dependencies=("WRK-002",)), make(2, S.BLOCKED), make(3)]
    assert select(items, conc=3) == ["triage 3"]


def test_waiting_on_dependencies_reports_each_waiting_item() -> None:
    items = [
        make(1, dependencies=("WRK-002", "WRK-003", "WRK-004")),
        make(2, S.READY),
        make(3, S.DONE),
        make(5, S.BLOCKED, dependencies=("WRK-002",)),
        make(6, S.DONE, dependencies=("WRK-002",)),
        make(7, dependencies=("WRK-008",)),
        make(8, S.IN_PROGRESS, archived=True),
    ]
    assert waiting_on_dependencies(items) == [("WRK-001", ["WRK-002 (ready)"])]


# --- sleeping and `only` ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "scheduled"), [(60, True), (0, True), (-1, False), (-3600, False)]
)
def test_sleeping_items_are_skipped_until_wake_at(offset: int, scheduled: bool) -> None:
    wake = format_timestamp(NOW - timedelta(seconds=offset))
    items = [make(1, wake_at=wake), ready(2, wake_at=wake), ip(3, wake_at=wake)]
    actions = select(items, wip=5, conc=5)
    assert bool(actions) is scheduled
    if scheduled:
        assert len(actions) == 4


def test_sleeping_item_frees_its_slot_for_others() -> None:
    wake = format_timestamp(NOW + timedelta(hours=1))
    assert select([ip(1, "spec", wake_at=wake), make(2)], wip=3) == ["triage 2"]


def test_only_restricts_candidates() -> None:
    items = [ip(1, "spec"), make(2), ready(3), make(4)]
    assert select(items, wip=5, conc=5, only={"WRK-002", "WRK-003"}) == [
        "promote 3 prd",
        "run 3 prd",
        "triage 2",
    ]


def test_only_judges_dependencies_against_the_whole_backlog() -> None:
    items = [make(1, dependencies=("WRK-002",)), make(2, S.READY)]
    assert select(items, conc=3, only={"WRK-001"}) == []


def test_only_judges_wip_against_the_whole_backlog() -> None:
    items = [ip(1), ready(2)]
    assert select(items, wip=1, conc=3, only={"WRK-002"}) == []


def test_empty_only_schedules_nothing() -> None:
    assert select([make(1), ready(2)], wip=3, conc=3, only=set()) == []


def test_archived_items_are_never_scheduled() -> None:
    assert select([make(1, archived=True), ready(2, archived=True)], wip=3, conc=3) == []


# --- targeted mode ---------------------------------------------------------------------


def targeted(
    target: Item | None,
    others: Sequence[Item] = (),
    running: Mapping[str, RunningTask] | None = None,
    *,
    iso: Isolation = SHARED,
) -> list[str]:
    items = [*others, *([target] if target else [])]
    config = ExecutionConfig(max_wip=1, max_concurrent=1, isolation=iso)
    return show(select_targeted_actions(target, items, running or {}, config, PIPES, NOW))


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (None, []),
        (make(1), ["triage 1"]),
        (ready(1), ["promote 1 prd", "run 1 prd"]),
        (scoping(1), ["run 1 research"]),
        (ip(1, "spec"), ["run 1 spec"]),
        (ip(1, "build"), ["run 1 build!"]),
        (make(1, S.BLOCKED, phase="prd"), []),
        (make(1, S.DONE), []),
        (ip(1, "nope"), []),
        (make(1, S.IN_PROGRESS), []),
    ],
)
def test_targeted_by_status(target: Item | None, expected: list[str]) -> None:
    assert targeted(target) == expected


def test_targeted_ignores_wip_and_concurrency_and_other_items() -> None:
    others = [ip(2, "review"), make(3)]
    assert targeted(ready(1), others, {"WRK-002": nd()}) == ["promote 1 prd", "run 1 prd"]


def test_targeted_unmet_dependency_means_nothing() -> None:
    assert targeted(make(1, dependencies=("WRK-002",)), [make(2)]) == []
    assert targeted(make(1, dependencies=("WRK-002",)), [make(2, S.DONE)]) == ["triage 1"]


def test_targeted_nothing_while_destructive_runs_or_target_runs() -> None:
    assert targeted(make(1), [], {"WRK-009": destructive()}) == []
    assert targeted(ip(1), [], {"WRK-001": nd()}) == []


def test_targeted_sleeping_target_means_nothing() -> None:
    assert targeted(make(1, wake_at=format_timestamp(NOW + timedelta(minutes=5)))) == []


def test_targeted_destructive_phase_waits_for_running_work_in_shared_mode() -> None:
    assert targeted(ip(1, "build"), [], {"WRK-009": nd()}) == []
    assert targeted(ip(1, "build"), [], {"WRK-009": nd()}, iso=WORKTREE) == ["run 1 build!"]
    assert targeted(make(1), [], {"WRK-009": destructive()}, iso=WORKTREE) == ["triage 1"]


def test_targeted_ready_with_destructive_first_phase_waits_for_running_work() -> None:
    assert targeted(ready(1, pipeline_type="hot"), [], {"WRK-009": nd()}) == ["promote 1 ship"]
    assert targeted(ready(1, pipeline_type="hot")) == ["promote 1 ship", "run 1 ship!"]


def test_a_run_waiting_out_its_backoff_holds_its_item_but_no_slot_or_tree() -> None:
    waiting = {"WRK-001": RunningTask("build", is_destructive=True, waiting=True)}
    items = [ip(1, "build"), ip(2, "prd")]
    assert select(items, waiting, wip=2, conc=1) == ["run 2 prd"]
    assert select(items, {"WRK-001": destructive()}, wip=2, conc=1) == []
