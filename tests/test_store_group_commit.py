"""SQLite group commit (store/sqlite_group.py): writers that queue share one COMMIT, and
each one's work is on disk, and only its own work is undone, exactly as if alone."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from phase_golem.faults import StoreFault
from phase_golem.store.sqlite import SqliteStore


def _on_disk(path: Path, key: str) -> str | None:
    """The value as another connection (another process) reads it from the file."""
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    finally:
        conn.close()
    return None if row is None else str(row[0])


def _until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, "the other writer never queued"
        time.sleep(0.001)


def _second_writer_queues(store: SqliteStore, path: Path, body: Callable[[], None]) -> None:
    """A first transaction that ends only once a second writer waits for the lock, so
    both share one COMMIT; `body` is the second one's."""
    second = threading.Thread(target=body)
    with store.transaction() as tx:
        tx.set_meta("first", "1")
        second.start()
        _until(lambda: store._groups._waiting > 0)
    # The `with` ended: the first transaction is on disk, whoever committed it.
    assert _on_disk(path, "first") == "1"
    second.join()


def test_queued_writers_share_one_commit_and_each_is_on_disk_when_it_returns(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    seen: list[str | None] = []

    def second() -> None:
        with store.transaction() as tx:
            tx.set_meta("second", "2")
        seen.append(_on_disk(path, "second"))

    commits = store._groups.commits
    _second_writer_queues(store, path, second)
    assert seen == ["2"]
    assert store._groups.commits == commits + 1  # one COMMIT (one fsync) for both
    store.close()


def test_a_failing_member_undoes_only_its_own_work(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    failures: list[BaseException] = []

    def second() -> None:
        try:
            with store.transaction() as tx:
                tx.set_meta("second", "2")
                raise ValueError("the second one fails")
        except ValueError as exc:
            failures.append(exc)

    _second_writer_queues(store, path, second)
    assert [str(f) for f in failures] == ["the second one fails"]
    assert _on_disk(path, "second") is None
    with store.transaction() as tx:  # the connection is usable as before
        tx.set_meta("third", "3")
    assert _on_disk(path, "third") == "3"
    with store.reader() as tx:
        assert (tx.get_meta("first"), tx.get_meta("second")) == ("1", None)
    store.close()


def test_many_threads_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = SqliteStore(path)
    missing: list[str] = []

    def writer(n: int) -> None:
        for i in range(15):
            key = f"w{n}-{i}"
            with store.transaction() as tx:
                tx.set_meta(key, key)
            if _on_disk(path, key) != key:
                missing.append(key)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert missing == []
    assert store._groups._open is None  # nothing left uncommitted
    store.close()


def test_a_transaction_inside_a_transaction_is_refused_as_before(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    with store.transaction() as tx:
        tx.set_meta("outer", "1")
        with pytest.raises(StoreFault), store.transaction():
            pass
    with store.reader() as tx:
        assert tx.get_meta("outer") == "1"
    store.close()
