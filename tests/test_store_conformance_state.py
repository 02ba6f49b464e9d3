"""Owed commits, leftovers and agent pauses in their typed tables, on every store.

The same `store` fixture as `test_store_conformance.py`; the upgrade from the JSON values
that migration 0010 moves out of `meta` is tested on both SQL stores at the end.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from phase_golem.domain.runs import RunStatus
from phase_golem.engine.git_view import leftovers_of
from phase_golem.engine.owed import pending_runs
from phase_golem.engine.pause_records import last_resumed, paused_agents
from phase_golem.store import Leftover, PausedAgent, PendingCommit, Store, StoreError
from phase_golem.store.sqlite import SqliteStore
from tests.test_store_conformance import add, make_run, store

__all__ = ["store"]  # the parametrised fixture, used by every test here


def pending(run_id: str, item_id: str, **fields: Any) -> PendingCommit:
    base = PendingCommit(
        run_id=run_id,
        item_id=item_id,
        tree=".",
        phase="prd",
        touched=("src/a.txt", "src/b.txt"),
        own=("src/a.txt",),
        succeeded=True,
        immediate=False,
        summary="prd WRK-001",
        overlapped=True,
    )
    return PendingCommit(**{**{f: getattr(base, f) for f in base.__slots__}, **fields})


def test_pending_commits_keep_their_order_fields_and_replace_whole(store: Store) -> None:
    item_id = add(store)
    runs = [make_run(store, item_id, status=RunStatus.FAILED_AGENT).id for _ in range(3)]
    entries = [
        pending(runs[2], item_id, tree="worktrees/x"),
        pending(runs[0], item_id, own_committed=True, intended="abc123", succeeded=False),
        pending(runs[1], item_id, touched=(), own=(), immediate=True, summary=""),
    ]
    with store.transaction() as tx:
        assert tx.pending_commits() == []
        tx.save_pending_commits(entries)
    with store.reader() as tx:
        assert tx.pending_commits() == entries  # in the order they were recorded
    with store.transaction() as tx:
        tx.save_pending_commits(entries[1:])
    assert pending_runs(store) == [(".", runs[0], entries[1].touched), (".", runs[1], ())]


def test_leftovers_round_trip_by_tree_and_path(store: Store) -> None:
    one, two = add(store), add(store)
    run = make_run(store, one).id
    rows = [
        Leftover("worktrees/b", "x.txt", ((two, "build"),), (run,), None),
        Leftover(".", "src/z.txt", ((one, "prd"), (two, "build")), (run, "run-9"), "blobz"),
        Leftover(".", "src/a.txt", ((one, "prd"),), (run,), "bloba"),
    ]
    with store.transaction() as tx:
        tx.save_leftovers(rows)
    with store.reader() as tx:
        assert tx.leftovers() == sorted(rows, key=lambda r: (r.tree, r.path))
    assert set(leftovers_of(store, two)) == {"src/z.txt", "worktrees/b/x.txt"}
    assert leftovers_of(store, one)["src/a.txt"] == {
        "owners": [[one, "prd"]],
        "runs": [run],
        "blob": "bloba",
    }
    with store.transaction() as tx:
        tx.save_leftovers([])
    assert leftovers_of(store) == {}


def test_agent_pauses_and_resumes(store: Store) -> None:
    item_id = add(store)
    run = make_run(store, item_id).id
    with store.transaction() as tx:
        tx.save_agent_pauses(
            [PausedAgent("codex", "unavailable", "t2"), PausedAgent("claude", "rate", "t1", run)],
            {"gemini": "t0"},
        )
    with store.reader() as tx:
        paused, resumed = tx.agent_pauses()
        assert paused == [
            PausedAgent("claude", "rate", "t1", run),
            PausedAgent("codex", "unavailable", "t2"),
        ]
        assert resumed == {"gemini": "t0"}
        assert paused_agents(tx)["claude"].run_id == run
        assert last_resumed(tx, "gemini") == "t0"
    with store.transaction() as tx:
        tx.save_agent_pauses([], {"claude": "t3"})
    with store.reader() as tx:
        assert tx.agent_pauses() == ([], {"claude": "t3"})


def test_state_writes_roll_back_and_readers_refuse_them(store: Store) -> None:
    item_id = add(store)
    run = make_run(store, item_id).id
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.save_pending_commits([pending(run, item_id)])
        tx.save_leftovers([Leftover(".", "a", ((item_id, "prd"),), (run,))])
        tx.save_agent_pauses([PausedAgent("claude", "r", "t")], {"codex": "t"})
        raise RuntimeError("boom")
    with store.reader() as tx:
        assert tx.pending_commits() == [] and tx.leftovers() == []
        assert tx.agent_pauses() == ([], {})
    for write in (
        lambda tx: tx.save_pending_commits([]),
        lambda tx: tx.save_leftovers([]),
        lambda tx: tx.save_agent_pauses([], {}),
    ):
        with pytest.raises(StoreError, match="read-only"), store.reader() as tx:
            write(tx)


# --- the upgrade: a store at the schema before 0010, with its state as JSON in `meta` -------
NEW_TABLES = ("pending_commits", "leftovers", "agent_pauses", "agent_resumes")


def old_meta(run_id: str, item_id: str) -> dict[str, str]:
    """What phase-golem before migration 0010 kept in `meta` (as it wrote it)."""
    owed = {
        "tree": ".",
        "own_committed": False,
        "intended": None,
        "run_id": run_id,
        "item_id": item_id,
        "phase": "prd",
        "touched": ["a.txt", "b.txt"],
        "own": ["a.txt"],
        "succeeded": True,
        "immediate": False,
        "summary": "prd it",
    }  # no "overlapped": written before it existed, so it is own != touched
    second = {**owed, "tree": "wt/x", "own_committed": True, "intended": "c0ffee"}
    second |= {"touched": ["c.txt"], "own": ["c.txt"], "overlapped": False, "succeeded": False}
    leftovers = {
        ".": {"junk.txt": {"owners": [[item_id, "prd"]], "runs": [run_id], "blob": "b1"}},
        "wt/x": {"half.txt": {"owners": [[item_id, "build"], ["WRK-009", "prd"]], "runs": []}},
    }
    pauses = {
        "paused": {"claude": {"reason": "rate-limited", "since": "t1", "run_id": run_id}},
        "resumed": {"codex": "t0"},
    }
    return {
        "git:pending": json.dumps([owed, second], sort_keys=True),
        "git:leftovers": json.dumps(leftovers, sort_keys=True),
        "agent_pauses": json.dumps(pauses, sort_keys=True),
        "scheduler.paused": "",
    }


def assert_upgraded(store: Store, run_id: str, item_id: str) -> None:
    with store.reader() as tx:
        first, second = tx.pending_commits()
        assert first == PendingCommit(
            run_id, item_id, ".", "prd", ("a.txt", "b.txt"), ("a.txt",), True, False, "prd it", True
        )
        assert (second.tree, second.own_committed, second.intended) == ("wt/x", True, "c0ffee")
        assert (second.touched, second.overlapped, second.succeeded) == (("c.txt",), False, False)
        assert tx.leftovers() == [
            Leftover(".", "junk.txt", ((item_id, "prd"),), (run_id,), "b1"),
            Leftover("wt/x", "half.txt", ((item_id, "build"), ("WRK-009", "prd")), (), None),
        ]
        assert tx.agent_pauses() == (
            [PausedAgent("claude", "rate-limited", "t1", run_id)],
            {"codex": "t0"},
        )
        for key in ("git:pending", "git:leftovers", "agent_pauses"):
            assert tx.get_meta(key) is None
        assert tx.get_meta("scheduler.paused") == ""  # other meta rows stay


def test_sqlite_upgrade_moves_the_meta_json_into_the_tables(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    made = SqliteStore(db)
    item_id = add(made)
    run_id = make_run(made, item_id).id
    made.close()
    with closing(sqlite3.connect(db)) as conn, conn:  # back to the schema before 0010
        for table in NEW_TABLES:
            conn.execute(f"DROP TABLE {table}")
        conn.execute("DELETE FROM schema_migrations WHERE version = 10")
        for key, value in old_meta(run_id, item_id).items():
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
    upgraded = SqliteStore(db)
    try:
        assert upgraded.schema_version() >= 10
        assert_upgraded(upgraded, run_id, item_id)
    finally:
        upgraded.close()


def test_sqlite_upgrade_drops_a_damaged_value(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    SqliteStore(db).close()
    with closing(sqlite3.connect(db)) as conn, conn:
        for table in NEW_TABLES:
            conn.execute(f"DROP TABLE {table}")
        conn.execute("DELETE FROM schema_migrations WHERE version = 10")
        for key in ("git:pending", "git:leftovers", "agent_pauses"):
            conn.execute("INSERT INTO meta (key, value) VALUES (?, '{not json')", (key,))
    upgraded = SqliteStore(db)
    try:
        with upgraded.reader() as tx:
            assert tx.pending_commits() == [] and tx.leftovers() == []
            assert tx.agent_pauses() == ([], {})
            assert tx.get_meta("agent_pauses") is None
    finally:
        upgraded.close()


def test_postgres_upgrade_moves_the_meta_json_into_the_tables(pg_url: str) -> None:
    from phase_golem.store.postgres import PostgresStore

    made = PostgresStore(pg_url)
    item_id = add(made)
    run_id = make_run(made, item_id).id
    with made._connection() as conn:
        for table in NEW_TABLES:
            conn.execute(f"DROP TABLE {table}")
        conn.execute("DELETE FROM schema_migrations WHERE version = 10")
        for key, value in old_meta(run_id, item_id).items():
            conn.execute("INSERT INTO meta (key, value) VALUES (%s, %s)", (key, value))
        conn.execute("INSERT INTO meta (key, value) VALUES ('damaged', '{not json')")
    made.close()
    upgraded = PostgresStore(pg_url)
    try:
        assert_upgraded(upgraded, run_id, item_id)
    finally:
        upgraded.close()
