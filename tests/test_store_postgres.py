"""PostgreSQL specifics: many processes on one database, the wake-up, bad URLs, a dead server.

The shared behaviour is the conformance suite's (its `store` fixture includes PostgreSQL);
here is what only a server shared by several processes can show.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from phase_golem.domain.events import EventKind
from phase_golem.domain.items import new_item
from phase_golem.domain.runs import Run, RunKind
from phase_golem.faults import StoreFault
from phase_golem.store import StoreError, open_store
from tests.conftest import Repo
from tests.e2e import commit_all
from tests.test_store_snapshot import apply
from tests.test_store_snapshot import ops as snapshot_ops
from tests.waiting import DEADLINE_SECONDS, wait_until

pytest.importorskip("psycopg")
from phase_golem.store.postgres import PostgresStore

ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


def run_processes(script: str, *args_per_process: list[str]) -> list[str]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script), *args],
            env=ENV,
            stdout=subprocess.PIPE,
            text=True,
        )
        for args in args_per_process
    ]
    try:
        outs = [p.communicate(timeout=DEADLINE_SECONDS)[0] for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert [p.returncode for p in procs] == [0] * len(procs)
    return outs


WRITER = """
    import sys
    from phase_golem.domain.events import EventKind
    from phase_golem.domain.items import new_item, touch
    from phase_golem.store.postgres import PostgresStore

    store = PostgresStore(sys.argv[1])
    for n in range(int(sys.argv[2])):
        with store.transaction() as tx:
            item_id = tx.allocate_item_id("WRK")
            tx.create_item(new_item(item_id, f"from {sys.argv[3]} #{n}", tx.now))
        with store.transaction() as tx:
            counter = tx.require_item("CNT-001")
            tx.save_item(touch(counter, tx.now, tokens_in=counter.tokens_in + 1),
                         EventKind.ITEM_UPDATED)
    store.close()
"""


@pytest.mark.slow
def test_many_processes_lose_no_update_and_share_no_id(pg_url: str) -> None:
    seed = PostgresStore(pg_url)
    with seed.transaction() as tx:
        tx.create_item(new_item("CNT-001", "Shared counter", tx.now))
    writers, per_writer = 4, 40
    run_processes(WRITER, *([pg_url, str(per_writer), str(n)] for n in range(writers)))
    total = writers * per_writer
    with seed.reader() as tx:
        ids = sorted(i.id for i in tx.list_items() if i.id.startswith("WRK"))
        counter = tx.require_item("CNT-001")
        events = tx.events()
    assert ids == [f"WRK-{n:03d}" for n in range(1, total + 1)]  # no duplicate, no gap
    assert counter.tokens_in == total  # no lost update
    assert len(events) == 1 + 2 * total
    assert [e.seq for e in events] == sorted({e.seq for e in events})
    assert seed.snapshot().get("CNT-001").tokens_in == total  # type: ignore[union-attr]
    seed.close()


def queue_runs(store: PostgresStore, count: int) -> None:
    with store.transaction() as tx:
        for n in range(count):
            item_id = tx.allocate_item_id("WRK")
            tx.create_item(new_item(item_id, f"item {n}", tx.now))
            tx.create_run(
                Run(
                    id=tx.allocate_run_id(),
                    item_id=item_id,
                    phase="prd",
                    kind=RunKind.PHASE,
                    queued_at=tx.now.isoformat(timespec="microseconds"),
                )
            )


CLAIMER = """
    import sys
    from datetime import UTC, datetime, timedelta
    from phase_golem.store.postgres import PostgresStore

    store = PostgresStore(sys.argv[1])
    lease = datetime.now(UTC) + timedelta(hours=1)
    mine = []
    while True:
        if sys.argv[3] == "alone":  # the store's one-round-trip claim
            got = store.claim_runs(sys.argv[2], 2, lease)
        else:
            with store.transaction() as tx:
                got = tx.claim_runs(sys.argv[2], 2, lease)
        if not got:
            break
        mine += [run.id for run in got]
    print(" ".join(mine))
    store.close()
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", ["alone", "in_transaction"])
def test_many_processes_never_claim_one_run_twice(pg_url: str, how: str) -> None:
    store = PostgresStore(pg_url)
    queue_runs(store, 200)
    outs = run_processes(CLAIMER, *([pg_url, f"w{n}", how] for n in range(4)))
    claimed = [run_id for out in outs for run_id in out.split()]
    assert len(claimed) == 200 and len(set(claimed)) == 200
    with store.reader() as tx:
        events = [e for e in tx.events() if e.kind is EventKind.RUN_CLAIMED]
        runs = tx.list_runs()
    assert len(events) == 200 and {e.run_id for e in events} == set(claimed)
    assert all(r.step.value == "claimed" and r.worker_id for r in runs)
    store.close()


def test_claim_is_the_base_rules_in_one_statement(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    queue_runs(store, 3)
    lease = datetime.now(UTC) + timedelta(minutes=5)
    snap = store.snapshot()
    with store.transaction() as tx:
        got = tx.claim_runs("me", 2, lease, item_ids={"WRK-002", "WRK-003"})
        assert [r.item_id for r in got] == ["WRK-002", "WRK-003"]
        assert {r.id for r in tx.snapshot().runs_by_id.values() if r.worker_id} == {
            r.id for r in got
        }
    with store.transaction() as tx:
        assert tx.claim_runs("me", 5, lease, item_ids=set()) == []
    version = store.data_version()
    with store.transaction() as tx:  # nothing due: nothing stamped, nobody woken
        assert tx.claim_runs("me", 5, lease, item_ids={"WRK-002"}) == []
    assert store.data_version() == version
    fresh = store.snapshot()
    assert fresh is not snap and fresh.runs_by_id[got[0].id].worker_id == "me"
    store.close()


def test_a_claim_alone_stops_at_the_pause_flag(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    queue_runs(store, 2)
    lease = datetime.now(UTC) + timedelta(minutes=5)
    with store.transaction() as tx:
        tx.set_meta("paused", "yes")
    assert store.claim_runs("me", 2, lease, unless_flag="paused") == []
    with store.transaction() as tx:
        tx.set_meta("paused", "")
    got = store.claim_runs("me", 2, lease, unless_flag="paused")
    assert got is not None and [r.item_id for r in got] == ["WRK-001", "WRK-002"]
    assert {r.id for r in store.snapshot().runs() if r.worker_id == "me"} == {r.id for r in got}
    store.close()


def test_a_claim_alone_notifies_on_commit_and_only_when_it_claimed(pg_url: str) -> None:
    import psycopg

    store = PostgresStore(pg_url)
    queue_runs(store, 1)
    lease = datetime.now(UTC) + timedelta(minutes=5)
    with psycopg.connect(pg_url, autocommit=True) as listener:
        listener.execute("LISTEN phase_golem_changes")
        assert store.claim_runs("me", 2, lease, item_ids={"WRK-009"}) == []  # nothing due
        got = store.claim_runs("me", 2, lease)
        assert got is not None and [r.item_id for r in got] == ["WRK-001"]
        listener.execute("NOTIFY phase_golem_changes, 'end'")  # delivered after the claims'
        heard = []
        for note in listener.notifies(timeout=DEADLINE_SECONDS):
            heard.append(note.payload)
            if note.payload == "end":
                break
    assert heard == ["", "end"]  # one wake-up: the claim that claimed; the idle one none
    with store.reader() as tx:  # and what it claimed was committed (the implicit transaction)
        assert [r.worker_id for r in tx.list_runs()] == ["me"]
    store.close()


def test_other_processes_commits_are_seen_and_wake_listeners(pg_url: str) -> None:
    one, two = PostgresStore(pg_url), PostgresStore(pg_url)
    woken = threading.Event()
    stop = one.listen(woken.set)
    try:
        wait_until(woken.is_set, "the listener's first call, once it listens")
        woken.clear()
        snap = one.snapshot()
        with two.transaction() as tx:
            tx.create_item(new_item("WRK-001", "from two", tx.now))
        wait_until(woken.is_set, "a NOTIFY after the other store's commit")
        reloaded = one.snapshot()
        assert reloaded is not snap and reloaded.ids() == {"WRK-001"}
        assert one.snapshot() is reloaded
    finally:
        stop()
        one.close()
        two.close()


def test_newer_schema_is_refused(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    with store._connection() as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (99, 'future', 'x')")
    store.close()
    with pytest.raises(StoreError, match="newer than this phase-golem understands"):
        PostgresStore(pg_url)


def test_bad_url_and_server_down_are_one_line(pg_server: Any, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="bad PostgreSQL storage url"):
        open_store("postgresql://x:y@/db?sslmode=nonsense&bogus=1", tmp_path)
    down = f"postgresql://golem:secretpw@127.0.0.1:{pg_server.port + 1}/nope"
    with pytest.raises(StoreFault) as caught:
        open_store(down, tmp_path)
    message = str(caught.value)
    assert "cannot connect to PostgreSQL at 127.0.0.1:" in message
    assert "secretpw" not in message and "\n" not in message


@pytest.mark.parametrize("command", ["status", "run"])
@pytest.mark.parametrize("kind", ["bad", "unparsable", "down", "no_database"])
def test_cli_with_an_unusable_postgresql_url_exits_3(
    git_repo: Repo, pg_server: Any, kind: str, command: str
) -> None:
    url = {
        "bad": "postgresql://u@h/db?sslmode=nonsense",
        "unparsable": "postgresql://u:secretpw@[::1/db",
        "down": f"postgresql://golem@127.0.0.1:{pg_server.port + 1}/nope",
        "no_database": f"postgresql://golem@127.0.0.1:{pg_server.port}/no_such_database",
    }[kind]
    git_repo.ok("init")
    config = git_repo.root / "phase-golem.toml"
    config.write_text(config.read_text() + f'\n[storage]\nurl = "{url}"\n', encoding="utf-8")
    commit_all(git_repo, "store on PostgreSQL")  # `run` wants a clean tree
    result = git_repo.pg(command)
    assert result.code == 3, result
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "PostgreSQL" in lines[0], result.err
    assert "Traceback" not in result.err and "secretpw" not in result.err


# --- the snapshot stays exact while others write (test_store_snapshot.py, on PostgreSQL) --


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=snapshot_ops)
def test_two_writers_on_one_database_refresh_to_a_fresh_load(
    pg_server: Any, steps: list[tuple[str, int, int]]
) -> None:
    url = pg_server.new_database(template=pg_server.template)
    stores = [PostgresStore(url), PostgresStore(url)]
    try:
        for store in stores:
            store.snapshot()
        for op, who, pick in steps:
            apply(stores[who], op, pick)
        truth = PostgresStore(url)
        expected = truth.snapshot().content()
        truth.close()
        for store in stores:
            assert store.snapshot().content() == expected
            assert store.full_loads == 1
    finally:
        for store in stores:
            store.close()


def test_rows_written_around_the_store_are_stamped_by_the_database(pg_url: str) -> None:
    import psycopg

    store = PostgresStore(pg_url)
    apply(store, "add", 1)
    apply(store, "add", 2)
    before = store.snapshot()
    with psycopg.connect(pg_url, autocommit=True) as raw:
        raw.execute("UPDATE items SET title = 'edited by hand' WHERE id = 'WRK-001'")
        raw.execute(
            "INSERT INTO runs (id, item_id, phase, kind, attempt, visit, step, status, "
            "queued_at) VALUES ('run-900001', 'WRK-002', 'prd', 'phase', 1, 1, 'claimed', "
            "'active', '2026-01-01T00:00:00.000000+00:00')"
        )
    after = store.snapshot()
    assert after.get("WRK-001").title == "edited by hand"  # type: ignore[union-attr]
    assert after.run_for("WRK-002").id == "run-900001"  # type: ignore[union-attr]
    assert after.change_seq > before.change_seq and store.full_loads == 1
    truth = PostgresStore(pg_url)
    assert after.content() == truth.snapshot().content()
    truth.close()
    store.close()
