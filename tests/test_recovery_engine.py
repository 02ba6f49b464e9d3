"""Recovery at the engine layer: every kill point leaves a run the rules of DESIGN §6 mend,
and the lease sweep takes over only runs whose owner stopped renewing them."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType

import pytest

from phase_golem.agents.base import StreamInfo
from phase_golem.agents.runner import AgentOutcome
from phase_golem.domain.endings import Decision
from phase_golem.domain.events import EventKind
from phase_golem.domain.items import (
    ItemStatus,
    PhasePool,
    format_timestamp,
    new_item,
    touch,
    transition,
)
from phase_golem.domain.pipelines import PhaseConfig, PipelineConfig, Settings
from phase_golem.domain.results import PhaseResult, ResultCode
from phase_golem.domain.runs import Mutation, Run, RunKind, RunStatus, Step
from phase_golem.engine import completion
from phase_golem.engine.recovery import recover_interrupted_runs, sweep_expired_leases
from phase_golem.engine.resolution import resolve_run
from phase_golem.store import Store
from phase_golem.store.sqlite import SqliteStore


def _settings(reconcile: str | None = None) -> Settings:
    ship = PhaseConfig("ship", False, side_effect=True, reconcile=reconcile)
    pipeline = PipelineConfig("feature", (PhaseConfig("plan", False), ship))
    return Settings(pipelines=MappingProxyType({"feature": pipeline}))


@pytest.fixture
def store(tmp_path: Path) -> Store:
    (tmp_path / ".phase-golem").mkdir()
    return SqliteStore(tmp_path / ".phase-golem" / "state.db")


def _item_at(store: Store, phase: str) -> str:
    with store.transaction() as tx:
        item_id = tx.allocate_item_id("WRK")
        item = new_item(item_id, "Deploy", tx.now)
        tx.create_item(item)
        item = transition(
            transition(transition(item, ItemStatus.SCOPING, tx.now), ItemStatus.READY, tx.now),
            ItemStatus.IN_PROGRESS,
            tx.now,
        )
        item = touch(item, tx.now, phase=phase, phase_pool=PhasePool.MAIN)
        tx.save_item(item, EventKind.ITEM_TRANSITION)
    return item_id


def _run(store: Store, item_id: str, phase: str, step: Step, **fields: object) -> Run:
    with store.transaction() as tx:
        run = Run(
            id=tx.allocate_run_id(),
            item_id=item_id,
            phase=phase,
            kind=RunKind.PHASE,
            queued_at=format_timestamp(tx.now),
            pool=PhasePool.MAIN,
            idempotency_key="ik:fixed",
            side_effect=phase == "ship",
        )
        tx.create_run(run)
        later = run.replace(step=step, worker_id="gone:1", **fields)
        tx.save_run(later, EventKind.RUN_CLAIMED)
        return later


def _runs(store: Store, item_id: str) -> list[Run]:
    with store.reader() as tx:
        return sorted(tx.list_runs(item_id=item_id), key=lambda r: r.id)


def _kinds(store: Store, run_id: str) -> list[str]:
    with store.reader() as tx:
        return [e.kind.value for e in tx.events() if e.run_id == run_id]


def test_a_run_killed_between_claim_and_start_is_retried_with_its_key_and_attempt(
    store: Store, tmp_path: Path
) -> None:
    item = _item_at(store, "plan")
    claimed = _run(store, item, "plan", Step.CLAIMED)
    recovered = recover_interrupted_runs(store, _settings(), tmp_path)
    assert (recovered.runs, recovered.adopt) == ([claimed.id], [])
    crashed, retry = _runs(store, item)
    assert (crashed.status, retry.status, retry.step) == (
        RunStatus.CRASHED,
        RunStatus.ACTIVE,
        Step.QUEUED,
    )
    assert (retry.retry_of, retry.attempt, retry.idempotency_key) == (crashed.id, 1, "ik:fixed")
    assert "run.finished" in _kinds(store, crashed.id)


def test_a_queued_run_is_left_alone_and_a_second_recovery_changes_nothing(
    store: Store, tmp_path: Path
) -> None:
    item = _item_at(store, "plan")
    _run(store, item, "plan", Step.CLAIMED)
    recover_interrupted_runs(store, _settings(), tmp_path)
    before = _runs(store, item)
    again = recover_interrupted_runs(store, _settings(), tmp_path)
    assert (again.runs, again.adopt, again.completed) == ([], [], [])
    assert _runs(store, item) == before


def test_a_started_run_whose_result_was_written_is_adopted(store: Store, tmp_path: Path) -> None:
    item = _item_at(store, "plan")
    started = _run(store, item, "plan", Step.STARTED)
    run_dir = tmp_path / ".phase-golem" / "runs" / started.id
    run_dir.mkdir(parents=True)
    (run_dir / "result.json").write_text("{}")
    recovered = recover_interrupted_runs(store, _settings(), tmp_path)
    assert recovered.runs == [] and [r.id for r in recovered.adopt] == [started.id]
    assert _runs(store, item)[0].is_active  # adoption completes it from the file


def test_an_uncertain_side_effect_without_a_check_waits_for_a_human(
    store: Store, tmp_path: Path
) -> None:
    item = _item_at(store, "ship")
    ship = _run(store, item, "ship", Step.STARTED, mutation=Mutation.IN_FLIGHT)
    recover_interrupted_runs(store, _settings(), tmp_path)
    [paused] = _runs(store, item)
    assert (paused.status, paused.mutation) == (
        RunStatus.PAUSED_INDETERMINATE,
        Mutation.INDETERMINATE,
    )
    assert _kinds(store, ship.id)[-2:] == ["run.finished", "run.indeterminate"]
    with store.reader() as tx:
        blocked = tx.require_item(item)
    assert blocked.status is ItemStatus.BLOCKED and f"resolve {ship.id}" in (
        blocked.blocked_reason or ""
    )
    resolve_run(store, _settings(), ship.id, Decision.HAPPENED)
    with store.reader() as tx:
        done = tx.require_item(item)
    assert done.archived and done.status is ItemStatus.DONE


@pytest.mark.parametrize(
    ("code", "status", "mutation"),
    [
        (0, RunStatus.COMMITTED, Mutation.APPLIED),
        (1, RunStatus.CRASHED, Mutation.FAILED),
        (7, RunStatus.PAUSED_INDETERMINATE, Mutation.INDETERMINATE),
    ],
)
def test_recovery_asks_the_reconcile_check_before_anyone(
    store: Store, tmp_path: Path, code: int, status: RunStatus, mutation: Mutation
) -> None:
    item = _item_at(store, "ship")
    ship = _run(store, item, "ship", Step.STARTED, mutation=Mutation.IN_FLIGHT)
    check = f"{sys.executable} -c 'import sys; sys.exit({code})'"
    recovered = recover_interrupted_runs(store, _settings(check), tmp_path)
    assert [c.run.id for c in recovered.completed] == ([ship.id] if code == 0 else [])
    runs = _runs(store, item)
    assert (runs[0].status, runs[0].mutation) == (status, mutation)
    assert "run.reconciled" in _kinds(store, ship.id)
    with store.reader() as tx:
        current = tx.require_item(item)
    if code == 0:
        assert current.status is ItemStatus.DONE and len(runs) == 1
    elif code == 1:
        assert runs[1].retry_of == ship.id and runs[1].is_active
        assert current.status is ItemStatus.IN_PROGRESS
    else:
        assert current.status is ItemStatus.BLOCKED and len(runs) == 1


def test_the_sweep_takes_over_only_expired_leases_that_are_not_ours(
    store: Store, tmp_path: Path
) -> None:
    with store.reader() as tx:
        now = tx.now
    past = format_timestamp(now - timedelta(seconds=5))
    future = format_timestamp(now + timedelta(seconds=60))
    expired = _run(store, _item_at(store, "plan"), "plan", Step.CLAIMED, lease_until=past)
    fresh = _run(store, _item_at(store, "plan"), "plan", Step.CLAIMED, lease_until=future)
    ours = _run(store, _item_at(store, "plan"), "plan", Step.STARTED, lease_until=past)
    recovered = sweep_expired_leases(store, _settings(), tmp_path, {ours.id})
    assert (recovered.runs, recovered.adopt) == ([expired.id], [])
    with store.reader() as tx:
        assert tx.get_run(expired.id).status is RunStatus.CRASHED  # type: ignore[union-attr]
        assert tx.get_run(fresh.id).is_active  # type: ignore[union-attr]
        assert tx.get_run(ours.id).is_active  # type: ignore[union-attr]


def test_a_crash_inside_completion_leaves_nothing_half_applied(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Completion is one transaction: cut it anywhere and none of it is there, so the next
    attempt (adoption from the result file) applies the result exactly once."""
    item = _item_at(store, "plan")
    started = _run(store, item, "plan", Step.STARTED)
    result = PhaseResult(
        item, "plan", ResultCode.PHASE_COMPLETE, "planned", follow_ups=(), commit_summary="x"
    )
    outcome = AgentOutcome(result, None, None, StreamInfo(cost_usd=0.5))
    with store.reader() as tx:
        events_before = len(tx.events())

    def power_cut(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # as abrupt as it gets inside the transaction

    monkeypatch.setattr(completion, "_ingest_follow_ups", power_cut)
    with pytest.raises(KeyboardInterrupt):
        completion.complete_run(store, _settings(), started.id, outcome)
    with store.reader() as tx:
        assert len(tx.events()) == events_before
        assert tx.get_run(started.id) == started
        untouched = tx.require_item(item)
    assert (untouched.phase, untouched.cost_usd) == ("plan", 0.0)
    monkeypatch.undo()
    done = completion.complete_run(store, _settings(), started.id, outcome)
    assert done.run.status is RunStatus.COMMITTED
    with store.reader() as tx:
        advanced = tx.require_item(item)
        finished = [e for e in tx.events() if e.kind is EventKind.RUN_FINISHED]
    assert (advanced.phase, advanced.cost_usd, len(finished)) == ("ship", 0.5, 1)
