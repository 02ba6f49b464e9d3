"""SQLite store: the default, one file under `.phase-golem/`, safe across processes.

WAL with `synchronous=FULL`, `BEGIN IMMEDIATE` for every write so writers queue
on the busy timeout instead of failing mid-transaction, and `PRAGMA data_version`
to notice commits made by other processes.

Every SQLite error leaves as a StoreError naming its cause in one line (read-only, full,
I/O error), never masked by a failed rollback; and before each transaction the database
and its write-ahead log are checked to be the files we opened, so a `-wal` removed under
a running process stops it instead of letting it write where no other process reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from phase_golem.clock import utc_now
from phase_golem.domain.runs import Run
from phase_golem.faults import StoreFault, sqlite_fault
from phase_golem.store.base import Transaction, TransactionBase
from phase_golem.store.codec import run_from_row
from phase_golem.store.errors import StoreError
from phase_golem.store.keeper import SnapshotKeeper
from phase_golem.store.migrate import (
    VERSION_TABLE,
    apply_migrations,
    known_versions,
    migration_files,
    migration_scripts,
)
from phase_golem.store.snapshot import BacklogSnapshot
from phase_golem.store.sql_tx import SqlTransaction
from phase_golem.store.sqlite_group import CommitGroups

__all__ = ["SqliteStore", "SqliteTransaction", "migration_files", "migration_scripts"]

DEFAULT_BUSY_TIMEOUT_MS = 30_000


def _dict_row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def _split_statements(script: str) -> list[str]:
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(
        part.strip().startswith("--") or not part.strip() for part in buffer.splitlines()
    ):
        raise StoreError("migration ends with an incomplete SQL statement")
    return statements


class SqliteTransaction(SqlTransaction):
    def __init__(
        self,
        conn: sqlite3.Connection,
        now: datetime,
        *,
        writable: bool,
        snapshots: Callable[[TransactionBase], BacklogSnapshot] | None = None,
        keep_base: bool = False,
    ) -> None:
        super().__init__(now, writable=writable, snapshots=snapshots, keep_base=keep_base)
        self._conn = conn

    def _one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        row: dict[str, Any] | None = self._conn.execute(sql, params).fetchone()
        return row

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return list(self._conn.execute(sql, params).fetchall())

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(sql, params)

    def _tuples(self, sql: str) -> list[tuple[Any, ...]]:
        cursor = self._conn.cursor()
        cursor.row_factory = None
        return list(cursor.execute(sql).fetchall())

    def _iter(self, sql: str) -> Iterator[dict[str, Any]]:
        yield from self._conn.execute(sql)

    def _queued_runs_due(
        self, now_stamp: str, limit: int, item_ids: Collection[str] | None
    ) -> list[Run]:
        # `?3 IS NULL` keeps one statement for "any item" and "these items" (a JSON array).
        rows = self._all(
            "SELECT * FROM runs WHERE status = 'active' AND step = 'queued' "
            "AND (not_before IS NULL OR not_before <= ?1) "
            "AND (?3 IS NULL OR item_id IN (SELECT value FROM json_each(?3))) "
            "ORDER BY queued_at, id LIMIT ?2",
            (now_stamp, limit, None if item_ids is None else json.dumps(sorted(item_ids))),
        )
        return [run_from_row(r) for r in rows]


class _Migrations:
    """The runner's view of this store's open migration transaction."""

    def __init__(self, conn: sqlite3.Connection, clock: Callable[[], datetime]) -> None:
        self._conn = conn
        self._clock = clock

    def applied_versions(self) -> set[int]:
        rows = self._conn.execute("SELECT version FROM schema_migrations")
        return {int(row["version"]) for row in rows}

    def run_script(self, sql: str) -> None:
        for statement in _split_statements(sql):
            self._conn.execute(statement)

    def record(self, version: int, name: str) -> None:
        self._conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
            (version, name, self._clock().isoformat()),
        )


def _connect(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
    )
    conn.row_factory = _dict_row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    return conn


def _rollback(conn: sqlite3.Connection) -> None:
    """Undo what is open; a failed statement may already have ended the transaction."""
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


class SqliteStore:
    # The file lives under .phase-golem/, whose process lock admits one orchestrator.
    shared = False

    def __init__(
        self,
        path: Path,
        *,
        clock: Callable[[], datetime] = utc_now,
        synchronous: str = "FULL",
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    ) -> None:
        self.path = path
        self._clock = clock
        self._lock = threading.RLock()
        self._groups = CommitGroups(
            self._lock, lambda: self._conn, self._commit_group, self._lost_group
        )
        self._keeper = SnapshotKeeper()
        # The data_version our snapshot was last refreshed at: while it stands still no
        # other connection committed, so the snapshot is current without any query.
        self._seen_version: int | None = None
        self._files: tuple[tuple[int, int], tuple[int, int] | None] | None = None
        if not path.parent.is_dir():
            raise StoreError(f"database directory {path.parent} does not exist")
        if path.is_dir():
            raise StoreError(f"{path}: is a directory, not a database file")
        # Create the file ourselves so it is private from the first byte; SQLite gives
        # its -wal and -shm files the same mode as the database.
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StoreFault(f"{path}: cannot open the database: {exc.strerror or exc}") from None
        os.close(fd)
        try:
            self._conn = _connect(path, busy_timeout_ms)
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute(f"PRAGMA synchronous = {synchronous}")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._migrate()
            # Readers have their own connection (and lock): in WAL a read sees the last
            # commit and never waits for a writer's fsync, so a reader in one thread is
            # not held up by a commit in another. `query_only`: it cannot write.
            self._read_conn = _connect(path, busy_timeout_ms)
            self._read_conn.execute("PRAGMA query_only = ON")
        except sqlite3.Error as exc:
            raise StoreFault(f"cannot open the database: {sqlite_fault(exc, path)}") from None
        self._read_lock = threading.Lock()
        self._files = self._identity()

    def _identity(self) -> tuple[tuple[int, int], tuple[int, int] | None]:
        """(device, inode) of the database and of its write-ahead log (None if absent)."""
        main = os.stat(self.path)
        try:
            wal = os.stat(f"{self.path}-wal")
        except FileNotFoundError:
            return (main.st_dev, main.st_ino), None
        return (main.st_dev, main.st_ino), (wal.st_dev, wal.st_ino)

    def _check_files(self) -> None:
        """The files under us must be the ones we opened (cheap: two stats)."""
        if self._files is None:
            return
        try:
            main, wal = self._identity()
        except FileNotFoundError:
            raise StoreFault(
                f"{self.path}: the database file was removed while phase-golem ran"
            ) from None
        if main != self._files[0]:
            raise StoreFault(f"{self.path}: the database file was replaced while phase-golem ran")
        if self._files[1] is not None and wal != self._files[1]:
            raise StoreFault(
                f"{self.path}-wal: the database's write-ahead log was removed or replaced while "
                "phase-golem ran; stopped so that nothing more is written where others cannot "
                "read it (changes since the last checkpoint are in the log this process holds)"
            )
        if self._files[1] is None and wal is not None:
            self._files = (main, wal)

    @contextmanager
    def _sqlite_errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreFault(sqlite_fault(exc, self.path)) from None

    def _rollback(self) -> None:
        _rollback(self._conn)

    def _commit_group(self) -> None:
        """COMMIT what the open group wrote (under the lock); a StoreFault if it fails."""
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise StoreFault(sqlite_fault(exc, self.path)) from None

    def _migrate(self) -> None:
        if self._applied_versions() == known_versions("sqlite"):
            return  # the common case, checked without taking the write lock
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(VERSION_TABLE)
                apply_migrations(_Migrations(self._conn, self._clock), "sqlite", str(self.path))
                self._conn.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def _applied_versions(self) -> set[int] | None:
        try:
            rows = self._conn.execute("SELECT version FROM schema_migrations").fetchall()
        except sqlite3.OperationalError:
            return None  # no table yet: a new database
        return {int(row["version"]) for row in rows}

    def schema_version(self) -> int:
        with self._lock, self._sqlite_errors():
            row = self._conn.execute(
                "SELECT MAX(version) AS version FROM schema_migrations"
            ).fetchone()
            return int(row["version"] or 0)

    def data_version(self) -> int:
        with self._lock, self._sqlite_errors():
            return int(self._conn.execute("PRAGMA data_version").fetchone()["data_version"])

    def snapshot(self) -> BacklogSnapshot:
        """The published snapshot; one `PRAGMA data_version` when nothing changed."""
        with self._lock:
            version = self.data_version()
            published = self._keeper.published
            if published is not None and version == self._seen_version:
                return published
            self._groups.settle()  # a group left open for a writer that queued: commit it
            with self._reading(self._conn) as tx:  # at the version just read
                refreshed = self._keeper.refresh(tx)
            self._seen_version = version
            return refreshed

    @property
    def full_loads(self) -> int:
        """How often the whole backlog was decoded: once, at the first snapshot."""
        return self._keeper.full_loads

    def _snapshot_in(self, tx: TransactionBase, version: int) -> BacklogSnapshot:
        refreshed = self._keeper.refresh(tx)
        self._seen_version = version
        return refreshed

    @contextmanager
    def transaction(
        self, *, now: datetime | None = None, scheduling: bool = False
    ) -> Iterator[Transaction]:
        """One unit of work, durable when the `with` ends (sqlite_group.py: transactions of
        several threads that queue for the writer share one COMMIT and its fsync)."""
        # `scheduling` needs nothing extra here: BEGIN IMMEDIATE already makes this
        # process the only writer until COMMIT.
        with self._groups.writing(self._begin):
            self._check_files()
            with self._groups.member(self._sqlite_errors):
                version = self.data_version()
                tx = SqliteTransaction(
                    self._conn,
                    now or self._clock(),
                    writable=True,
                    snapshots=lambda t: self._snapshot_in(t, version),
                    keep_base=self._keeper.published is not None,
                )
                yield tx
            if not self._keeper.committed(tx):
                self._seen_version = None  # the next snapshot reads the rows it missed

    def _begin(self) -> None:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._rollback()
            cause = sqlite_fault(exc, self.path)
            if "locked" in str(exc) or "busy" in str(exc):  # contention, not a fault
                raise StoreError(f"could not start a write: {cause}") from None
            raise StoreFault(f"could not start a write: {cause}") from None

    def _lost_group(self) -> None:
        """A shared commit failed: what its members published is not in the database."""
        self._keeper.invalidate()
        self._seen_version = None

    @contextmanager
    def reader(self) -> Iterator[Transaction]:
        """A read of the last commit, on the readers' connection (no writer waits it)."""
        with self._read_lock, self._reading(self._read_conn) as tx:
            yield tx

    @contextmanager
    def _reading(self, conn: sqlite3.Connection) -> Iterator[Transaction]:
        self._check_files()
        with self._sqlite_errors():
            conn.execute("BEGIN")
        try:
            yield SqliteTransaction(conn, self._clock(), writable=False)
        except sqlite3.Error as exc:
            _rollback(conn)
            raise StoreFault(sqlite_fault(exc, self.path)) from None
        except BaseException:
            _rollback(conn)
            raise
        with self._sqlite_errors():
            conn.execute("COMMIT")

    def close(self) -> None:
        with self._read_lock, contextlib.suppress(sqlite3.Error):
            self._read_conn.close()
        with self._lock, contextlib.suppress(sqlite3.Error, StoreFault):
            self._groups.settle()
            self._conn.close()
