"""The outbox's rows in SQL (shared by the SQL dialects; `?` placeholders)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from phase_golem.domain.notifications import Notification, NotificationStatus

COLUMNS = (
    "id",
    "kind",
    "sink",
    "item_id",
    "run_id",
    "event_seq",
    "payload",
    "status",
    "attempts",
    "next_attempt_at",
    "last_error",
    "created_at",
    "sent_at",
)
SELECT = f"SELECT {', '.join(COLUMNS)} FROM notifications"
INSERT = (
    f"INSERT INTO notifications ({', '.join(COLUMNS[1:])}) "
    f"VALUES ({', '.join('?' for _ in COLUMNS[1:])})"
)
UPDATE = (
    "UPDATE notifications SET status = ?, attempts = ?, next_attempt_at = ?, "
    "last_error = ?, sent_at = ? WHERE id = ?"
)


def insert_params(n: Notification) -> tuple[Any, ...]:
    return (
        n.kind,
        n.sink,
        n.item_id,
        n.run_id,
        n.event_seq,
        json.dumps(dict(n.payload), sort_keys=True, default=str),
        n.status.value,
        n.attempts,
        n.next_attempt_at,
        n.last_error,
        n.created_at,
        n.sent_at,
    )


def update_params(n: Notification) -> tuple[Any, ...]:
    return (n.status.value, n.attempts, n.next_attempt_at, n.last_error, n.sent_at, n.id)


def _with_statuses(statuses: Sequence[NotificationStatus] | None) -> tuple[str, list[Any]]:
    """The select, narrowed to `statuses` when given; the callers add their own terms."""
    if statuses is None:
        return SELECT + " WHERE 1 = 1", []
    marks = ", ".join("?" for _ in statuses)
    return SELECT + f" WHERE status IN ({marks})", [s.value for s in statuses]


def list_query(
    statuses: Sequence[NotificationStatus] | None, due_by: str | None, limit: int | None
) -> tuple[str, list[Any]]:
    sql, params = _with_statuses(statuses)
    if due_by is not None:
        sql += " AND (next_attempt_at IS NULL OR next_attempt_at <= ?)"
        params.append(due_by)
    sql += " ORDER BY id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return sql, params


def page_query(
    statuses: Sequence[NotificationStatus] | None, before_id: int | None, limit: int
) -> tuple[str, list[Any]]:
    """Newest first below `before_id`: the primary key pages it, whatever the table holds."""
    sql, params = _with_statuses(statuses)
    if before_id is not None:
        sql += " AND id < ?"
        params.append(before_id)
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(limit)
    return sql, params


def from_row(row: Mapping[str, Any]) -> Notification:
    try:
        payload = json.loads(row["payload"] or "{}")
    except ValueError:
        payload = {}
    return Notification(
        id=int(row["id"]),
        kind=str(row["kind"]),
        sink=str(row["sink"]),
        item_id=row["item_id"],
        run_id=row["run_id"],
        event_seq=row["event_seq"],
        payload=payload if isinstance(payload, dict) else {},
        status=NotificationStatus(row["status"]),
        attempts=int(row["attempts"]),
        next_attempt_at=row["next_attempt_at"],
        last_error=row["last_error"],
        created_at=str(row["created_at"]),
        sent_at=row["sent_at"],
    )
