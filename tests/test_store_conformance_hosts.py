"""Host id and boot id on runs (DESIGN §14), in every store: memory, SQLite, PostgreSQL.

Each store keeps them (through a reopen, in its snapshot), and recovery over each store
follows the rules of domain/hosts.py: a live orphan is adopted only on its own host and
boot; another host's live run is not ours to end or adopt; a run this host started in an
earlier boot is dead whatever its lease says. A store shared by many workers (PostgreSQL)
hands recovery only the runs nobody is working on.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType

import pytest

from phase_golem.domain.events import EventKind
from phase_golem.domain.hosts import Host, died_with_its_boot, may_adopt
from phase_golem.domain.items import (
    ItemStatus,
    PhasePool,
    format_timestamp,
    new_item,
    touch,
    transition,
)
from phase_golem.domain.pipelines import PhaseConfig, PipelineConfig, Settings
from phase_golem.domain.runs import Run, RunKind, RunStatus, Step
from phase_golem.engine.recovery import recover_interrupted_runs, sweep_expired_leases
from phase_golem.host import this_host
from phase_golem.store import Store
from tests.test_store_conformance import STORE_KINDS, FakeClock, open_kind

HERE = Host("machine-a:alpha", "boot-2")
OTHER = Host("machine-b:beta", "boot-9")


@pytest.fixture(params=STORE_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> Iterator[Store]:
    opened = open_kind(request, kind, tmp_path, FakeClock())
    yield opened
    opened.close()


def _settings() -> Settings:
    pipeline = PipelineConfig("feature", (PhaseConfig("plan", False),))
    return Settings(pipelines=MappingProxyType({"feature": pipeline}))


def _started(store: Store, host: Host | None, *, lease_seconds: float) -> Run:
    """An item in `plan` with a started run of another worker, its agent on `host`."""
    with store.transaction() as tx:
        item_id = tx.allocate_item_id("WRK")
        item = new_item(item_id, "Deploy", tx.now)
        tx.create_item(item)
        for status in (ItemStatus.SCOPING, ItemStatus.READY, ItemStatus.IN_PROGRESS):
            item = transition(item, status, tx.now)
        tx.save_item(
            touch(item, tx.now, phase="plan", phase_pool=PhasePool.MAIN), EventKind.ITEM_TRANSITION
        )
        run = Run(
            id=tx.allocate_run_id(),
            item_id=item_id,
            phase="plan",
            kind=RunKind.PHASE,
            queued_at=format_timestamp(tx.now),
            pool=PhasePool.MAIN,
            idempotency_key="ik:fixed",
        )
        tx.create_run(run)
        lease = format_timestamp(tx.now + timedelta(seconds=lease_seconds))
        where = {"host_id": host.host_id, "boot_id": host.boot_id} if host else {}
        started = run.replace(
            step=Step.STARTED, worker_id="w:1:1", lease_until=lease, pid=4242, **where
        )
        tx.save_run(started, EventKind.RUN_UPDATED, {"pid": 4242})
        return started


def _result_written(root: Path, run: Run) -> None:
    """What would make a run of this host adoptable: its agent wrote a result here."""
    directory = root / ".phase-golem" / "runs" / run.id
    directory.mkdir(parents=True)
    (directory / "result.json").write_text("{}")


def _status(store: Store, run: Run) -> RunStatus:
    with store.reader() as tx:
        found = tx.get_run(run.id)
    assert found is not None
    return found.status


def test_host_and_boot_are_kept_through_a_reopen_and_the_snapshot(
    request: pytest.FixtureRequest, kind: str, tmp_path: Path, store: Store
) -> None:
    run = _started(store, HERE, lease_seconds=60)
    assert store.snapshot().runs_by_id[run.id].host_id == HERE.host_id
    with store.reader() as tx:
        found = tx.get_run(run.id)
        assert found is not None and (found.host_id, found.boot_id) == ("machine-a:alpha", "boot-2")
        assert [r.boot_id for r in tx.runs_changed_since(0) if r.id == run.id] == ["boot-2"]
    if kind == "memory":
        return
    again = open_kind(request, kind, tmp_path, FakeClock())
    try:
        with again.reader() as tx:
            reopened = tx.get_run(run.id)
        assert reopened == found
    finally:
        again.close()


def test_only_a_shared_store_leaves_another_hosts_live_run_alone(
    kind: str, store: Store, tmp_path: Path
) -> None:
    live = _started(store, OTHER, lease_seconds=600)
    _result_written(tmp_path, live)  # even a file where ours would be adopts nothing
    recovered = recover_interrupted_runs(store, _settings(), tmp_path, HERE)
    assert recovered.adopt == []
    if store.shared:  # PostgreSQL: a worker elsewhere holds its lease
        assert kind == "postgres"
        assert (recovered.runs, _status(store, live)) == ([], RunStatus.ACTIVE)
    else:  # our process lock proves nobody else works in this store
        assert (recovered.runs, _status(store, live)) == ([live.id], RunStatus.CRASHED)


def test_an_expired_run_of_another_host_is_retried_never_adopted(
    store: Store, tmp_path: Path
) -> None:
    lost = _started(store, OTHER, lease_seconds=-5)
    _result_written(tmp_path, lost)
    recovered = sweep_expired_leases(store, _settings(), tmp_path, set(), HERE)
    assert (recovered.runs, recovered.adopt) == ([lost.id], [])
    with store.reader() as tx:
        retry = [r for r in tx.list_runs(item_id=lost.item_id) if r.is_active]
    assert [(r.retry_of, r.step) for r in retry] == [(lost.id, Step.QUEUED)]


def test_a_run_of_this_host_from_an_earlier_boot_is_dead_despite_its_lease(
    store: Store, tmp_path: Path
) -> None:
    before_reboot = _started(store, Host(HERE.host_id, "boot-1"), lease_seconds=600)
    _result_written(tmp_path, before_reboot)  # its pid may be anyone's now: no adoption
    recovered = sweep_expired_leases(store, _settings(), tmp_path, set(), HERE)
    assert (recovered.runs, recovered.adopt) == ([before_reboot.id], [])
    assert _status(store, before_reboot) is RunStatus.CRASHED


def test_an_expired_run_of_this_host_and_boot_is_adopted(store: Store, tmp_path: Path) -> None:
    ours = _started(store, HERE, lease_seconds=-5)
    _result_written(tmp_path, ours)
    recovered = sweep_expired_leases(store, _settings(), tmp_path, set(), HERE)
    assert (recovered.runs, [r.id for r in recovered.adopt]) == ([], [ours.id])


def test_the_rules_themselves() -> None:
    def run(host: Host | None) -> Run:
        where = {"host_id": host.host_id, "boot_id": host.boot_id} if host else {}
        return Run("run-1", "WRK-001", "plan", RunKind.PHASE, "t", **where)  # type: ignore[arg-type]

    assert may_adopt(run(HERE), HERE) and may_adopt(run(None), HERE)
    assert not may_adopt(run(OTHER), HERE)
    assert not may_adopt(run(Host(HERE.host_id, "boot-1")), HERE)
    assert died_with_its_boot(run(Host(HERE.host_id, "boot-1")), HERE)
    assert not died_with_its_boot(run(HERE), HERE) and not died_with_its_boot(run(OTHER), HERE)
    assert not died_with_its_boot(run(None), HERE)
    here = this_host()
    assert here.host_id and here == this_host()
