"""The notifications outbox every store keeps (DESIGN §12), over a few row primitives.

`record_notification` is called by `append_event` for every event, inside its
transaction: an event that needs a human commits with its outbox row or not at all.
Delivery (engine/notify.py) reads and marks rows in short transactions of its own.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from phase_golem.domain.notifications import (
    ROUTE_LATER,
    Notification,
    NotificationStatus,
    notification_kind,
)


class OutboxAccess(Protocol):
    def list_notifications(
        self,
        *,
        statuses: Sequence[NotificationStatus] | None = None,
        due_by: str | None = None,
        limit: int | None = None,
    ) -> list[Notification]: ...
    def notification_page(
        self,
        *,
        statuses: Sequence[NotificationStatus] | None = None,
        before_id: int | None = None,
        limit: int,
    ) -> list[Notification]: ...
    def get_notification(self, notification_id: int) -> Notification | None: ...
    def add_notification(self, notification: Notification) -> Notification: ...
    def save_notification(self, notification: Notification) -> None: ...


class OutboxBase(abc.ABC):
    @abc.abstractmethod
    def _insert_notification(self, notification: Notification) -> int: ...
    @abc.abstractmethod
    def _update_notification(self, notification: Notification) -> None: ...
    @abc.abstractmethod
    def _load_notification(self, notification_id: int) -> Notification | None: ...
    @abc.abstractmethod
    def _load_notifications(
        self,
        statuses: Sequence[NotificationStatus] | None,
        due_by: str | None,
        limit: int | None,
    ) -> list[Notification]:
        """Oldest first; `due_by`: only rows whose next attempt is due by then."""

    @abc.abstractmethod
    def _load_notification_page(
        self, statuses: Sequence[NotificationStatus] | None, before_id: int | None, limit: int
    ) -> list[Notification]:
        """Newest first, only ids below `before_id` (a page of the dashboard, in SQL)."""

    @abc.abstractmethod
    def _require_writable(self) -> None: ...

    def record_notification(
        self,
        at: str,
        event_kind: str,
        event_seq: int,
        item_id: str | None,
        run_id: str | None,
        data: Mapping[str, Any],
    ) -> None:
        """The outbox row an event causes, if any (`data` is already redacted)."""
        kind = notification_kind(event_kind, data)
        if kind is None:
            return
        self._insert_notification(
            Notification(
                id=0,
                kind=kind,
                sink=ROUTE_LATER,
                created_at=at,
                item_id=item_id,
                run_id=run_id,
                event_seq=event_seq,
                payload=dict(data),
            )
        )

    def list_notifications(
        self,
        *,
        statuses: Sequence[NotificationStatus] | None = None,
        due_by: str | None = None,
        limit: int | None = None,
    ) -> list[Notification]:
        return self._load_notifications(statuses, due_by, limit)

    def notification_page(
        self,
        *,
        statuses: Sequence[NotificationStatus] | None = None,
        before_id: int | None = None,
        limit: int,
    ) -> list[Notification]:
        return self._load_notification_page(statuses, before_id, limit)

    def get_notification(self, notification_id: int) -> Notification | None:
        return self._load_notification(notification_id)

    def add_notification(self, notification: Notification) -> Notification:
        """A row delivery fans out to one sink (its id is assigned here)."""
        self._require_writable()
        new_id = self._insert_notification(notification)
        return notification.replace(id=new_id)

    def save_notification(self, notification: Notification) -> None:
        self._require_writable()
        if self._load_notification(notification.id) is None:
            from phase_golem.store.errors import NotFoundError

            raise NotFoundError(f"no notification {notification.id}")
        self._update_notification(notification)
