"""The PostgreSQL store across a lost connection: a restarted server, a killed backend, a
server that stays away (store/pg_conn.py). Each test that stops its server has its own."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from phase_golem.domain.items import new_item
from phase_golem.faults import StoreFault, StoreUnavailable, once_more_if_lost
from phase_golem.store import pg_conn
from tests.pg_server import PgServer, find_bin_dir
from tests.waiting import wait_until

pytest.importorskip("psycopg")
from phase_golem.store.postgres import PostgresStore
from tests.test_store_postgres import queue_runs

pytestmark = pytest.mark.slow


@pytest.fixture
def server() -> Iterator[PgServer]:
    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL binaries (initdb) on this machine; .ci/run installs them")
    made = PgServer(bin_dir)
    made.start()
    try:
        yield made
    finally:
        made.remove()


def _add(store: PostgresStore, item_id: str) -> None:
    with store.transaction() as tx:
        tx.create_item(new_item(item_id, f"title of {item_id}", tx.now))


def test_after_a_restart_every_kind_of_call_works_and_listeners_hear_again(
    server: PgServer,
) -> None:
    url = server.new_database()
    store, other = PostgresStore(url), PostgresStore(url)
    woken = threading.Event()
    stop = store.listen(woken.set)
    try:
        queue_runs(store, 2)
        wait_until(woken.is_set, "the listener's first call, once it listens")
        server.restart()  # every connection of both stores is dead now
        woken.clear()
        assert store.data_version() > 0  # an autocommit query
        lease = datetime.now(UTC) + timedelta(minutes=5)
        claimed = store.claim_runs("me", 1, lease)  # the one-round-trip claim
        assert claimed is not None and [r.item_id for r in claimed] == ["WRK-001"]
        _add(other, "NEW-001")  # a transaction, whose NOTIFY the re-subscribed listener hears
        wait_until(woken.is_set, "a NOTIFY heard after the restart")
        assert "NEW-001" in store.snapshot().ids()
        with store.reader() as tx:
            assert [r.item_id for r in tx.list_runs() if r.worker_id == "me"] == ["WRK-001"]
    finally:
        stop()
        store.close()
        other.close()


def test_a_connection_lost_mid_transaction_rolls_back_and_the_next_one_works(
    server: PgServer,
) -> None:
    url = server.new_database()
    store = PostgresStore(url)
    try:
        with pytest.raises(StoreUnavailable) as caught, store.transaction() as tx:
            tx.create_item(new_item("WRK-001", "never committed", tx.now))
            pid = tx.conn.info.backend_pid  # type: ignore[attr-defined]
            server.admin(f"SELECT pg_terminate_backend({pid})")
            tx.create_item(new_item("WRK-002", "never committed", tx.now))
        assert "lost the PostgreSQL connection" in str(caught.value)
        assert "\n" not in str(caught.value)
        _add(store, "WRK-003")
        assert store.snapshot().ids() == {"WRK-003"}
    finally:
        store.close()


def test_a_server_that_stays_away_is_one_line_after_the_bounded_wait(
    server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = server.new_database()
    store = PostgresStore(url)
    monkeypatch.setattr(pg_conn, "OUTAGE_SECONDS", 0.5)
    try:
        server.stop()
        with pytest.raises(StoreFault) as caught, store.transaction() as tx:
            tx.create_item(new_item("WRK-001", "never committed", tx.now))
        message = str(caught.value)
        assert "PostgreSQL did not answer for" in message and "\n" not in message
        assert not isinstance(caught.value, StoreUnavailable)  # this one stops the worker
        server.start()
        _add(store, "WRK-002")  # and once the server is back, the same store works again
        assert store.snapshot().ids() == {"WRK-002"}
    finally:
        store.close()


def test_once_more_if_lost_repeats_only_what_did_not_commit() -> None:
    calls: list[int] = []

    def lose_first() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise StoreUnavailable("lost")
        return len(calls)

    assert once_more_if_lost(lose_first, lambda: True) == 2
    calls.clear()
    with pytest.raises(StoreUnavailable):
        once_more_if_lost(lose_first, lambda: False)  # it may have committed: not again
    assert calls == [1]
