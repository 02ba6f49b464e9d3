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
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from phase_golem.clock import utc_now
from phase_golem.domain.events import EventKind, LedgerEvent, Schedule
from phase_golem.domain.items import Item
from phase_golem.domain.listing import EventPage, ItemCounts, RunPage, RunTotal
from phase_golem.domain.notifications import Notification, NotificationStatus
from phase_golem.domain.receipts import Receipt
from phase_golem.domain.runs import RUN_FIELDS, Run, RunStatus
from phase_golem.faults import StoreFault, sqlite_fault
from phase_golem.store import sql_notifications, sql_pages
from phase_golem.store.base import CHANGE_COUNTER, StoreError, Transaction, TransactionBase
from phase_golem.store.codec import (
    EVENT_COLUMNS,
    ITEM_ROW_ORDER,
    RECEIPT_COLUMNS,
    SCHEDULE_COLUMNS,
    event_data_to_column,
    event_from_row,
    item_from_row,
    item_to_row,
    items_from_value_rows,
    receipt_from_row,
    receipt_to_row,
    run_from_row,
    run_to_row,
    schedule_from_row,
)
from phase_golem.store.keeper import SnapshotKeeper
from phase_golem.store.snapshot import BacklogSnapshot

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


def migration_files(dialect: str) -> list[tuple[int, str, Path]]:
    """(version, name, file) of every `NNNN_name.sql` of a dialect, in order (unread)."""
    folder = Path(__file__).parent / "migrations" / dialect
    found: list[tuple[int, str, Path]] = []
    for entry in folder.iterdir():
        name = entry.name
        if not name.endswith(".sql"):
            continue
        number, _, rest = name.partition("_")
        if not number.isdigit():
            raise StoreError(f"migration file {name} must start with a number")
        found.append((int(number), rest.removesuffix(".sql"), entry))
    found.sort()
    versions = [v for v, _, _ in found]
    # Numbers are reserved per feature branch, so one may land before a lower one: each
    # is applied by its number (see _migrate), and only a repeated number is an error.
    if len(set(versions)) != len(versions) or (versions and versions[0] < 1):
        raise StoreError(f"{dialect} migrations must have distinct numbers from 1: {versions}")
    return found


def migration_scripts(dialect: str) -> list[tuple[int, str, str]]:
    """(version, name, sql) for every `NNNN_name.sql` of a dialect, in order."""
    return [(v, name, path.read_text("utf-8")) for v, name, path in migration_files(dialect)]


class SqliteTransaction(TransactionBase):
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

    def _load_item(self, item_id: str) -> Item | None:
        row = self._one("SELECT * FROM items WHERE id = ?", (item_id,))
        return item_from_row(row) if row else None

    def _load_items(self, include_archived: bool) -> list[Item]:
        sql = f"SELECT {', '.join(ITEM_ROW_ORDER)} FROM items"
        sql += ("" if include_archived else " WHERE archived = 0") + " ORDER BY created, id"
        cursor = self._conn.cursor()
        cursor.row_factory = None  # plain tuples: this is the one full decode, at open
        return items_from_value_rows(cursor.execute(sql).fetchall())

    def _insert_item(self, item: Item, change_seq: int) -> None:
        row = item_to_row(item)
        row["change_seq"] = change_seq
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self._conn.execute(f"INSERT INTO items ({columns}) VALUES ({marks})", list(row.values()))

    def _update_item(self, item: Item, change_seq: int) -> None:
        row = item_to_row(item)
        row["change_seq"] = change_seq
        assignments = ", ".join(f"{name} = ?" for name in row if name != "id")
        values = [v for k, v in row.items() if k != "id"] + [item.id]
        self._conn.execute(f"UPDATE items SET {assignments} WHERE id = ?", values)

    def _bump_change_counter(self) -> int:
        row = self._one(
            "INSERT INTO id_counters (name, high_water) VALUES (?, 1) ON CONFLICT (name) "
            "DO UPDATE SET high_water = high_water + 1 RETURNING high_water",
            (CHANGE_COUNTER,),
        )
        assert row is not None
        return int(row["high_water"])

    def _change_seq(self) -> int:
        return self._load_counter(CHANGE_COUNTER)

    def _items_changed_since(self, seq: int) -> list[Item]:
        rows = self._all("SELECT * FROM items WHERE change_seq > ? ORDER BY change_seq", (seq,))
        return [item_from_row(r) for r in rows]

    def _runs_changed_since(self, seq: int) -> list[Run]:
        rows = self._all("SELECT * FROM runs WHERE change_seq > ? ORDER BY change_seq", (seq,))
        return [run_from_row(r) for r in rows]

    def _load_counter(self, name: str) -> int:
        row = self._one("SELECT high_water FROM id_counters WHERE name = ?", (name,))
        return int(row["high_water"]) if row else 0

    def _store_counter(self, name: str, value: int) -> None:
        self._conn.execute(
            "INSERT INTO id_counters (name, high_water) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET high_water = excluded.high_water",
            (name, value),
        )

    def _load_run(self, run_id: str) -> Run | None:
        row = self._one("SELECT * FROM runs WHERE id = ?", (run_id,))
        return run_from_row(row) if row else None

    def _load_runs(
        self,
        item_id: str | None,
        statuses: Sequence[RunStatus] | None,
        limit: int | None,
    ) -> list[Run]:
        clauses: list[str] = []
        params: list[Any] = []
        if item_id is not None:
            clauses.append("item_id = ?")
            params.append(item_id)
        if statuses:
            clauses.append(f"status IN ({', '.join('?' for _ in statuses)})")
            params.extend(s.value for s in statuses)
        sql = "SELECT * FROM runs"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY queued_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [run_from_row(r) for r in self._all(sql, params)]

    def _insert_run(self, run: Run, change_seq: int) -> None:
        row = run_to_row(run)
        marks = ", ".join("?" for _ in RUN_FIELDS)
        self._conn.execute(
            f"INSERT INTO runs ({', '.join(RUN_FIELDS)}, change_seq) VALUES ({marks}, ?)",
            [*(row[name] for name in RUN_FIELDS), change_seq],
        )

    def _update_run(self, run: Run, change_seq: int) -> None:
        row = run_to_row(run)
        names = [n for n in RUN_FIELDS if n != "id"]
        assignments = ", ".join(f"{name} = ?" for name in names)
        self._conn.execute(
            f"UPDATE runs SET {assignments}, change_seq = ? WHERE id = ?",
            [*(row[n] for n in names), change_seq, run.id],
        )

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

    def _insert_event(
        self,
        at: str,
        kind: EventKind,
        item_id: str | None,
        run_id: str | None,
        data: Mapping[str, Any],
    ) -> int:
        cursor = self._conn.execute(
            "INSERT INTO ledger (at, kind, item_id, run_id, data) VALUES (?, ?, ?, ?, ?)",
            (at, kind.value, item_id, run_id, event_data_to_column(data)),
        )
        return int(cursor.lastrowid or 0)

    def _load_events(
        self, after_seq: int, item_id: str | None, limit: int | None
    ) -> list[LedgerEvent]:
        sql = f"SELECT {', '.join(EVENT_COLUMNS)} FROM ledger WHERE seq > ?"
        params: list[Any] = [after_seq]
        if item_id is not None:
            sql += " AND item_id = ?"
            params.append(item_id)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        return [event_from_row(r) for r in self._all(sql, params)]

    def _insert_receipt(self, receipt: Receipt) -> None:
        row = receipt_to_row(receipt)
        marks = ", ".join("?" for _ in RECEIPT_COLUMNS)
        self._conn.execute(
            f"INSERT INTO receipts ({', '.join(RECEIPT_COLUMNS)}) VALUES ({marks})",
            [row[name] for name in RECEIPT_COLUMNS],
        )

    def _load_receipt(self, run_id: str) -> Receipt | None:
        row = self._one(
            f"SELECT {', '.join(RECEIPT_COLUMNS)} FROM receipts WHERE run_id = ?", (run_id,)
        )
        return receipt_from_row(row) if row else None

    def _load_receipts(self, item_id: str | None) -> list[Receipt]:
        sql = f"SELECT {', '.join(RECEIPT_COLUMNS)} FROM receipts"
        params: list[Any] = []
        if item_id is not None:
            sql += " WHERE item_id = ?"
            params.append(item_id)
        return [receipt_from_row(r) for r in self._all(sql + " ORDER BY seq", params)]

    def _update_receipt(self, receipt: Receipt) -> None:
        self._conn.execute(
            "UPDATE receipts SET git_commit = ? WHERE run_id = ?", (receipt.commit, receipt.run_id)
        )

    def _load_schedule(self, source: str) -> Schedule | None:
        row = self._one(
            f"SELECT {', '.join(SCHEDULE_COLUMNS)} FROM schedules WHERE source = ?", (source,)
        )
        return schedule_from_row(row) if row else None

    def _load_schedules(self) -> list[Schedule]:
        rows = self._all(f"SELECT {', '.join(SCHEDULE_COLUMNS)} FROM schedules ORDER BY source")
        return [schedule_from_row(r) for r in rows]

    def _upsert_schedule(self, schedule: Schedule) -> None:
        names = ", ".join(SCHEDULE_COLUMNS)
        marks = ", ".join("?" for _ in SCHEDULE_COLUMNS)
        updates = ", ".join(f"{n} = excluded.{n}" for n in SCHEDULE_COLUMNS if n != "source")
        self._conn.execute(
            f"INSERT INTO schedules ({names}) VALUES ({marks}) "
            f"ON CONFLICT (source) DO UPDATE SET {updates}",
            [getattr(schedule, n) for n in SCHEDULE_COLUMNS],
        )

    def _delete_schedule(self, source: str) -> None:
        self._conn.execute("DELETE FROM schedules WHERE source = ?", (source,))

    def _load_item_by_external(self, source: str, external_id: str) -> Item | None:
        row = self._one(
            "SELECT * FROM items WHERE source = ? AND external_id = ?", (source, external_id)
        )
        return item_from_row(row) if row else None

    def _load_meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return str(row["value"]) if row else None

    def _store_meta(self, key: str, value: str) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- the notifications outbox (store/outbox.py)
    def _insert_notification(self, notification: Notification) -> int:
        params = sql_notifications.insert_params(notification)
        cursor = self._conn.execute(sql_notifications.INSERT, params)
        return int(cursor.lastrowid or 0)

    def _update_notification(self, notification: Notification) -> None:
        params = sql_notifications.update_params(notification)
        self._conn.execute(sql_notifications.UPDATE, params)

    def _load_notification(self, notification_id: int) -> Notification | None:
        row = self._one(sql_notifications.SELECT + " WHERE id = ?", (notification_id,))
        return sql_notifications.from_row(row) if row else None

    def _load_notifications(
        self,
        statuses: Sequence[NotificationStatus] | None,
        due_by: str | None,
        limit: int | None,
    ) -> list[Notification]:
        sql, params = sql_notifications.list_query(statuses, due_by, limit)
        return [sql_notifications.from_row(r) for r in self._all(sql, params)]

    # -- pages for the read commands (store/pages.py)
    def _count_items(self, include_archived: bool) -> ItemCounts:
        counts = {r["status"]: int(r["n"]) for r in self._all(sql_pages.ACTIVE_COUNTS)}
        archived = self._one(sql_pages.ARCHIVED_TOTAL)
        if include_archived:
            for row in self._all(sql_pages.ARCHIVED_COUNTS):
                counts[row["section"]] = counts.get(row["section"], 0) + int(row["n"])
        return ItemCounts(counts, int(archived["n"]) if archived else 0)

    def _run_totals(self) -> list[RunTotal]:
        return [
            RunTotal(
                r["status"],
                r["step"],
                r["error_class"],
                r["agent"],
                r["model"],
                int(r["runs"]),
                float(r["cost_usd"]),
                int(r["tokens_in"]),
                int(r["tokens_out"]),
                float(r["seconds"]),
            )
            for r in self._all(sql_pages.RUN_TOTALS)
        ]

    def _load_section(self, section: str, include_archived: bool, limit: int | None) -> list[Item]:
        query = sql_pages.section_query(section, include_archived, limit)
        return [item_from_row(r) for r in self._all(*query)] if query else []

    def _iter_status_order(self, include_archived: bool) -> Iterator[Item]:
        for row in self._conn.execute(sql_pages.status_order_query(include_archived)):
            yield item_from_row(row)

    def _load_run_page(self, page: RunPage) -> list[Run]:
        sql, params, oldest_first = sql_pages.run_page_query(page)
        runs = [run_from_row(r) for r in self._all(sql, params)]
        return runs[::-1] if oldest_first else runs

    def _load_event_page(self, page: EventPage) -> list[LedgerEvent]:
        sql, params, newest_first = sql_pages.event_page_query(page)
        events = [event_from_row(r) for r in self._all(sql, params)]
        return events[::-1] if newest_first else events


class SqliteStore:
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
            self._conn = sqlite3.connect(
                path,
                timeout=busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            self._conn.row_factory = _dict_row
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute(f"PRAGMA synchronous = {synchronous}")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.Error as exc:
            raise StoreFault(f"cannot open the database: {sqlite_fault(exc, path)}") from None
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
        """Undo what is open; a failed statement may already have ended the transaction."""
        if self._conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")

    def _migrate(self) -> None:
        known = [version for version, _, _ in migration_files("sqlite")]
        if self._applied_versions() == set(known):
            return  # the common case, checked without taking the write lock
        scripts = migration_scripts("sqlite")
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations ("
                    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
                )
                applied = {
                    int(row["version"])
                    for row in self._conn.execute("SELECT version FROM schema_migrations")
                }
                unknown = sorted(applied - {version for version, _, _ in scripts})
                if unknown:
                    raise StoreError(
                        f"{self.path}: database schema version {unknown[-1]} is newer than "
                        f"this phase-golem understands ({scripts[-1][0]}); upgrade phase-golem"
                    )
                for version, name, sql in scripts:
                    if version in applied:
                        continue
                    for statement in _split_statements(sql):
                        self._conn.execute(statement)
                    self._conn.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) "
                        "VALUES (?, ?, ?)",
                        (version, name, self._clock().isoformat()),
                    )
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
            with self.reader() as tx:
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
        # `scheduling` needs nothing extra here: BEGIN IMMEDIATE already makes this
        # process the only writer until COMMIT.
        with self._lock:
            self._check_files()
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                self._rollback()
                cause = sqlite_fault(exc, self.path)
                if "locked" in str(exc) or "busy" in str(exc):  # contention, not a fault
                    raise StoreError(f"could not start a write: {cause}") from None
                raise StoreFault(f"could not start a write: {cause}") from None
            try:
                version = self.data_version()
                tx = SqliteTransaction(
                    self._conn,
                    now or self._clock(),
                    writable=True,
                    snapshots=lambda t: self._snapshot_in(t, version),
                    keep_base=self._keeper.published is not None,
                )
                yield tx
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise StoreFault(sqlite_fault(exc, self.path)) from None
            except BaseException:
                self._rollback()
                raise
            if not self._keeper.committed(tx):
                self._seen_version = None  # the next snapshot reads the rows it missed

    @contextmanager
    def reader(self) -> Iterator[Transaction]:
        with self._lock:
            self._check_files()
            with self._sqlite_errors():
                self._conn.execute("BEGIN")
            try:
                yield SqliteTransaction(self._conn, self._clock(), writable=False)
            except sqlite3.Error as exc:
                self._rollback()
                raise StoreFault(sqlite_fault(exc, self.path)) from None
            except BaseException:
                self._rollback()
                raise
            with self._sqlite_errors():
                self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._conn.close()
