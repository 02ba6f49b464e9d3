"""Destructive exclusivity across workers, enforced by every store's claim (DESIGN §7, §14).

A claim `alone` (a destructive phase in shared isolation) takes one run and only when no
run is live anywhere; while such a run is live no claim takes anything. Each is checked in
the claim's own transaction, so two workers deciding at once cannot both pass: with
PostgreSQL both workers here are separate stores (separate pools and connections), and
both claim paths are covered (inside a transaction, and the store's one-round-trip claim).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from phase_golem.domain.events import EventKind
from phase_golem.domain.items import format_timestamp
from phase_golem.domain.runs import Run, RunStatus, Step, finish
from phase_golem.store import Store
from tests.test_store_conformance import STORE_KINDS, FakeClock, add, make_run, open_kind

Claim = Callable[[str, int, Collection[str] | None, bool], list[Run]]


@pytest.fixture(params=STORE_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> Iterator[Store]:
    opened = open_kind(request, kind, tmp_path, FakeClock())
    yield opened
    opened.close()


def _in_tx(store: Store) -> Claim:
    def claim(worker: str, limit: int, ids: Collection[str] | None, alone: bool) -> list[Run]:
        with store.transaction() as tx:
            lease = tx.now + timedelta(seconds=60)
            return tx.claim_runs(worker, limit, lease, ids, alone=alone)

    return claim


def _round_trip(store: Store) -> Claim:
    """The store's own one-round-trip claim (PostgreSQL), else the transaction's."""
    direct = getattr(store, "claim_runs", None)
    if direct is None:
        return _in_tx(store)

    def claim(worker: str, limit: int, ids: Collection[str] | None, alone: bool) -> list[Run]:
        lease = FakeClock()() + timedelta(days=3650)
        claimed: list[Run] | None = direct(worker, limit, lease, ids, alone=alone)
        assert claimed is not None
        return claimed

    return claim


def _end(store: Store, run: Run) -> None:
    with store.transaction() as tx:
        current = tx.get_run(run.id)
        assert current is not None
        done = finish(current, RunStatus.CANCELLED, format_timestamp(tx.now))
        tx.save_run(done, EventKind.RUN_FINISHED)


@pytest.mark.parametrize("path", ["transaction", "round-trip"])
def test_a_run_claimed_alone_excludes_every_other_claim_until_it_ends(
    store: Store, path: str
) -> None:
    claim = _in_tx(store) if path == "transaction" else _round_trip(store)
    items = [add(store) for _ in range(3)]
    for item in items:
        make_run(store, item)
    destructive = claim("worker-a", 5, [items[0]], True)
    assert [(r.item_id, r.exclusive) for r in destructive] == [(items[0], True)]
    assert claim("worker-b", 5, None, False) == []  # nothing beside a destructive run
    assert claim("worker-b", 5, [items[1]], True) == []
    with store.reader() as tx:
        found = tx.get_run(destructive[0].id)
    assert found is not None and found.exclusive and found.step is Step.CLAIMED
    _end(store, destructive[0])
    after = claim("worker-b", 5, None, False)
    assert sorted(r.item_id for r in after) == items[1:]
    assert not any(r.exclusive for r in after)


def test_a_claim_alone_waits_for_every_live_run_and_takes_only_one(store: Store) -> None:
    claim = _round_trip(store)
    items = [add(store) for _ in range(3)]
    for item in items:
        make_run(store, item)
    plain = claim("worker-a", 1, [items[0]], False)
    assert len(plain) == 1
    assert claim("worker-b", 5, items[1:], True) == []  # worker A's run is live
    _end(store, plain[0])
    alone = claim("worker-b", 5, items[1:], True)
    assert [r.item_id for r in alone] == [items[1]]  # one, however many slots


def test_two_workers_on_one_database_keep_exclusivity(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """PostgreSQL only: two workers share one database there (SQLite has one process)."""
    store = open_kind(request, "postgres", tmp_path, FakeClock())
    other = open_kind(request, "postgres", tmp_path, FakeClock())  # the same database
    try:
        items = [add(store) for _ in range(2)]
        for item in items:
            make_run(store, item)
        worker_a, worker_b = _round_trip(store), _round_trip(other)
        assert len(worker_b("worker-b", 1, [items[1]], False)) == 1
        assert worker_a("worker-a", 1, [items[0]], True) == []  # B's run is live on B
        assert other.snapshot().runs_by_id  # B's own view has its run
        assert worker_a("worker-a", 1, [items[0]], False) != []  # non-destructive may go
    finally:
        other.close()
        store.close()
