"""Two workers' schedulers on one PostgreSQL database keep destructive exclusivity global.

Worker A and worker B are two real `Scheduler`s, each with its own store (its own pool
and connections) on one database, as two `phase-golem run` processes on two hosts are.
Their decisions are driven step by step, so the interleavings that matter happen for sure:
B sees A's live run and does not start a destructive one beside it; and when A claims a
run between B's decision and B's claim, B's claim (one transaction) takes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import MappingProxyType

import pytest

from phase_golem.domain.events import EventKind
from phase_golem.domain.items import ItemStatus, PhasePool, format_timestamp, new_item, touch
from phase_golem.domain.items import transition as move
from phase_golem.domain.pipelines import PhaseConfig, PipelineConfig, Settings
from phase_golem.domain.runs import Run, RunKind, RunStatus, finish
from phase_golem.engine.claims import claim_alone
from phase_golem.engine.context import EngineContext
from phase_golem.engine.scheduler import Scheduler
from phase_golem.engine.selection import RunOptions
from phase_golem.store import Store

SETTINGS = Settings(
    pipelines=MappingProxyType(
        {
            "feature": PipelineConfig(
                "feature", (PhaseConfig("plan", False), PhaseConfig("build", True))
            )
        }
    )
)


@pytest.fixture
def stores(pg_url: str) -> Iterator[tuple[Store, Store]]:
    from phase_golem.store.postgres import PostgresStore

    a, b = PostgresStore(pg_url), PostgresStore(pg_url)
    yield a, b
    a.close()
    b.close()


def _worker(store: Store, name: str, tmp_path: Path) -> Scheduler:
    ctx = EngineContext(tmp_path, tmp_path, SETTINGS, store, name)
    return Scheduler(ctx, RunOptions(), lambda line: None)


def _queued(store: Store, phase: str) -> Run:
    """An item in `phase` with its run queued and keyed (ready to be claimed)."""
    with store.transaction() as tx:
        item = new_item(tx.allocate_item_id("WRK"), f"At {phase}", tx.now)
        tx.create_item(item)
        for status in (ItemStatus.SCOPING, ItemStatus.READY, ItemStatus.IN_PROGRESS):
            item = move(item, status, tx.now)
        item = touch(item, tx.now, phase=phase, phase_pool=PhasePool.MAIN, pipeline_type="feature")
        tx.save_item(item, EventKind.ITEM_TRANSITION)
        run = Run(
            id=tx.allocate_run_id(),
            item_id=item.id,
            phase=phase,
            kind=RunKind.PHASE,
            queued_at=format_timestamp(tx.now),
            pool=PhasePool.MAIN,
            idempotency_key=f"ik:{item.id}",
        )
        tx.create_run(run)
        return run


def _claim(worker: Scheduler) -> list[str]:
    """One decision's claim, as the loop makes it: the request under the lock, then the
    store's own one-round-trip claim."""
    with worker.ctx.store.transaction() as tx:
        request = worker._claim_request(tx)
    claimed = claim_alone(worker.ctx, request)
    assert claimed is not None
    return [run.phase for run, _ in claimed]


def _end(store: Store, run_id: str) -> None:
    with store.transaction() as tx:
        run = tx.get_run(run_id)
        assert run is not None
        tx.save_run(
            finish(run, RunStatus.CANCELLED, format_timestamp(tx.now)), EventKind.RUN_FINISHED
        )


def test_no_destructive_run_starts_beside_another_workers_run(
    stores: tuple[Store, Store], tmp_path: Path
) -> None:
    store_a, store_b = stores
    a, b = _worker(store_a, "host-a:1:1", tmp_path), _worker(store_b, "host-b:2:2", tmp_path)
    plan = _queued(store_a, "plan")
    assert _claim(a) == ["plan"]  # A runs a plan
    build = _queued(store_a, "build")
    assert _claim(b) == []  # B must not start the build beside A's plan
    _end(store_a, plan.id)
    assert _claim(b) == ["build"]  # now it runs alone
    _queued(store_b, "plan")
    assert _claim(a) == []  # and nothing starts beside B's build
    _end(store_b, build.id)
    assert _claim(a) == ["plan"]


def test_a_claim_between_the_others_decision_and_its_claim_wins(
    stores: tuple[Store, Store], tmp_path: Path
) -> None:
    store_a, store_b = stores
    a, b = _worker(store_a, "host-a:1:1", tmp_path), _worker(store_b, "host-b:2:2", tmp_path)
    build, plan = _queued(store_a, "build"), _queued(store_a, "plan")
    # Each worker is limited to one item (as `run --only` does), so each wants its own.
    a.scope, b.scope = frozenset({plan.item_id}), frozenset({build.item_id})
    with store_b.transaction() as tx:
        request = b._claim_request(tx)  # B decides: nothing runs, the build may go alone
    assert request.alone and request.item_ids == {build.item_id}
    assert _claim(a) == ["plan"]  # A's claim lands first
    assert claim_alone(b.ctx, request) == []  # B's claim sees it in its own transaction
    with store_b.reader() as tx:
        still = tx.get_run(build.id)
    assert still is not None and still.worker_id is None  # the build waits, unclaimed
