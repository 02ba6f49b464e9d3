"""Notifications (DESIGN §12): which ledger events need a human, and the outbox's rules.

Pure: no I/O and no clock. The store applies `notification_kind` to every event it
appends, inside the same transaction, so an event that needs a human can never be
committed without its outbox row. A row is written once per event with the sink
`ROUTE_LATER`; delivery fans it out to the configured sinks (with the config of the
moment), so no store write depends on the config being loaded.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from phase_golem.domain.items import format_timestamp

ROUTE_LATER = "*"  # the sink of a row not yet fanned out to the configured sinks
TIMEOUT_SECONDS = 10.0
BACKOFF_BASE_SECONDS = 10.0
BACKOFF_MAX_SECONDS = 3600.0
MAX_ATTEMPTS = 10

# Ledger event kinds that are a notification of the same name.
DIRECT_KINDS = frozenset(
    {
        "approval.requested",
        "run.indeterminate",
        "agent.paused",
        "source.failing",
        "budget.exceeded",
        "scheduler.halted",
        "source.write_back",
    }
)
NOTIFICATION_KINDS = frozenset({*DIRECT_KINDS, "item.blocked", "item.done"})


@dataclass(frozen=True, slots=True)
class NotifySink:
    """One `[[notify]]` table: where notifications of the kinds in `on` go."""

    name: str
    webhook: str | None = None  # the URL itself (a secret: redacted wherever shown)
    webhook_env: str | None = None  # or the environment variable that holds it
    command: str | None = None  # a shell command: JSON on stdin, text in the environment
    on: tuple[str, ...] = ("*",)
    timeout_seconds: float = TIMEOUT_SECONDS
    max_attempts: int = MAX_ATTEMPTS

    @property
    def is_webhook(self) -> bool:
        return self.command is None


class NotificationStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    ROUTED = "routed"  # fanned out into one row per matching sink (or none matched)


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    kind: str
    sink: str
    created_at: str
    item_id: str | None = None
    run_id: str | None = None
    event_seq: int | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)
    status: NotificationStatus = NotificationStatus.PENDING
    attempts: int = 0
    next_attempt_at: str | None = None
    last_error: str | None = None
    sent_at: str | None = None

    def replace(self, **changes: Any) -> Notification:
        return dataclasses.replace(self, **changes)

    @property
    def idempotency_key(self) -> str:
        """Stable across crashes and retries: a receiver drops the repeats by it."""
        return f"phase-golem-notification-{self.id}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "sink": self.sink,
            "status": self.status.value,
            "item_id": self.item_id,
            "run_id": self.run_id,
            "event_seq": self.event_seq,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at,
            "last_error": self.last_error,
            "created_at": self.created_at,
            "sent_at": self.sent_at,
            "payload": dict(self.payload),
        }


def notification_kind(event_kind: str, data: Mapping[str, Any]) -> str | None:
    """The notification an event causes, if any (a specific kind wins over item.blocked)."""
    if event_kind in DIRECT_KINDS:
        return event_kind
    if event_kind.startswith("item.") and data.get("to") == "blocked":
        return "item.blocked"
    if event_kind.startswith("item.") and data.get("to") == "done":
        return "item.done"
    return None


def wanted_by(on: Collection[str], kind: str) -> bool:
    return "*" in on or kind in on


def backoff_seconds(attempts: int) -> float:
    """10 s * 2^(n-1) after the n-th failed attempt, at most an hour."""
    exponent = max(attempts - 1, 0)
    if exponent > 20:
        return BACKOFF_MAX_SECONDS
    return float(min(BACKOFF_BASE_SECONDS * 2**exponent, BACKOFF_MAX_SECONDS))


def after_failure(
    notification: Notification, error: str, now: datetime, *, max_attempts: int = MAX_ATTEMPTS
) -> Notification:
    """One more failed attempt: back off durably, or `failed` once the limit is reached."""
    attempts = notification.attempts + 1
    if attempts >= max_attempts:
        return notification.replace(
            attempts=attempts,
            status=NotificationStatus.FAILED,
            last_error=error,
            next_attempt_at=None,
        )
    due = now + timedelta(seconds=backoff_seconds(attempts))
    return notification.replace(
        attempts=attempts,
        last_error=error,
        next_attempt_at=format_timestamp(due),
    )


def after_success(notification: Notification, now: datetime) -> Notification:
    return notification.replace(
        attempts=notification.attempts + 1,
        status=NotificationStatus.SENT,
        sent_at=format_timestamp(now),
        next_attempt_at=None,
        last_error=None,
    )


def for_retry(notification: Notification) -> Notification:
    """`notifications retry ID`: due now, with a fresh count of attempts."""
    return notification.replace(status=NotificationStatus.PENDING, attempts=0, next_attempt_at=None)


def text_of(notification: Notification) -> str:
    """The one line a human reads (Slack's `text`, the command's environment variable)."""
    payload = notification.payload
    subject = notification.item_id or "phase-golem"
    detail = payload.get("summary") or payload.get("reason") or payload.get("title") or ""
    phase = payload.get("phase")
    parts = [f"[phase-golem] {notification.kind}: {subject}"]
    if phase:
        parts.append(f"({phase})")
    line = " ".join(parts)
    return f"{line} - {detail}" if detail else line


def message_of(notification: Notification, public_url: str | None = None) -> dict[str, Any]:
    """What a sink receives: Slack-compatible `text` plus our fields."""
    body: dict[str, Any] = {
        "text": text_of(notification),
        "id": notification.id,
        "kind": notification.kind,
        "item_id": notification.item_id,
        "run_id": notification.run_id,
        "created_at": notification.created_at,
        "idempotency_key": notification.idempotency_key,
        "data": dict(notification.payload),
    }
    if public_url and notification.item_id:
        body["url"] = f"{public_url.rstrip('/')}/items/{notification.item_id}"
    return body
