"""The PostgreSQL store across a lost connection: a restarted server, a killed backend, a
server that stays away (store/pg_conn.py). Each test that stops its server has its own."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from phase_golem.agents.base import AgentAdapter, AgentRequest
from phase_golem.agents.runner import AgentOutcome
from phase_golem.domain.items import new_item
from phase_golem.engine import executor
from phase_golem.engine.backlog import NewItemRequest, add_item
from phase_golem.engine.context import EngineContext
from phase_golem.engine.scheduler import Scheduler
from phase_golem.engine.selection import RunOptions
from phase_golem.faults import StoreFault, StoreUnavailable, once_more_if_lost
from phase_golem.project import Project, init_project, load_project
from phase_golem.store import pg_conn
from tests.conftest import make_git_repo
from tests.pg_server import PgServer
from tests.test_engine_reads_snapshot import _phase_complete
from tests.waiting import wait_until

pytest.importorskip("psycopg")
from phase_golem.store.postgres import PostgresStore
from tests.test_store_postgres import queue_runs

pytestmark = pytest.mark.slow


@pytest.fixture
def server(own_pg_server: PgServer) -> PgServer:
    return own_pg_server


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


ENGINE_CONFIG = """\
[execution]
max_wip = 2
max_concurrent = 2
default_phase_cap = 100000

[agent]
cli = "sim"

[pipelines.feature]
phases = [
    { name = "plan", is_destructive = false },
    { name = "ship", is_destructive = false },
]
"""


def _pg_project(tmp_path: Path, pg_url: str, items: int) -> Project:
    """A committed project in a fresh git repository, stored on PostgreSQL, with `items`."""
    root = make_git_repo(tmp_path / "repo")
    config = ENGINE_CONFIG + f'\n[storage]\nurl = "{pg_url}"\n'
    (root / "phase-golem.toml").write_text(config, encoding="utf-8")
    init_project(root, "WRK", None)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "start"], cwd=root, check=True)
    project = load_project(root, None)
    for n in range(items):
        add_item(project.store(), project.config.settings, NewItemRequest(f"Item {n}"))
    return project


class CutOff:
    """Kills the server connection of chosen transactions midway (they have begun on the
    server): the `decision`-th decision, and the next transaction of the thread that starts
    or completes an armed run (`armed["start"]`, `armed["completion"]`: a run id, or "next")."""

    def __init__(self, server: Any, monkeypatch: pytest.MonkeyPatch, decision: int) -> None:
        self.server = server
        self.decisions_left = decision
        self.armed: dict[str, str] = {}
        self.cut: set[int] = set()  # the threads whose next transaction is cut off
        self.done: list[str] = []
        self._transaction = PostgresStore.transaction
        self._start, self._complete = executor._start, executor.complete_run

        def transaction(store: PostgresStore, **kwargs: Any) -> Any:  # binds to its store
            return self.transaction(store, **kwargs)

        monkeypatch.setattr(PostgresStore, "transaction", transaction)
        monkeypatch.setattr(executor, "_start", self.start)
        monkeypatch.setattr(executor, "complete_run", self.complete)

    def _arm(self, what: str, run_id: str) -> None:
        if self.armed.get(what) in (run_id, "next"):
            del self.armed[what]
            self.cut.add(threading.get_ident())

    def start(self, ctx: Any, run_id: str, workspace: Any) -> Any:
        self._arm("start", run_id)
        return self._start(ctx, run_id, workspace)

    def complete(self, store: Any, settings: Any, run_id: str, *args: Any, **kw: Any) -> Any:
        self._arm("completion", run_id)
        return self._complete(store, settings, run_id, *args, **kw)

    @contextmanager
    def transaction(self, store: PostgresStore, **kwargs: Any) -> Iterator[Any]:
        if kwargs.get("scheduling"):
            self.decisions_left -= 1
            now = self.decisions_left == 0
        else:
            now = threading.get_ident() in self.cut
            self.cut.discard(threading.get_ident())
        with self._transaction(store, **kwargs) as tx:
            if now:
                tx.get_item("NONE-001")  # the transaction has begun on the server
                pid = tx.conn.info.backend_pid
                self.server.admin(f"SELECT pg_terminate_backend({pid}, 60000)")
                self.done.append("decision" if kwargs.get("scheduling") else "run")
            yield tx


def test_the_engine_carries_on_past_transactions_cut_off_midway(
    tmp_path: Path, pg_url: str, pg_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real scheduler on PostgreSQL; the connection of a decision, of a run's start and of
    a run's completion is killed in the middle of its transaction. Each is done again: every
    phase of every item ran once and is committed, none waited out a lease."""
    project = _pg_project(tmp_path, pg_url, 3)
    root, store, settings = project.root, project.store(), project.config.settings
    cut = CutOff(pg_server, monkeypatch, decision=2)

    async def agent(adapter: AgentAdapter, request: AgentRequest, **_: Any) -> AgentOutcome:
        if request.item_id == "WRK-002" and request.phase == "plan":
            cut.armed["completion"] = request.run_id
        if request.item_id == "WRK-003" and request.phase == "triage":
            cut.armed["start"] = "next"  # the next run started, whichever it is
        return _phase_complete(request)

    lines: list[str] = []
    ctx = EngineContext(root, root, settings, store, "test", agent_runner=agent)
    summary = asyncio.run(Scheduler(ctx, RunOptions(), lines.append).run())
    assert sorted(summary.items_completed) == ["WRK-001", "WRK-002", "WRK-003"], lines
    assert sorted(cut.done) == ["decision", "run", "run"]  # all three were cut off
    assert any("lost the PostgreSQL connection" in line and "carrying on" in line for line in lines)
    with store.reader() as tx:
        runs = tx.list_runs()
    assert sorted((r.item_id, r.phase) for r in runs) == sorted(
        (f"WRK-00{n}", phase) for n in (1, 2, 3) for phase in ("triage", "plan", "ship")
    )
    assert {r.status.value for r in runs} == {"committed"}
    project.close()
