"""PostgreSQL store (DESIGN §14): many workers on many machines share one database.

Every write transaction starts by taking the project's advisory lock
(`pg_advisory_xact_lock`, one key per database, which is one project), in the same round
trip as its BEGIN: writers queue as they do on SQLite's BEGIN IMMEDIATE, so a
read-modify-write never loses an update, IDs are never handed out twice, ledger sequence
numbers commit in order, and `decide` sees exactly what it locks. Claims pick their runs
with `FOR UPDATE SKIP LOCKED` in one statement (pg_tx.py). Each writing transaction sends
`NOTIFY` with its COMMIT, which wakes idle schedulers (`listen`) instead of polling.

Readers run in REPEATABLE READ, READ ONLY: one consistent view and no lock at all.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import psycopg

from phase_golem.clock import utc_now
from phase_golem.domain.items import format_timestamp
from phase_golem.domain.runs import Run
from phase_golem.faults import StoreFault
from phase_golem.store.base import CHANGE_COUNTER, Transaction, TransactionBase
from phase_golem.store.codec import run_from_row
from phase_golem.store.errors import StoreError
from phase_golem.store.keeper import SnapshotKeeper
from phase_golem.store.migrate import VERSION_TABLE, apply_migrations, known_versions
from phase_golem.store.pg_conn import Conn, Connections, connect, describe_url, first_line, lost
from phase_golem.store.pg_tx import CHANNEL, CLAIM_AND_WAKE, PostgresTransaction, claim_params
from phase_golem.store.snapshot import BacklogSnapshot

# Advisory lock keys: a database is one project, so one constant key each is one per project.
WRITE_LOCK_KEY = 0x5047_4F4C  # "PGOL": every write transaction (and so every decide)
MIGRATE_LOCK_KEY = 0x5047_4D47  # "PGMG": migrations, so two workers starting at once wait
# Sent with the first statement of a transaction, in one round trip (pg_tx.py).
WRITE_BEGIN = ("BEGIN", f"SELECT pg_advisory_xact_lock({WRITE_LOCK_KEY})")
READ_BEGIN = ("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",)
CLAIM_LOCK = WRITE_BEGIN[1]  # the store's claim: an implicit transaction (_pipelined_claim)
_CHANGE_VERSION = (
    f"SELECT (SELECT high_water FROM id_counters WHERE name = '{CHANGE_COUNTER}') "
    "+ (SELECT coalesce(max(seq), 0) FROM ledger) AS version"
)
_CHANGE_SEQ = f"SELECT high_water FROM id_counters WHERE name = '{CHANGE_COUNTER}'"


class _Migrations:
    def __init__(self, conn: psycopg.Connection[dict[str, Any]], clock: Callable[[], datetime]):
        self._conn = conn
        self._clock = clock

    def applied_versions(self) -> set[int]:
        rows = self._conn.execute("SELECT version FROM schema_migrations").fetchall()
        return {int(row["version"]) for row in rows}

    def run_script(self, sql: str) -> None:
        self._conn.execute(sql.encode("utf-8"))  # no parameters: the file's statements at once

    def record(self, version: int, name: str) -> None:
        self._conn.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
            (version, name, self._clock().isoformat()),
        )


class PostgresStore:
    # Many workers on many hosts: a run left active may be another live worker's.
    shared = True

    def __init__(self, url: str, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.url = url
        self.where = describe_url(url)
        self._clock = clock
        self._lock = threading.RLock()
        self._keeper = SnapshotKeeper()
        first = connect(url)  # the real cause of a bad URL or a server that is down
        try:
            self._migrate(first)
        except psycopg.Error as exc:
            cause = first_line(exc)
            raise StoreFault(f"{self.where}: cannot prepare the database: {cause}") from None
        finally:
            first.close()
        self._conns = Connections(url, self.where)

    def _migrate(self, conn: psycopg.Connection[dict[str, Any]]) -> None:
        try:
            applied = {
                int(r["version"]) for r in conn.execute("SELECT version FROM schema_migrations")
            }
        except psycopg.errors.UndefinedTable:
            applied = set()
        if applied == known_versions("postgres"):
            return
        conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({MIGRATE_LOCK_KEY})")
        try:
            conn.execute(VERSION_TABLE)
            apply_migrations(_Migrations(conn, self._clock), "postgres", self.where)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(psycopg.Error):
                conn.execute("ROLLBACK")
            raise

    @contextmanager
    def _connection(self) -> Iterator[Conn]:
        conn = self._conns.get()
        try:
            yield conn
        finally:
            self._conns.put(conn)

    def _fault(self, exc: psycopg.Error, conn: Conn | None = None) -> StoreFault:
        if conn is not None and lost(conn, exc):
            return self._conns.unavailable(exc)
        return StoreFault(f"{self.where}: PostgreSQL error: {first_line(exc)}")

    def _reopen(self, broken: Conn, cause: BaseException) -> Conn:
        """Another connection for a transaction whose first round trip found its own dead
        (a restarted server): nothing of it had happened, so it simply starts again, once
        the server answers (pg_conn.py). The broken one goes back only then: when the
        server stays away, whoever holds it still puts it back, once."""
        fresh = self._conns.recover(cause)
        self._conns.put(broken)  # its pool, closed by now, discards it
        return fresh

    def schema_version(self) -> int:
        return self._scalar("SELECT max(version) AS version FROM schema_migrations")

    def _scalar(self, sql: str) -> int:
        """One autocommit query; on a connection the server dropped, again on a new one."""
        conn = self._conns.get()
        try:
            for attempt in (1, 2, 3):
                try:
                    row = conn.execute(sql).fetchone()
                except psycopg.Error as exc:
                    if attempt == 3 or not lost(conn, exc):
                        raise self._fault(exc, conn) from None
                    conn = self._reopen(conn, exc)
                    continue
                return int(next(iter(row.values())) or 0) if row else 0
        finally:
            self._conns.put(conn)
        raise AssertionError("unreachable")

    def data_version(self) -> int:
        """Moves whenever a commit changed an item, a run or the ledger (one query)."""
        with self._lock:
            return self._scalar(_CHANGE_VERSION)

    def snapshot(self) -> BacklogSnapshot:
        """The published snapshot; one query of the change counter when nothing changed."""
        with self._lock:
            published = self._keeper.published
            if published is not None and self._scalar(_CHANGE_SEQ) == published.change_seq:
                return published
            with self.reader() as tx:
                return self._keeper.refresh(tx)

    @property
    def full_loads(self) -> int:
        return self._keeper.full_loads

    @contextmanager
    def _unit(
        self, begin: tuple[str, ...], tx_of: Callable[..., PostgresTransaction]
    ) -> Iterator[PostgresTransaction]:
        """A transaction on a pooled connection; its BEGIN goes with its first statement."""
        tx = tx_of(self._conns.get(), begin=begin, reopen=self._reopen)
        try:
            try:
                yield tx
                if tx.begun:
                    tx.conn.execute(f"NOTIFY {CHANNEL}; COMMIT" if tx.wrote else "COMMIT")
            except psycopg.Error as exc:
                self._rollback(tx)
                raise self._fault(exc, tx.conn) from None
            except BaseException:
                self._rollback(tx)
                raise
        finally:
            self._conns.put(tx.conn)

    @contextmanager
    def transaction(
        self, *, now: datetime | None = None, scheduling: bool = False
    ) -> Iterator[Transaction]:
        # `scheduling` needs nothing extra: every write already holds the project's lock.
        def writer(conn: Any, **kwargs: Any) -> PostgresTransaction:
            return PostgresTransaction(
                conn,
                now or self._clock(),
                writable=True,
                snapshots=self._keeper.refresh,
                keep_base=self._keeper.published is not None,
                **kwargs,
            )

        with self._lock, self._unit(WRITE_BEGIN, writer) as tx:
            yield tx
        self._keeper.committed(tx)  # when it cannot publish, the next snapshot() reads

    @staticmethod
    def _rollback(tx: PostgresTransaction) -> None:
        if tx.begun:
            with contextlib.suppress(psycopg.Error):
                tx.conn.execute("ROLLBACK")

    @contextmanager
    def reader(self) -> Iterator[Transaction]:
        def reading(conn: Any, **kwargs: Any) -> PostgresTransaction:
            return PostgresTransaction(conn, self._clock(), writable=False, **kwargs)

        with self._lock, self._unit(READ_BEGIN, reading) as tx:
            yield tx

    def claim_runs(
        self,
        worker_id: str,
        limit: int,
        lease_until: datetime,
        item_ids: Collection[str] | None = None,
        *,
        unless_flag: str | None = None,
        alone: bool = False,
    ) -> list[Run] | None:
        """`Transaction.claim_runs` as a transaction of its own in ONE round trip: the lock
        and the claim statement (which notifies when it claimed anything) are pipelined, so
        the lock is held only while the server runs them. Claims nothing while the meta key
        `unless_flag` holds a value (the scheduler's pause flag). None: use a transaction
        (a claim writes an outbox row)."""
        stamp = format_timestamp(self._clock())
        params = claim_params(worker_id, limit, lease_until, item_ids, stamp, unless_flag, alone)
        if params is None or limit <= 0:
            return None if params is None else []
        with self._lock:
            conn = self._conns.get()
            try:
                try:
                    rows = self._pipelined_claim(conn, params)
                except psycopg.Error as exc:
                    if not lost(conn, exc):
                        raise self._fault(exc, conn) from None
                    # A dead connection (a restarted server): the claim again on a new one.
                    # Had the first one committed after all, its runs would be ours, unrun,
                    # and taken over by the sweep after their lease: never claimed twice.
                    conn = self._reopen(conn, exc)
                    try:
                        rows = self._pipelined_claim(conn, params)
                    except psycopg.Error as again:
                        raise self._fault(again, conn) from None
            finally:
                self._conns.put(conn)
            claimed = [run_from_row(row) for row in rows]
            if claimed:
                self._keeper.publish(int(rows[0]["change_seq"]), (), claimed)
            return claimed

    @staticmethod
    def _pipelined_claim(conn: Conn, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The lock and the claim (which notifies) in one pipeline on an autocommit
        connection: the two statements before its Sync are one implicit transaction, which
        the Sync commits (or, after an error, rolls back), so no BEGIN, COMMIT or ROLLBACK
        is sent. The lock is taken before the claim's statement starts, and so before its
        snapshot: it sees every claim committed before it."""
        with conn.pipeline():
            conn.execute(CLAIM_LOCK)
            cursor = conn.cursor()
            cursor.execute(CLAIM_AND_WAKE, params)
        rows: list[dict[str, Any]] = cursor.fetchall()
        return rows

    def listen(self, on_change: Callable[[], None]) -> Callable[[], None]:
        """Call `on_change` (from a thread) after every commit that wrote; returns `stop`."""
        listener = _Listener(self.url, on_change)
        listener.start()
        return listener.stop

    def close(self) -> None:
        with self._lock:
            self._conns.close()


class _Listener(threading.Thread):
    """LISTEN on its own connection; a lost connection is reopened and reported as a change
    (what it may have missed is read by the refresh the change causes)."""

    def __init__(self, url: str, on_change: Callable[[], None]) -> None:
        super().__init__(name="phase-golem-listen", daemon=True)
        self._url = url
        self._on_change = on_change
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                conn = connect(self._url)
            except StoreError:
                self._stopping.wait(1.0)
                continue
            try:
                conn.execute(f"LISTEN {CHANNEL}")
                self._on_change()
                while not self._stopping.is_set():
                    for _ in conn.notifies(timeout=0.5, stop_after=1):
                        self._on_change()
            except psycopg.Error:
                self._stopping.wait(0.2)
            finally:
                with contextlib.suppress(psycopg.Error):
                    conn.close()


# The transactions the keeper refreshes through are ours (a type check for mypy's sake).
_: type[TransactionBase] = PostgresTransaction
