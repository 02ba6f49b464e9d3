"""Races between workers over one run (DESIGN §6, §14): a run is ended once, by the worker
that holds it. A bug of ours after a run already ended blocks the item for a human, unless
another worker ended the run meanwhile and a newer run of the item is already at work; a
sweep never ends, completes or adopts a run another worker took over after the sweep read
it; a late completion of a run ended elsewhere writes nothing; an agent whose run was ended
elsewhere is stopped, one adopted by another worker is left to it."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from phase_golem.agents.base import StreamInfo
from phase_golem.agents.orphans import AgentTable
from phase_golem.agents.runner import AgentOutcome
from phase_golem.domain.events import EventKind
from phase_golem.domain.items import ItemStatus, PhasePool, format_timestamp, new_item, touch
from phase_golem.domain.items import transition as move
from phase_golem.domain.pipelines import (
    ExecutionConfig,
    Isolation,
    PhaseConfig,
    PipelineConfig,
    Settings,
)
from phase_golem.domain.results import PhaseResult, ResultCode
from phase_golem.domain.runs import (
    EndedElsewhere,
    Holder,
    Run,
    RunKind,
    RunStatus,
    Step,
    advance_step,
    finish,
)
from phase_golem.engine import scheduler as scheduler_module
from phase_golem.engine.claims import ClaimPolicy
from phase_golem.engine.completion import complete_run
from phase_golem.engine.context import EngineContext
from phase_golem.engine.executor import cancel_run, execute_run, fail_internally
from phase_golem.engine.git_view import ROOT_TREE
from phase_golem.engine.leases import leased
from phase_golem.engine.recovery import adopt_run, recover_all, take_over
from phase_golem.engine.scheduler import Scheduler
from phase_golem.engine.selection import RunOptions
from phase_golem.host import this_host
from phase_golem.store import PendingCommit, Store, Transaction
from phase_golem.store.memory import MemoryStore
from tests.conftest import make_git_repo
from tests.waiting import DEADLINE_SECONDS

SETTINGS = Settings(
    pipelines=MappingProxyType(
        {"feature": PipelineConfig("feature", (PhaseConfig("plan", False),))}
    )
)


def _queued_plan(tx: Transaction, **fields: Any) -> Run:
    """Inside a transaction: an item in its plan phase, and a plan run of it queued."""
    item = new_item(tx.allocate_item_id("WRK"), "Planned", tx.now)
    tx.create_item(item)
    for status in (ItemStatus.SCOPING, ItemStatus.READY, ItemStatus.IN_PROGRESS):
        item = move(item, status, tx.now)
    item = touch(item, tx.now, phase="plan", phase_pool=PhasePool.MAIN, pipeline_type="feature")
    tx.save_item(item, EventKind.ITEM_TRANSITION)
    run = Run(
        id=tx.allocate_run_id(),
        item_id=item.id,
        phase="plan",
        kind=RunKind.PHASE,
        queued_at=format_timestamp(tx.now),
        pool=PhasePool.MAIN,
        **fields,
    )
    tx.create_run(run)
    return run


def _ended_run(store: Store) -> Run:
    """An item in its plan phase whose plan run has ended (crashed, say)."""
    with store.transaction() as tx:
        ended = finish(_queued_plan(tx), RunStatus.CRASHED, format_timestamp(tx.now))
        tx.save_run(ended, EventKind.RUN_FINISHED)
        return ended


def _status(store: Store, item_id: str) -> ItemStatus:
    with store.reader() as tx:
        return tx.require_item(item_id).status


def test_a_bug_after_the_run_ended_blocks_its_item(tmp_path: Path) -> None:
    store = MemoryStore()
    run = _ended_run(store)
    ctx = EngineContext(tmp_path, tmp_path, SETTINGS, store, "host:1:1")
    assert fail_internally(ctx, run.id, RuntimeError("boom")) is True
    assert _status(store, run.item_id) is ItemStatus.BLOCKED


def test_a_run_another_worker_ended_and_retried_leaves_the_retry_alone(tmp_path: Path) -> None:
    store = MemoryStore()
    run = _ended_run(store)
    with store.transaction() as tx:  # the other worker's recovery queued the retry
        retry = Run(
            id=tx.allocate_run_id(),
            item_id=run.item_id,
            phase="plan",
            kind=RunKind.PHASE,
            queued_at=format_timestamp(tx.now),
            pool=PhasePool.MAIN,
            retry_of=run.id,
        )
        tx.create_run(retry)
    ctx = EngineContext(tmp_path, tmp_path, SETTINGS, store, "host:1:1")
    assert fail_internally(ctx, run.id, RuntimeError("ended elsewhere")) is False
    assert _status(store, run.item_id) is ItemStatus.IN_PROGRESS


def test_a_sweep_never_ends_a_run_another_worker_took_over_since_it_read_it(
    tmp_path: Path,
) -> None:
    # The sweep reads a run whose worker died (lease expired); before its transaction a
    # worker restarted in that clone adopts the run's live agent (new owner, new lease).
    store = MemoryStore()
    with store.transaction() as tx:
        queued = _queued_plan(tx)
        read_by_sweep = advance_step(queued, Step.STARTED).replace(
            worker_id="host:1:1", lease_until="2000-01-01T00:00:00+00:00"
        )
        tx.save_run(read_by_sweep, EventKind.RUN_STARTED)
    with store.transaction() as tx:
        adopted = read_by_sweep.replace(
            worker_id="host:2:2", lease_until="2999-01-01T00:00:00+00:00"
        )
        tx.save_run(adopted, EventKind.RUN_UPDATED, {"adopted_by": "host:2:2"})
    recover_all(store, SETTINGS, tmp_path, [read_by_sweep], AgentTable(tmp_path))
    with store.reader() as tx:
        current = tx.get_run(read_by_sweep.id)
    assert current is not None and current.status is RunStatus.ACTIVE
    assert current.worker_id == "host:2:2"


def _started_by(store: Store, worker: str, lease: str) -> Run:
    with store.transaction() as tx:
        started = advance_step(_queued_plan(tx), Step.STARTED)
        started = started.replace(worker_id=worker, lease_until=lease)
        tx.save_run(started, EventKind.RUN_STARTED)
        return started


def _complete_plan(store: Store, run: Run, holder: Holder | None = None) -> None:
    result = PhaseResult(run.item_id, "plan", ResultCode.PHASE_COMPLETE, "planned")
    outcome = AgentOutcome(result, None, None, StreamInfo())
    complete_run(store, SETTINGS, run.id, outcome, holder=holder)


def _ledger_size(store: Store) -> int:
    with store.reader() as tx:
        return len(list(tx.events()))


def test_a_completion_of_a_run_that_ended_elsewhere_writes_nothing(tmp_path: Path) -> None:
    # A worker whose lease ran out under load finishes its agent after another worker
    # already completed the run and its item: the late completion must not move the item
    # again (it used to raise "cannot move from done to done" out of the worker).
    store = MemoryStore()
    run = _started_by(store, "host:1:1", "2999-01-01T00:00:00+00:00")
    _complete_plan(store, run, Holder("host:1:1"))
    assert _status(store, run.item_id) is ItemStatus.DONE
    events = _ledger_size(store)
    with pytest.raises(EndedElsewhere):
        _complete_plan(store, run, Holder("host:1:1"))
    with pytest.raises(EndedElsewhere):
        _complete_plan(store, run)
    assert _ledger_size(store) == events


def test_a_sweeps_completion_of_a_run_adopted_since_it_read_it_is_refused(
    tmp_path: Path,
) -> None:
    # The sweep reads a lapsed side-effect run and asks its reconcile check (slow); in
    # between a restarted worker adopts the run's live agent. The sweep's completion from
    # the check must not end the run under the adopter, who completes it itself.
    store = MemoryStore()
    read_by_sweep = _started_by(store, "host:1:1", "2000-01-01T00:00:00+00:00")
    ctx = EngineContext(tmp_path, tmp_path, SETTINGS, store, "host:2:2")
    taken = take_over(ctx, [read_by_sweep])[read_by_sweep.id]
    assert taken is not None and taken.worker_id == "host:2:2"
    with pytest.raises(EndedElsewhere):
        _complete_plan(store, read_by_sweep, Holder.of_lapsed(read_by_sweep))
    assert _status(store, read_by_sweep.item_id) is ItemStatus.IN_PROGRESS
    _complete_plan(store, read_by_sweep, Holder("host:2:2"))
    assert _status(store, read_by_sweep.item_id) is ItemStatus.DONE


def test_two_workers_adopting_one_run_only_the_first_takes_it(tmp_path: Path) -> None:
    store = MemoryStore()
    seen = _started_by(store, "host:1:1", "2000-01-01T00:00:00+00:00")
    first = EngineContext(tmp_path, tmp_path, SETTINGS, store, "host:2:2")
    second = EngineContext(tmp_path, tmp_path, SETTINGS, store, "host:3:3")
    take_over(first, [seen])
    late = take_over(second, [seen])[seen.id]
    assert late is not None and late.worker_id == "host:2:2"
    # The loser neither adopts nor cancels it, nor ends it for a bug of its own.
    with pytest.raises(EndedElsewhere):
        asyncio.run(adopt_run(second, seen.id, taken=late))
    assert cancel_run(second, seen.id) is None
    assert fail_internally(second, seen.id, RuntimeError("late")) is False
    with store.reader() as tx:
        current = tx.get_run(seen.id)
    assert current is not None and current.is_active and current.worker_id == "host:2:2"


FAST_LEASE = ExecutionConfig(lease_seconds=0.15)


async def _hold_lease_while(
    store: Store, run: Run, worker: str, change: Callable[[Transaction, Run], None]
) -> bool:
    """Work for up to 2 s under the run's lease while another worker `change`s the run
    (in a transaction of its own); True when the work ran to its end."""

    async def work() -> bool:
        async with leased(store, run.id, worker, FAST_LEASE):
            await asyncio.sleep(2.0)
        return True

    task = asyncio.create_task(work())
    await asyncio.sleep(0.1)
    with store.transaction() as tx:
        current = tx.get_run(run.id)
        assert current is not None
        change(tx, current)
    return await task


def test_an_agent_whose_run_another_worker_ended_is_stopped() -> None:
    # Its lease ran out under load; a worker on another host ended the run and retried it.
    # The agent still at work is stopped at the next beat: its work can never be recorded,
    # and a side effect it was about to make would be made twice.
    store = MemoryStore()
    run = _started_by(store, "host:1:1", "2999-01-01T00:00:00+00:00")

    def end_it(tx: Transaction, current: Run) -> None:
        ended = finish(current, RunStatus.CRASHED, format_timestamp(tx.now))
        tx.save_run(ended, EventKind.RUN_FINISHED)

    with pytest.raises(EndedElsewhere):
        asyncio.run(_hold_lease_while(store, run, "host:1:1", end_it))


def test_an_agent_another_worker_adopted_is_left_to_it() -> None:
    # A worker on this host adopted the run (it watches the same agent): ours stops renewing
    # but leaves the agent alone.
    store = MemoryStore()
    run = _started_by(store, "host:1:1", "2999-01-01T00:00:00+00:00")

    def adopt_it(tx: Transaction, current: Run) -> None:
        tx.save_run(current.replace(worker_id="host:2:2"), EventKind.RUN_UPDATED)

    assert asyncio.run(_hold_lease_while(store, run, "host:1:1", adopt_it)) is True


def test_an_adopted_agent_whose_run_another_worker_ended_is_stopped_and_leaves_its_tree(
    tmp_path: Path,
) -> None:
    # A restarted worker adopted a live agent (not its child); then its own lease ran out
    # and a worker on another host ended the run. The agent must not act on beside the
    # retry, and the run must leave the tree (else every later run there seems to overlap it).
    root = make_git_repo(tmp_path / "repo")
    settings = dataclasses.replace(SETTINGS, execution=FAST_LEASE)
    store = MemoryStore()
    seen = _started_by(store, "host:1:1", "2000-01-01T00:00:00+00:00")
    env = {**os.environ, "PHASE_GOLEM_RUN_ID": seen.id, "PHASE_GOLEM_ROOT": str(root)}
    agent = subprocess.Popen(["sleep", "60"], env=env, start_new_session=True)
    try:
        host = this_host()
        with store.transaction() as tx:
            seen = seen.replace(pid=agent.pid, host_id=host.host_id, boot_id=host.boot_id)
            tx.save_run(seen, EventKind.RUN_UPDATED)
        ctx = EngineContext(root, root, settings, store, "host:2:2", host=host)
        taken = take_over(ctx, [seen])[seen.id]

        async def adopt_then_lose_it() -> None:
            adopting = asyncio.create_task(adopt_run(ctx, seen.id, taken=taken))
            await asyncio.sleep(0.3)
            with store.transaction() as tx:  # the other host's sweep
                current = tx.get_run(seen.id)
                assert current is not None
                tx.save_run(finish(current, RunStatus.CRASHED, tx.stamp), EventKind.RUN_FINISHED)
            await adopting

        with pytest.raises(EndedElsewhere):
            asyncio.run(adopt_then_lose_it())
        assert agent.wait(timeout=DEADLINE_SECONDS) is not None  # stopped, not left to act
        assert not ctx.trees.active.get(ROOT_TREE) and not ctx.trees.settling.get(ROOT_TREE)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()


def test_an_agent_whose_run_was_cancelled_on_purpose_is_cancelled_as_usual() -> None:
    # Its item was closed at its source, say: the usual cancel (its worklog line says so),
    # not "ended elsewhere".
    store = MemoryStore()
    run = _started_by(store, "host:1:1", "2999-01-01T00:00:00+00:00")

    def cancel_it(tx: Transaction, current: Run) -> None:
        tx.save_run(finish(current, RunStatus.CANCELLED, tx.stamp), EventKind.RUN_FINISHED)

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(_hold_lease_while(store, run, "host:1:1", cancel_it))


def test_a_claimed_run_another_worker_ended_before_it_started_is_ended_elsewhere(
    tmp_path: Path,
) -> None:
    # Claimed, then held up (waiting for earlier commits, git) past its lease: another
    # worker's sweep ended it. Its start is refused as ended elsewhere, not as a bug of ours
    # (which would count toward the circuit breaker).
    root = make_git_repo(tmp_path / "repo")
    store = MemoryStore()
    with store.transaction() as tx:
        claimed = advance_step(_queued_plan(tx), Step.CLAIMED).replace(
            worker_id="host:1:1", lease_until="2000-01-01T00:00:00+00:00"
        )
        tx.save_run(claimed, EventKind.RUN_CLAIMED)
    with store.transaction() as tx:
        tx.save_run(finish(claimed, RunStatus.CRASHED, tx.stamp), EventKind.RUN_FINISHED)
    ctx = EngineContext(root, root, SETTINGS, store, "host:1:1")
    with pytest.raises(EndedElsewhere):
        asyncio.run(execute_run(ctx, claimed.id))


def test_a_run_whose_item_another_clone_still_owes_a_push_is_not_claimed(
    tmp_path: Path,
) -> None:
    # Clone X completed WRK-001's build and queued its ship; the build's commit is still on
    # its way to the remote. A worker in another clone that claimed the ship now would start
    # it without the build's work, and its own push would be refused (found by the chaos
    # test: the branch diverged and the worker that owed it halted with it unpushed).
    execution = ExecutionConfig(isolation=Isolation.WORKTREE, remote="origin")
    settings = dataclasses.replace(SETTINGS, execution=execution)
    store = MemoryStore()
    with store.transaction() as tx:
        queued = _queued_plan(tx, idempotency_key="ik:1")
        owed = PendingCommit(
            run_id="run-in-another-clone",
            item_id=queued.item_id,
            tree="worktrees/WRK-001",
            phase="build",
            touched=("src/a.txt",),
            own=("src/a.txt",),
            succeeded=True,
            immediate=False,
        )
        tx.save_pending_commits([owed])
    ctx = EngineContext(tmp_path, tmp_path, settings, store, "host:1:1")
    policy = ClaimPolicy(ctx, set())
    with store.transaction() as tx:  # as the scheduler asks: in its decide transaction
        assert policy.claimable(tx, None, cap_reached=False) == (frozenset(), False)
    with store.transaction() as tx:
        tx.save_pending_commits([])  # pushed and recorded by that clone
    with store.transaction() as tx:
        assert policy.claimable(tx, None, cap_reached=False) == (
            frozenset({queued.item_id}),
            False,
        )


def test_an_item_waiting_long_for_another_clones_push_is_said_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The clone that owes the push stopped: its work is only there, and the other workers
    # wait for it; the person watching them is told why nothing moves, once.
    monkeypatch.setattr(scheduler_module, "OWED_PATIENCE_SECONDS", 0.0)
    execution = ExecutionConfig(isolation=Isolation.WORKTREE, remote="origin", lease_seconds=0)
    settings = dataclasses.replace(SETTINGS, execution=execution)
    store = MemoryStore()
    with store.transaction() as tx:
        queued = _queued_plan(tx, idempotency_key="ik:1")
        owed = PendingCommit(
            "run-in-another-clone",
            queued.item_id,
            "worktrees/WRK-001",
            "build",
            (),
            (),
            True,
            False,
        )
        tx.save_pending_commits([owed])
    said: list[str] = []
    ctx = EngineContext(tmp_path, tmp_path, settings, store, "host:1:1")
    worker = Scheduler(ctx, RunOptions(), said.append)
    for _ in range(3):
        with store.transaction() as tx:
            assert set(worker._git_owed(worker.claims.owed_elsewhere(tx))) == {queued.item_id}
    assert [line for line in said if "waits for the clone" in line] == [
        f"[{queued.item_id}] waits for the clone that ran its last phase to push its commit "
        "(the work is only there; `phase-golem run` in that clone pushes it)"
    ]
