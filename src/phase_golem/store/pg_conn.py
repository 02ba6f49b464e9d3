"""The PostgreSQL store's connections: a pool, and riding through a short outage.

A restarted server leaves every pooled connection dead; a server that is down refuses new
ones. Either is found by the first round trip of a transaction (nothing of it has happened
yet) or by the pool, and then `Connections.recover` waits for the server to answer, with
backoff, for at most `OUTAGE_SECONDS`, and replaces the whole pool (its other idle
connections are as dead as the one that failed). The wait is said once on stderr, and so is
the server's return; an outage longer than that is a StoreFault in one line.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from phase_golem.faults import StoreFault, StoreUnavailable
from phase_golem.store.errors import StoreError

log = logging.getLogger("phase_golem.store.postgres")
# psycopg's own warnings (one per failed reconnection attempt, per discarded connection, per
# broken pipeline) would repeat what our one line says, many times over.
logging.getLogger("psycopg").setLevel(logging.ERROR)

CONNECT_TIMEOUT_SECONDS = 10
POOL_SIZE = 4
OUTAGE_SECONDS = 30.0  # how long a worker waits for its server before it stops
FIRST_DELAY_SECONDS = 0.1
MAX_DELAY_SECONDS = 2.0
WAITING = "waiting for PostgreSQL"  # the words the wait is said with (a test looks for them)

Conn = psycopg.Connection[dict[str, Any]]


def describe_url(url: str) -> str:
    """Where a URL points, without its password: `host:port/dbname`."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "an unparsable PostgreSQL url"
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"{host}:{port}/{info.get('dbname') or info.get('user') or ''}"


def first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())[:300]


def connect(url: str, **kwargs: Any) -> Conn:
    """One connection, or a StoreFault naming where and why not (one line)."""
    try:
        conn: Conn = psycopg.connect(
            url,
            autocommit=True,
            row_factory=dict_row,
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            **kwargs,
        )
    except psycopg.ProgrammingError as exc:
        raise StoreError(f"bad PostgreSQL storage url: {first_line(exc)}") from None
    except psycopg.Error as exc:
        raise StoreFault(
            f"cannot connect to PostgreSQL at {describe_url(url)}: {first_line(exc)}"
        ) from None
    return conn


def lost(conn: Conn, exc: BaseException) -> bool:
    """Whether `exc` means the connection itself is gone (not a statement that failed)."""
    return isinstance(exc, psycopg.OperationalError) and conn.closed


class Connections:
    """The pool, replaced whole after an outage; each connection goes back to its own."""

    def __init__(self, url: str, where: str) -> None:
        self._url = url
        self._where = where
        self._pool = self._new_pool()
        self._lent: dict[int, ConnectionPool[Conn]] = {}
        self._down_since: float | None = None  # when the current outage began (monotonic)

    def _new_pool(self) -> ConnectionPool[Conn]:
        return ConnectionPool(
            self._url,
            min_size=1,
            max_size=POOL_SIZE,
            kwargs={
                "autocommit": True,
                "row_factory": dict_row,
                "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            },
            timeout=CONNECT_TIMEOUT_SECONDS,
            reconnect_timeout=OUTAGE_SECONDS,
            open=True,
            name="phase-golem",
        )

    def get(self) -> Conn:
        """A pooled connection; when the pool has none to give, `recover`'s."""
        try:
            conn = self._pool.getconn()
        except PoolTimeout as exc:
            return self.recover(exc)
        self._lent[id(conn)] = self._pool
        return conn

    def put(self, conn: Conn) -> None:
        """Back to the pool it came from (a replaced pool closes it; a broken one is dropped)."""
        self._lent.pop(id(conn), self._pool).putconn(conn)

    def recover(self, cause: BaseException) -> Conn:
        """The server answers again (waited for with backoff, bounded), and a fresh pool's
        connection; or a StoreFault in one line after `OUTAGE_SECONDS`."""
        self._await_server(cause)
        old, self._pool = self._pool, self._new_pool()
        old.close(timeout=0)
        try:
            conn = self._pool.getconn()
        except PoolTimeout as exc:
            raise self.unavailable(exc) from None
        self._lent[id(conn)] = self._pool
        return conn

    def _await_server(self, cause: BaseException) -> None:
        """One outage has one deadline, whoever waits: a caller after the first one that
        gave up gives up after one more try, instead of waiting as long again."""
        said = self._down_since is not None  # an earlier caller said it waits
        if self._down_since is None:
            self._down_since = time.monotonic()
        deadline = self._down_since + OUTAGE_SECONDS
        delay = FIRST_DELAY_SECONDS
        while True:
            try:
                connect(self._url).close()
            except StoreFault as exc:
                if time.monotonic() + delay > deadline:
                    raise StoreFault(
                        f"{self._where}: PostgreSQL did not answer for {OUTAGE_SECONDS:.0f} s: "
                        f"{first_line(exc)}"
                    ) from None
                if not said:
                    log.warning(
                        "%s: lost the connection (%s); %s for up to %.0f s",
                        self._where, first_line(cause), WAITING, OUTAGE_SECONDS,
                    )  # fmt: skip
                    said = True
                time.sleep(delay)
                delay = min(delay * 2, MAX_DELAY_SECONDS)
                continue
            if said:
                log.warning("%s: PostgreSQL answers again; carrying on", self._where)
            self._down_since = None
            return

    def unavailable(self, exc: BaseException) -> StoreUnavailable:
        return StoreUnavailable(f"{self._where}: lost the PostgreSQL connection: {first_line(exc)}")

    def close(self) -> None:
        self._pool.close()
