"""`phase-golem migrate-store --to postgresql://…`: the real CLI against a throwaway server.

A finished SQLite project (items, runs, ledger, receipts, counters) is copied into an
empty PostgreSQL database; the project then reads the same state from PostgreSQL, goes on
numbering where it stopped, and its SQLite file is byte for byte what it was. A target
that holds a project, a bad URL and a server that is down are each one line, exit 3.
"""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Repo
from tests.e2e import add_items, commit_all, write_project

pytestmark = pytest.mark.slow

NOT_TOUCHED = ("state.db", "state.db-wal")


def _hashes(repo: Repo) -> dict[str, str]:
    state = repo.root / ".phase-golem"
    return {
        name: hashlib.sha256((state / name).read_bytes()).hexdigest()
        for name in NOT_TOUCHED
        if (state / name).exists() and (state / name).stat().st_size  # an empty WAL is none
    }


def _point_at(repo: Repo, url: str) -> None:
    config = repo.root / "phase-golem.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(f'[storage]\nurl = "{url}"\n\n{text}', encoding="utf-8")
    commit_all(repo, "storage on PostgreSQL")


def _state(repo: Repo) -> dict[str, Any]:
    return {
        "items": repo.ok("status", "--all", "--json").json(),
        "runs": repo.ok("runs", "--json").json(),
        "events": repo.ok("log", "--json").json_lines(),
    }


@pytest.fixture
def finished(git_repo: Repo) -> Repo:
    repo = write_project(
        git_repo, '  - match: {phase: build}\n    write: {"src/{item}.txt": "x"}\n'
    )
    add_items(repo, "Add a login page", "Write the changelog")
    result = repo.pg("run")
    assert result.code == 0, result.err
    return repo


def _one_line_error(result: Any, *words: str) -> None:
    assert result.code == 3, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    for word in words:
        assert word in lines[0], lines[0]


def test_a_finished_project_moves_to_postgresql_whole(finished: Repo, pg_server: Any) -> None:
    repo = finished
    before = _state(repo)
    untouched = _hashes(repo)
    url = pg_server.new_database()  # nothing in it, not even the schema
    result = repo.pg("migrate-store", "--to", url, "--json")
    assert result.code == 0, result.err
    rows = result.json()["rows"]
    assert rows["items"] == 2 and rows["runs"] == len(before["runs"]) and rows["receipts"] > 0
    assert rows["ledger"] == len(before["events"])
    assert _hashes(repo) == untouched
    _point_at(repo, url)
    after = _state(repo)
    assert after == before
    # Counters and sequences go on where SQLite stopped: no ID and no seq is handed out twice.
    repo.ok("add", "A third one")
    added = repo.ok("status", "--json").json()
    assert [i["id"] for i in added] == ["WRK-003"]
    last = repo.ok("log", "--json").json_lines()[-1]
    assert last["seq"] > before["events"][-1]["seq"]
    assert repo.ok("verify").code == 0


def test_an_empty_migrated_database_is_a_good_target(finished: Repo, pg_url: str) -> None:
    # A worker that connected first left the schema (and its change counter): still empty.
    result = finished.pg("migrate-store", "--to", pg_url)
    assert result.code == 0, result.err
    assert "Copied" in result.out and "2 items" in result.out


def test_a_database_that_holds_a_project_is_refused_and_left_alone(
    finished: Repo, pg_url: str
) -> None:
    assert finished.pg("migrate-store", "--to", pg_url).code == 0
    untouched = _hashes(finished)
    again = finished.pg("migrate-store", "--to", pg_url)
    _one_line_error(again, "not empty", "items")
    assert "golem@" not in again.err  # where it points, never who with
    assert _hashes(finished) == untouched
    _point_at(finished, pg_url)
    assert len(finished.ok("status", "--all", "--json").json()) == 2  # not copied twice


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("postgresql://u:pw@127.0.0.1:{port}/x", ("cannot connect", "127.0.0.1")),
        ("postgresql://u@/x?sslmode=nonsense", ("sslmode",)),
        ("mysql://u@127.0.0.1/x", ("postgresql://",)),
    ],
    ids=["server-down", "bad-url", "not-postgresql"],
)
def test_bad_targets_are_one_line_and_exit_3(
    project: Repo, url: str, words: tuple[str, ...]
) -> None:
    result = project.pg("migrate-store", "--to", url.format(port=_free_port()))
    _one_line_error(result, *words)
    assert "pw" not in result.err.replace("pwd", "")


def test_a_project_that_is_not_on_sqlite_has_nothing_to_migrate(
    project: Repo, pg_url: str, tmp_path: Path
) -> None:
    _point_at(project, pg_url)
    result = project.pg("migrate-store", "--to", pg_url)
    _one_line_error(result, "SQLite")


def test_the_engines_own_state_moves_too(finished: Repo, pg_server: Any) -> None:
    """Owed commits, leftovers and agent pauses live in tables of their own: copied too."""
    from phase_golem.store.postgres import PostgresStore
    from phase_golem.store.sqlite import SqliteStore
    from phase_golem.store.state import Leftover, PausedAgent

    sqlite = SqliteStore(finished.root / ".phase-golem" / "state.db")
    with sqlite.transaction() as tx:
        run_id = tx.list_runs()[0].id
        tx.save_leftovers([Leftover("root", "notes.md", (("WRK-001", "build"),), (run_id,))])
        tx.save_agent_pauses([PausedAgent("claude", "rate limited", "2026-12-03T00:00:00Z")], {})
    sqlite.close()
    url = pg_server.new_database()
    assert finished.pg("migrate-store", "--to", url).code == 0
    moved = PostgresStore(url)
    try:
        with moved.reader() as tx:
            assert [(x.path, x.runs) for x in tx.leftovers()] == [("notes.md", (run_id,))]
            assert [p.agent for p in tx.agent_pauses()[0]] == ["claude"]
    finally:
        moved.close()
