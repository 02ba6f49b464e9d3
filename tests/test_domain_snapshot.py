"""The backlog snapshot's indexes (domain/snapshot.py) and the decisions read from them.

Two properties carry the weight here: an incrementally changed snapshot is the same value
as one built from scratch, and the indexed `select_actions` decides exactly what the plain
scan of every item decided (tests/reference_scheduling.py), for any backlog.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from phase_golem.config import default_pipelines
from phase_golem.domain.items import Item, ItemStatus, Level, PhasePool, format_timestamp, new_item
from phase_golem.domain.pipelines import ExecutionConfig, Isolation, PhaseConfig, PipelineConfig
from phase_golem.domain.runs import Run, RunKind, RunStatus, Step
from phase_golem.domain.scheduling import (
    RunningTask,
    next_moment,
    select_actions,
    select_targeted_actions,
    waiting_on_dependencies,
)
from phase_golem.domain.snapshot import BacklogSnapshot
from tests import reference_scheduling as reference

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
PIPES: dict[str, PipelineConfig] = {
    **default_pipelines(),
    "deep": PipelineConfig(
        "deep",
        pre_phases=(PhaseConfig("scan", False), PhaseConfig("research", False)),
        phases=(PhaseConfig("draft", False), PhaseConfig("ship", True)),
    ),
    "hot": PipelineConfig("hot", phases=(PhaseConfig("ship", True), PhaseConfig("check", False))),
}
PHASES = ["research", "prd", "design", "spec", "build", "review", "plan", "scan", "draft", "ship"]
IDS = [f"WRK-{n:03d}" for n in range(1, 25)]


@st.composite
def backlog_items(draw: st.DrawFn, item_id: str) -> Item:
    hours = draw(st.sampled_from([1, 2, 2, 3, 10, 50]))  # ties exercise the ID tie-break
    item = new_item(item_id, f"Item {item_id}", NOW - timedelta(hours=hours))
    wake = draw(st.sampled_from([None, None, -60, 0, 30, 3600]))
    status = draw(st.sampled_from(list(ItemStatus)))
    return item.replace(
        status=status,
        phase=draw(st.none() | st.sampled_from(PHASES)),
        phase_pool=draw(st.none() | st.sampled_from(list(PhasePool))),
        pipeline_type=draw(st.none() | st.sampled_from(["feature", "simple", "deep", "hot", "x"])),
        impact=draw(st.none() | st.sampled_from(list(Level))),
        dependencies=tuple(
            draw(st.lists(st.sampled_from([*IDS, "WRK-099"]), max_size=2, unique=True))
        ),
        wake_at=None if wake is None else format_timestamp(NOW + timedelta(seconds=wake)),
        archived=draw(st.booleans()) and draw(st.booleans()),
    )


@st.composite
def backlogs(draw: st.DrawFn) -> list[Item]:
    chosen = draw(st.lists(st.sampled_from(IDS), max_size=len(IDS), unique=True))
    items = [draw(backlog_items(i)) for i in chosen]
    return [i.replace(dependencies=tuple(d for d in i.dependencies if d != i.id)) for i in items]


@st.composite
def running_tasks(draw: st.DrawFn) -> dict[str, RunningTask]:
    ids = draw(st.lists(st.sampled_from(IDS), max_size=4, unique=True))
    return {
        i: RunningTask(draw(st.sampled_from(PHASES)), draw(st.booleans()), draw(st.booleans()))
        for i in ids
    }


executions = st.builds(
    ExecutionConfig,
    max_wip=st.integers(0, 5),
    max_concurrent=st.integers(1, 6),
    isolation=st.sampled_from(list(Isolation)),
)


@settings(max_examples=250, deadline=None)
@given(
    items=backlogs(),
    running=running_tasks(),
    execution=executions,
    only=st.none() | st.sets(st.sampled_from(IDS)),
)
def test_indexed_decisions_equal_the_plain_scan(
    items: list[Item],
    running: dict[str, RunningTask],
    execution: ExecutionConfig,
    only: set[str] | None,
) -> None:
    active = [i for i in items if not i.archived]
    expected = reference.select_actions(active, running, execution, PIPES, NOW, only)
    snapshot = BacklogSnapshot.of(items)
    assert select_actions(snapshot, running, execution, PIPES, NOW, only) == expected
    # The list form (the unit tests') builds its own snapshot and decides the same.
    full = reference.select_actions(items, running, execution, PIPES, NOW, only)
    assert select_actions(items, running, execution, PIPES, NOW, only) == full
    oldest_first = sorted(active, key=lambda i: (i.created_at, i.id))  # as the store lists them
    assert waiting_on_dependencies(snapshot) == reference.waiting_on_dependencies(oldest_first)
    for target in active[:3]:
        assert select_targeted_actions(
            target, snapshot, running, execution, PIPES, NOW
        ) == select_targeted_actions(target, active, running, execution, PIPES, NOW)


@settings(max_examples=200, deadline=None)
@given(items=backlogs(), scope=st.none() | st.sets(st.sampled_from(IDS)))
def test_next_wake_from_the_index_equals_the_scan(
    items: list[Item], scope: set[str] | None
) -> None:
    active = [i for i in items if not i.archived]

    def in_scope(item_id: str) -> bool:
        return scope is None or item_id in scope

    indexed = next_moment([], BacklogSnapshot.of(items), NOW, in_scope)
    assert indexed == next_moment([], active, NOW, in_scope)


def _run(n: int, item_id: str, status: RunStatus) -> Run:
    return Run(
        id=f"run-{n:06d}-{item_id}",  # a run belongs to one item for ever
        item_id=item_id,
        phase="prd",
        kind=RunKind.PHASE,
        queued_at=format_timestamp(NOW + timedelta(seconds=n)),
        step=Step.QUEUED,
        status=status,
    )


@settings(max_examples=100, deadline=None)
@given(
    first=backlogs(),
    batches=st.lists(st.tuples(backlogs(), st.booleans()), max_size=6),
    runs=st.lists(
        st.tuples(st.integers(1, 6), st.sampled_from(IDS), st.sampled_from(list(RunStatus))),
        max_size=12,
    ),
)
def test_changes_applied_one_by_one_equal_a_fresh_build(
    first: list[Item],
    batches: list[tuple[list[Item], bool]],
    runs: list[tuple[int, str, RunStatus]],
) -> None:
    latest = {i.id: i for i in first}
    snapshot = BacklogSnapshot.of(first)
    for batch, one_by_one in batches:
        if one_by_one:
            for item in batch:
                snapshot = snapshot.with_changes([item])
        else:
            snapshot = snapshot.with_changes(batch)
        latest.update({i.id: i for i in batch})
    live: dict[str, Run] = {}
    for n, item_id, status in runs:
        run = _run(n, item_id, status)
        held = [r for r in live.values() if r.item_id == item_id and r.is_active]
        if run.is_active and any(r.id != run.id for r in held):
            continue  # one live run per item: the stores' unique index never allows two
        snapshot = snapshot.with_changes(runs=[run])
        live[run.id] = run
    fresh = BacklogSnapshot.of(latest.values(), runs=[r for r in live.values() if r.is_active])
    assert snapshot.content() == fresh.content()
    assert snapshot.items() == fresh.items()


def test_untouched_items_and_indexes_are_shared_not_copied() -> None:
    items = [new_item(f"WRK-{n:03d}", "t", NOW + timedelta(minutes=n)) for n in range(1, 50)]
    before = BacklogSnapshot.of(items)
    after = before.with_changes([items[3].replace(title="changed")])
    assert after.get("WRK-001") is before.get("WRK-001")
    assert after.entries["WRK-001"] is before.entries["WRK-001"]
    assert after.queues is not before.queues or after.queues == before.queues
    assert after.version == before.version + 1
    assert before.get("WRK-004").title == "t"  # type: ignore[union-attr]


def test_a_dependency_that_goes_frees_its_dependents() -> None:
    first = new_item("WRK-001", "first", NOW)
    second = new_item("WRK-002", "second", NOW + timedelta(minutes=1), dependencies=("WRK-001",))
    snapshot = BacklogSnapshot.of([first, second])
    assert snapshot.waiting_ids() == ["WRK-002"]
    done = snapshot.with_changes([first.replace(archived=True)])
    assert done.waiting_ids() == [] and "WRK-001" not in done
    back = done.with_changes([first])  # a dependency that appears holds its dependents again
    assert back.waiting_ids() == ["WRK-002"]


def test_live_runs_are_kept_by_item_and_ended_ones_leave() -> None:
    item = new_item("WRK-001", "t", NOW)
    queued = _run(1, "WRK-001", RunStatus.ACTIVE)
    snapshot = BacklogSnapshot.of([item], runs=[queued])
    assert snapshot.run_for("WRK-001") == queued and snapshot.runs() == [queued]
    ended = snapshot.with_changes(runs=[queued.replace(status=RunStatus.COMMITTED)])
    assert ended.run_for("WRK-001") is None and ended.runs() == []
