"""The store's part of intake sources (DESIGN §11), against every store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from phase_golem.domain.events import EventKind, Schedule
from phase_golem.domain.items import archive, new_item
from phase_golem.store import ConflictError, Store, StoreError
from tests.test_store_conformance import FACTORIES, FakeClock


@pytest.fixture(params=sorted(FACTORIES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = FACTORIES[request.param](tmp_path, FakeClock())
    yield opened
    opened.close()


def test_a_schedule_row_keeps_the_whole_record(store: Store) -> None:
    row = Schedule(
        "tickets",
        "cron",
        "*/15 * * * * @Europe/Paris",
        next_run_at="2026-11-22T09:15:00Z",
        last_run_at="2026-11-22T09:00:00Z",
        last_error="exit 3: boom",
        failures=2,
        claimed_by="host:42",
        claimed_until="2026-11-22T09:02:00Z",
        runs=7,
        items_created=5,
        items_updated=3,
        items_closed=1,
    )
    with store.transaction() as tx:
        tx.save_schedule(row)
    with store.reader() as tx:
        assert tx.get_schedule("tickets") == row
    released = Schedule("tickets", "cron", row.value, failures=0)
    with store.transaction() as tx:
        tx.save_schedule(released)
    with store.reader() as tx:
        assert tx.get_schedule("tickets") == released


def test_a_removed_source_loses_its_row_with_an_event(store: Store) -> None:
    with store.transaction() as tx:
        tx.save_schedule(Schedule("a", "every", "10"))
        tx.save_schedule(Schedule("b", "every", "20"))
    with store.transaction() as tx:
        tx.delete_schedule("a")
        tx.delete_schedule("never-there")  # nothing to do, nothing recorded
    with store.reader() as tx:
        assert [s.source for s in tx.list_schedules()] == ["b"]
        removed = [
            e for e in tx.events() if e.kind is EventKind.SCHEDULE_UPDATED and e.data.get("removed")
        ]
    assert [e.data["source"] for e in removed] == ["a"]


def test_a_read_only_transaction_cannot_remove_a_row(store: Store) -> None:
    with store.transaction() as tx:
        tx.save_schedule(Schedule("a", "every", "10"))
    with store.reader() as tx, pytest.raises(StoreError):
        tx.delete_schedule("a")


def test_items_are_found_by_source_and_external_id_archived_too(store: Store) -> None:
    with store.transaction() as tx:
        first = new_item(tx.allocate_item_id("WRK"), "One", tx.now, source="gh", external_id="1")
        second = new_item(tx.allocate_item_id("WRK"), "Two", tx.now, source="gh", external_id="2")
        other = new_item(tx.allocate_item_id("WRK"), "Three", tx.now, source="x", external_id="1")
        for item in (first, second, other):
            tx.create_item(item)
        tx.save_item(archive(second, tx.now, "closed at its source"), EventKind.ITEM_ARCHIVED)
    with store.reader() as tx:
        assert tx.item_by_external_id("gh", "1") == first
        found = tx.item_by_external_id("gh", "2")
        assert found is not None and found.archived
        assert tx.item_by_external_id("x", "1") == other
        assert tx.item_by_external_id("gh", "3") is None


def test_source_and_external_id_are_unique_over_archived_items(store: Store) -> None:
    with store.transaction() as tx:
        item = new_item(tx.allocate_item_id("WRK"), "One", tx.now, source="gh", external_id="1")
        tx.create_item(item)
        tx.save_item(archive(item, tx.now, "done"), EventKind.ITEM_ARCHIVED)
    again = None
    with pytest.raises(ConflictError), store.transaction() as tx:
        again = new_item(tx.allocate_item_id("WRK"), "One", tx.now, source="gh", external_id="1")
        tx.create_item(again)
    with store.reader() as tx:
        assert again is not None and tx.get_item(again.id) is None  # nothing committed
