"""The row primitives of `TransactionBase` in SQL, shared by the SQLite and PostgreSQL stores.

Statements are written once with `?` placeholders and in the SQL both databases speak
(`ON CONFLICT … DO UPDATE`, `RETURNING`, row comparisons); a dialect supplies how a
statement is run and the few queries that differ (`_queued_runs_due`, the run totals).
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from phase_golem.domain.events import EventKind, LedgerEvent, Schedule
from phase_golem.domain.items import Item
from phase_golem.domain.listing import EventPage, ItemCounts, RunPage, RunTotal
from phase_golem.domain.notifications import Notification, NotificationStatus
from phase_golem.domain.receipts import Receipt
from phase_golem.domain.runs import RUN_FIELDS, Run, RunStatus
from phase_golem.store import sql_notifications, sql_pages
from phase_golem.store.base import CHANGE_COUNTER, TransactionBase
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
from phase_golem.store.sql_state import SqlStateRows

BUMP_COUNTER = (
    "INSERT INTO id_counters (name, high_water) VALUES (?, 1) ON CONFLICT (name) "
    "DO UPDATE SET high_water = id_counters.high_water + 1 RETURNING high_water"
)
STORE_COUNTER = (
    "INSERT INTO id_counters (name, high_water) VALUES (?, ?) "
    "ON CONFLICT (name) DO UPDATE SET high_water = excluded.high_water"
)
INSERT_EVENT = (
    "INSERT INTO ledger (at, kind, item_id, run_id, data) VALUES (?, ?, ?, ?, ?) RETURNING seq"
)


class SqlTransaction(SqlStateRows, TransactionBase):
    """Everything but running a statement, which each database does its own way."""

    RUN_TOTALS = sql_pages.RUN_TOTALS

    @abc.abstractmethod
    def _one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None: ...
    @abc.abstractmethod
    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...
    @abc.abstractmethod
    def _exec(self, sql: str, params: Sequence[Any] = ()) -> None: ...
    @abc.abstractmethod
    def _tuples(self, sql: str) -> list[tuple[Any, ...]]:
        """Plain value rows (the one full decode, at open, skips building dicts)."""

    @abc.abstractmethod
    def _iter(self, sql: str) -> Iterator[dict[str, Any]]: ...

    def _load_item(self, item_id: str) -> Item | None:
        row = self._one("SELECT * FROM items WHERE id = ?", (item_id,))
        return item_from_row(row) if row else None

    def _load_items(self, include_archived: bool) -> list[Item]:
        sql = f"SELECT {', '.join(ITEM_ROW_ORDER)} FROM items"
        sql += ("" if include_archived else " WHERE archived = 0") + " ORDER BY created, id"
        return items_from_value_rows(self._tuples(sql))

    def _insert_item(self, item: Item, change_seq: int) -> None:
        row = item_to_row(item)
        row["change_seq"] = change_seq
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self._exec(f"INSERT INTO items ({columns}) VALUES ({marks})", list(row.values()))

    def _update_item(self, item: Item, change_seq: int) -> None:
        row = item_to_row(item)
        row["change_seq"] = change_seq
        assignments = ", ".join(f"{name} = ?" for name in row if name != "id")
        values = [v for k, v in row.items() if k != "id"] + [item.id]
        self._exec(f"UPDATE items SET {assignments} WHERE id = ?", values)

    def _bump_change_counter(self) -> int:
        row = self._one(BUMP_COUNTER, (CHANGE_COUNTER,))
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
        self._exec(STORE_COUNTER, (name, value))

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
        self._exec(
            f"INSERT INTO runs ({', '.join(RUN_FIELDS)}, change_seq) VALUES ({marks}, ?)",
            [*(row[name] for name in RUN_FIELDS), change_seq],
        )

    def _update_run(self, run: Run, change_seq: int) -> None:
        row = run_to_row(run)
        names = [n for n in RUN_FIELDS if n != "id"]
        assignments = ", ".join(f"{name} = ?" for name in names)
        self._exec(
            f"UPDATE runs SET {assignments}, change_seq = ? WHERE id = ?",
            [*(row[n] for n in names), change_seq, run.id],
        )

    def _insert_event(
        self,
        at: str,
        kind: EventKind,
        item_id: str | None,
        run_id: str | None,
        data: Mapping[str, Any],
    ) -> int:
        row = self._one(INSERT_EVENT, (at, kind.value, item_id, run_id, event_data_to_column(data)))
        assert row is not None
        return int(row["seq"])

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
        self._exec(
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
        self._exec(
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
        self._exec(
            f"INSERT INTO schedules ({names}) VALUES ({marks}) "
            f"ON CONFLICT (source) DO UPDATE SET {updates}",
            [getattr(schedule, n) for n in SCHEDULE_COLUMNS],
        )

    def _delete_schedule(self, source: str) -> None:
        self._exec("DELETE FROM schedules WHERE source = ?", (source,))

    def _load_item_by_external(self, source: str, external_id: str) -> Item | None:
        row = self._one(
            "SELECT * FROM items WHERE source = ? AND external_id = ?", (source, external_id)
        )
        return item_from_row(row) if row else None

    def _load_meta(self, key: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return str(row["value"]) if row else None

    def _store_meta(self, key: str, value: str) -> None:
        self._exec(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    # -- the notifications outbox (store/outbox.py)
    def _insert_notification(self, notification: Notification) -> int:
        params = sql_notifications.insert_params(notification)
        row = self._one(sql_notifications.INSERT + " RETURNING id", params)
        assert row is not None
        return int(row["id"])

    def _update_notification(self, notification: Notification) -> None:
        self._exec(sql_notifications.UPDATE, sql_notifications.update_params(notification))

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

    def _load_notification_page(
        self, statuses: Sequence[NotificationStatus] | None, before_id: int | None, limit: int
    ) -> list[Notification]:
        sql, params = sql_notifications.page_query(statuses, before_id, limit)
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
            for r in self._all(self.RUN_TOTALS)
        ]

    def _load_section(self, section: str, include_archived: bool, limit: int | None) -> list[Item]:
        query = sql_pages.section_query(section, include_archived, limit)
        return [item_from_row(r) for r in self._all(*query)] if query else []

    def _iter_status_order(self, include_archived: bool) -> Iterator[Item]:
        for row in self._iter(sql_pages.status_order_query(include_archived)):
            yield item_from_row(row)

    def _load_run_page(self, page: RunPage) -> list[Run]:
        sql, params, oldest_first = sql_pages.run_page_query(page)
        runs = [run_from_row(r) for r in self._all(sql, params)]
        return runs[::-1] if oldest_first else runs

    def _load_event_page(self, page: EventPage) -> list[LedgerEvent]:
        sql, params, newest_first = sql_pages.event_page_query(page)
        events = [event_from_row(r) for r in self._all(sql, params)]
        return events[::-1] if newest_first else events
