"""The notifications outbox, on every store: written with its event or not at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from phase_golem.domain.events import EventKind
from phase_golem.domain.items import ItemStatus, block, new_item
from phase_golem.domain.notifications import ROUTE_LATER, NotificationStatus
from phase_golem.store import Store
from phase_golem.store.memory import MemoryStore
from phase_golem.store.sqlite import SqliteStore


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened: Store
    if request.param == "postgres":
        from phase_golem.store.postgres import PostgresStore

        opened = PostgresStore(request.getfixturevalue("pg_url"))
    else:
        opened = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "s.db")
    yield opened
    opened.close()


def test_an_event_that_needs_a_human_commits_with_its_outbox_row(store: Store) -> None:
    with store.transaction() as tx:
        tx.create_item(new_item("WRK-001", "Ship it", tx.now))
        seq = tx.append_event(
            EventKind.APPROVAL_REQUESTED,
            item_id="WRK-001",
            data={"phase": "deploy", "token": "sk-ant-api03-abcdefghijklmnopqrstuvwx"},
        )
    with store.reader() as tx:
        rows = tx.list_notifications()
    assert [(n.kind, n.sink, n.event_seq, n.item_id) for n in rows] == [
        ("approval.requested", ROUTE_LATER, seq, "WRK-001")
    ]
    assert rows[0].status is NotificationStatus.PENDING
    assert "sk-ant-api03" not in str(rows[0].payload)


def test_a_rolled_back_event_leaves_no_notification(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.append_event(EventKind.SCHEDULER_HALTED, data={"halt_reason": "all_done"})
        raise RuntimeError("power cut")
    with store.reader() as tx:
        assert tx.list_notifications() == []
        assert tx.events() == []


def test_blocking_an_item_notifies_but_ordinary_events_do_not(store: Store) -> None:
    with store.transaction() as tx:
        item = new_item("WRK-001", "Stuck", tx.now)
        tx.create_item(item)
        tx.append_event(EventKind.RUN_QUEUED, item_id=item.id)
        tx.save_item(block(item, "no idea", tx.now), EventKind.ITEM_TRANSITION)
    with store.reader() as tx:
        assert [n.kind for n in tx.list_notifications()] == ["item.blocked"]
        assert tx.require_item("WRK-001").status is ItemStatus.BLOCKED


def test_rows_are_marked_and_listed_by_status_and_due_time(store: Store) -> None:
    with store.transaction() as tx:
        for _ in range(3):
            tx.append_event(EventKind.SCHEDULER_HALTED, data={})
    with store.transaction() as tx:
        first, second, third = tx.list_notifications()
        tx.save_notification(first.replace(status=NotificationStatus.SENT, sent_at="x"))
        tx.save_notification(second.replace(next_attempt_at="2999-01-01T00:00:00+00:00"))
        fanned = tx.add_notification(third.replace(id=0, sink="team"))
    assert fanned.id > third.id
    with store.reader() as tx:
        pending = tx.list_notifications(
            statuses=[NotificationStatus.PENDING], due_by="2030-01-01T00:00:00+00:00"
        )
        assert [n.id for n in pending] == [third.id, fanned.id]
        assert tx.get_notification(first.id).status is NotificationStatus.SENT  # type: ignore[union-attr]
        assert len(tx.list_notifications(limit=2)) == 2


def test_a_page_of_notifications_is_newest_first_below_a_cursor(store: Store) -> None:
    with store.transaction() as tx:
        for _ in range(5):
            tx.append_event(EventKind.SCHEDULER_HALTED, data={})
    with store.transaction() as tx:
        rows = tx.list_notifications()
        tx.save_notification(rows[1].replace(status=NotificationStatus.FAILED))
    ids = [n.id for n in rows]
    with store.reader() as tx:
        first = tx.notification_page(limit=2)
        assert [n.id for n in first] == ids[:-3:-1]
        older = tx.notification_page(before_id=first[-1].id, limit=10)
        assert [n.id for n in older] == ids[-3::-1]
        failed = tx.notification_page(statuses=[NotificationStatus.FAILED], limit=10)
        assert [n.id for n in failed] == [ids[1]]
        assert tx.notification_page(before_id=ids[0], limit=10) == []
