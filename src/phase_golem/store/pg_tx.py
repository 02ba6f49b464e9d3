"""The PostgreSQL transaction: the shared SQL of sql_tx.py, run through psycopg 3.

Statements keep their `?` placeholders in sql_tx.py; here they become `%s` once each
(cached). The claim is one statement: a `FOR UPDATE SKIP LOCKED` pick feeding the
update, the change stamp and the ledger rows, so claiming costs one round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row

from phase_golem.domain.events import EventKind
from phase_golem.domain.items import format_timestamp
from phase_golem.domain.notifications import notification_kind
from phase_golem.domain.redaction import redact
from phase_golem.domain.runs import Run, RunStatus, Step
from phase_golem.store import sql_pages
from phase_golem.store.base import CHANGE_COUNTER, TransactionBase
from phase_golem.store.codec import event_data_to_column, run_from_row
from phase_golem.store.snapshot import BacklogSnapshot
from phase_golem.store.sql_tx import SqlTransaction

# Timestamps are RFC 3339 text (as in SQLite); PostgreSQL reads them as timestamptz.
RUN_TOTALS = sql_pages.RUN_TOTALS.replace(
    "(julianday(ended_at) - julianday(started_at)) * 86400.0",
    "extract(epoch FROM (ended_at::timestamptz - started_at::timestamptz))",
)
assert RUN_TOTALS != sql_pages.RUN_TOTALS, "the run totals' seconds expression changed"

_DUE = (
    "SELECT id FROM runs WHERE status = 'active' AND step = 'queued' "
    "AND (not_before IS NULL OR not_before <= %(now)s) "
    "AND (%(ids)s::text[] IS NULL OR item_id = ANY(%(ids)s::text[])) "
    "AND NOT EXISTS (SELECT 1 FROM meta WHERE key = %(unless)s AND value <> '') "
    # Destructive exclusivity across workers (base.py claim_runs), under the write lock:
    # nothing beside a live exclusive run (the partial index runs_live_exclusive), and a
    # claim alone only when no run is live at all.
    "AND NOT EXISTS (SELECT 1 FROM runs AS live WHERE live.status = 'active' "
    "AND live.exclusive = 1 AND live.step <> 'queued') "
    "AND (NOT %(alone)s::boolean OR NOT EXISTS (SELECT 1 FROM runs AS live "
    "WHERE live.status = 'active' AND live.step <> 'queued')) "
    "ORDER BY queued_at, id LIMIT %(limit)s"
)
# One statement: pick (skipping rows another worker holds), stamp, update, log. The stamp
# is taken only when a run was picked, so an idle claim changes nothing anyone watches.
CLAIM = f"""
WITH due AS ({_DUE} FOR UPDATE SKIP LOCKED),
stamp AS (
    UPDATE id_counters SET high_water = high_water + 1
    WHERE name = '{CHANGE_COUNTER}' AND %(stamp)s::bigint IS NULL AND EXISTS (SELECT 1 FROM due)
    RETURNING high_water
),
claimed AS (
    UPDATE runs SET step = 'claimed', worker_id = %(worker)s, lease_until = %(lease)s,
        exclusive = %(alone)s::int,
        change_seq = coalesce(%(stamp)s::bigint, (SELECT high_water FROM stamp))
    FROM due WHERE runs.id = due.id
    RETURNING runs.*
),
logged AS (
    INSERT INTO ledger (at, kind, item_id, run_id, data)
    SELECT %(at)s, %(kind)s, item_id, id, %(data)s FROM claimed ORDER BY queued_at, id
    RETURNING run_id
)
SELECT claimed.* FROM claimed JOIN logged ON logged.run_id = claimed.id
ORDER BY claimed.queued_at, claimed.id
"""
CHANNEL = "phase_golem_changes"
# The store's claim of its own (PostgresStore.claim_runs) also wakes the listeners, from the
# same statement and only when it claimed something: `woke` has one row (one pg_notify) when
# a run was claimed and none otherwise, and the NOTIFY it queues is sent on commit.
CLAIM_AND_WAKE = CLAIM.replace(
    "\nSELECT claimed.* FROM claimed JOIN logged ON logged.run_id = claimed.id\n",
    f""",
woke AS (SELECT pg_notify('{CHANNEL}', '') FROM (SELECT 1 FROM claimed LIMIT 1) AS one)
SELECT claimed.* FROM claimed JOIN logged ON logged.run_id = claimed.id CROSS JOIN woke
""",
)
assert CLAIM_AND_WAKE != CLAIM, "the claim's last SELECT changed"


def claim_params(
    worker_id: str,
    limit: int,
    lease_until: datetime,
    item_ids: Collection[str] | None,
    stamp: str,
    unless: str | None = None,
    alone: bool = False,
) -> dict[str, Any] | None:
    """CLAIM's parameters; None when a claim would notify someone (then the base rules run,
    which record the outbox row the one statement does not)."""
    data = redact(
        {"step": Step.CLAIMED.value, "status": RunStatus.ACTIVE.value, "worker_id": worker_id}
    )
    if notification_kind(EventKind.RUN_CLAIMED.value, data) is not None:
        return None
    return {
        "unless": unless,
        "alone": alone,
        "now": stamp,
        "limit": 1 if alone else limit,
        "ids": None if item_ids is None else sorted(item_ids),
        "stamp": None,
        "worker": worker_id,
        "lease": format_timestamp(lease_until),
        "at": stamp,
        "kind": EventKind.RUN_CLAIMED.value,
        "data": event_data_to_column(data),
    }


@lru_cache(maxsize=512)
def placeholders(sql: str) -> str:
    """sql_tx.py's `?` placeholders as psycopg's `%s` (our SQL holds no other `?` or `%`)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresTransaction(SqlTransaction):
    RUN_TOTALS = RUN_TOTALS

    def __init__(
        self,
        conn: psycopg.Connection[dict[str, Any]],
        now: datetime,
        *,
        writable: bool,
        snapshots: Callable[[TransactionBase], BacklogSnapshot] | None = None,
        keep_base: bool = False,
        begin: tuple[str, ...] = (),
        reopen: Callable[[psycopg.Connection[dict[str, Any]], BaseException], Any] | None = None,
    ) -> None:
        super().__init__(now, writable=writable, snapshots=snapshots, keep_base=keep_base)
        self.conn = conn
        self._begin = begin
        self._reopen = reopen
        self.wrote = False  # whether anything was written: only then is NOTIFY sent

    @property
    def begun(self) -> bool:
        return not self._begin

    def _execute(
        self, sql: str, params: Any = None, row_factory: Any = None
    ) -> psycopg.Cursor[Any]:
        """Run a statement; the first one of the transaction is pipelined behind its BEGIN
        (and lock), so starting a transaction costs no round trip of its own."""
        if not self._begin:
            cursor = self.conn.cursor(row_factory=row_factory or dict_row)
            return cursor.execute(sql, params)
        for attempt in (1, 2, 3):
            try:
                with self.conn.pipeline():
                    for statement in self._begin:
                        self.conn.execute(statement)
                    cursor = self.conn.cursor(row_factory=row_factory or dict_row)
                    cursor.execute(sql, params)
                self._begin = ()
                return cursor
            except psycopg.OperationalError as exc:
                # Its connection is dead (a restarted server), and so nothing of it has
                # happened: again on a new one, once the server answers (pg_conn.py).
                if attempt == 3 or self._reopen is None or not self.conn.closed:
                    raise
                self.conn = self._reopen(self.conn, exc)
        raise AssertionError("unreachable")

    def _run(self, sql: str, params: Sequence[Any]) -> psycopg.Cursor[dict[str, Any]]:
        if not sql.startswith("SELECT"):
            self.wrote = True
        return self._execute(placeholders(sql), params)

    def _one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        return self._run(sql, params).fetchone()

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self._run(sql, params).fetchall()

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._run(sql, params)

    def _tuples(self, sql: str) -> list[tuple[Any, ...]]:
        return self._execute(placeholders(sql), row_factory=tuple_row).fetchall()

    def _iter(self, sql: str) -> Iterator[dict[str, Any]]:
        yield from self._execute(placeholders(sql))

    def _queued_runs_due(
        self, now_stamp: str, limit: int, item_ids: Collection[str] | None
    ) -> list[Run]:
        params = {
            "unless": None,
            "now": now_stamp,
            "limit": limit,
            "ids": None if item_ids is None else sorted(item_ids),
        }
        rows = self._execute(f"SELECT * FROM runs WHERE id IN ({_DUE})", params)
        runs = [run_from_row(r) for r in rows]
        return sorted(runs, key=lambda r: (r.queued_at, r.id))

    def claim_runs(
        self,
        worker_id: str,
        limit: int,
        lease_until: datetime,
        item_ids: Collection[str] | None = None,
        *,
        alone: bool = False,
    ) -> list[Run]:
        """The base rules in one statement (same rows, same ledger events as SQLite)."""
        self._require_writable()
        if limit <= 0:
            return []
        params = claim_params(worker_id, limit, lease_until, item_ids, self.stamp, alone=alone)
        if params is None:
            return super().claim_runs(worker_id, limit, lease_until, item_ids, alone=alone)
        if self.change_stamp is None and self._keep_base:
            self._base_snapshot()  # what it saw before it wrote (see TransactionBase._stamp)
        self.wrote = True
        params["stamp"] = self.change_stamp
        rows = self._execute(CLAIM, params).fetchall()
        claimed = [run_from_row(row) for row in rows]
        if claimed and self.change_stamp is None:
            self.change_stamp = int(rows[0]["change_seq"])
        for run in claimed:
            self.touched_runs[run.id] = run
        return claimed
