"""Copy a SQLite store into an empty PostgreSQL database (`phase-golem migrate-store`).

The whole copy is ONE PostgreSQL transaction under the project's write lock: a worker
that connects meanwhile waits for it, and a copy that fails half-way leaves no row behind.
The SQLite file is only read, in one read transaction (a consistent view even while a
`run` writes to it); nothing in it changes. A target that holds any row of a project
already is refused before anything is written: a copy never merges two histories.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from phase_golem.faults import StoreFault, sqlite_fault
from phase_golem.store.base import CHANGE_COUNTER
from phase_golem.store.errors import StoreError
from phase_golem.store.migrate import known_versions
from phase_golem.store.pg_conn import connect, describe_url
from phase_golem.store.pg_tx import CHANNEL
from phase_golem.store.postgres import WRITE_LOCK_KEY, PostgresStore

# Parents before children (runs.retry_of points at an earlier run: rows go in rowid order).
TABLES = (
    "items",
    "id_counters",
    "runs",
    "ledger",
    "receipts",
    "schedules",
    "meta",
    "notifications",
    "pending_commits",
    "leftovers",
    "agent_pauses",
    "agent_resumes",
)
# Tables whose primary key is an identity column: its sequence continues after the copy.
IDENTITY = {"ledger": "seq", "receipts": "seq", "notifications": "id"}


class TargetNotEmpty(StoreError):
    """The PostgreSQL database holds a project already (the one line to print)."""


@dataclass
class CopyReport:
    target: str  # host:port/dbname, never the password
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def _read_only(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        conn.execute("BEGIN")  # one snapshot for every table
    except sqlite3.Error as exc:
        raise StoreFault(f"cannot read {path}: {sqlite_fault(exc, path)}") from None
    return conn


def _source_version(source: sqlite3.Connection, path: Path) -> None:
    versions = {int(r[0]) for r in source.execute("SELECT version FROM schema_migrations")}
    if versions != known_versions("sqlite"):
        raise StoreError(
            f"{path} is at schema versions {sorted(versions)}, not this phase-golem's; "
            "open it once with this phase-golem (e.g. `phase-golem status`) first"
        )


def _occupied(conn: psycopg.Connection[dict[str, Any]]) -> list[str]:
    """The tables of the target that hold a project's rows (the empty schema does not)."""
    full = []
    for table in TABLES:
        if table == "id_counters":
            sql = "SELECT 1 FROM id_counters WHERE name <> %s OR high_water > 0 LIMIT 1"
            row = conn.execute(sql, (CHANGE_COUNTER,)).fetchone()
        else:
            row = conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone()
        if row is not None:
            full.append(table)
    return full


def _columns(conn: psycopg.Connection[dict[str, Any]], table: str) -> set[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND table_name = %s",
        (table,),
    ).fetchall()
    return {str(r["column_name"]) for r in rows}


def _copy_table(
    source: sqlite3.Connection, conn: psycopg.Connection[dict[str, Any]], table: str
) -> int:
    cursor = source.execute(f"SELECT * FROM {table} ORDER BY rowid")
    names = [d[0] for d in cursor.description]
    missing = sorted(set(names) - _columns(conn, table))
    if missing:
        raise StoreError(f"the PostgreSQL schema has no column {table}.{missing[0]}")
    if table == "id_counters":  # the empty schema's own change counter row goes first
        conn.execute("DELETE FROM id_counters")
    count = 0
    with conn.cursor().copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
        for row in cursor:
            copy.write_row(row)
            count += 1
    if table in IDENTITY:
        column = IDENTITY[table]
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'), "
            f"coalesce((SELECT max({column}) FROM {table}), 0) + 1, false)"
        )
    return count


def copy_sqlite_to_postgres(path: Path, url: str) -> CopyReport:
    """Copy every row of the SQLite store at `path` into the empty database at `url`."""
    if not url.startswith(("postgresql://", "postgres://")):
        raise StoreError("--to must be a postgresql:// url")
    PostgresStore(url).close()  # connects (one line when it cannot) and creates the schema
    report = CopyReport(describe_url(url))
    source = _read_only(path)
    try:
        _source_version(source, path)
        target = connect(url)
        try:
            _copy_all(source, target, report)
        except psycopg.Error as exc:
            line = " ".join(str(exc).split())[:300]
            raise StoreFault(
                f"{report.target}: the copy failed, nothing was written: {line}"
            ) from None
        finally:
            target.close()
    except sqlite3.Error as exc:
        raise StoreFault(f"cannot read {path}: {sqlite_fault(exc, path)}") from None
    finally:
        source.close()
    return report


def _copy_all(
    source: sqlite3.Connection, target: psycopg.Connection[dict[str, Any]], report: CopyReport
) -> None:
    target.execute(f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")
    try:
        occupied = _occupied(target)
        if occupied:
            raise TargetNotEmpty(
                f"{report.target} is not empty (it has rows in {', '.join(occupied)}); "
                "migrate-store copies only into an empty database"
            )
        for table in TABLES:
            report.rows[table] = _copy_table(source, target, table)
        target.execute(f"NOTIFY {CHANNEL}; COMMIT")
    except BaseException:
        with contextlib.suppress(psycopg.Error):
            target.execute("ROLLBACK")
        raise
