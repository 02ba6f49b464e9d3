"""The store's part of intake sources (DESIGN §11), against every store."""

from __future__ import annotations

import json
import shlex
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from phase_golem.config import default_pipelines
from phase_golem.domain.events import EventKind, Schedule
from phase_golem.domain.items import Item, archive, new_item
from phase_golem.domain.pipelines import Settings
from phase_golem.domain.sources import SourceConfig
from phase_golem.engine.sources import SourceBusy, SourceRun, run_source, sync
from phase_golem.store import ConflictError, Store, StoreError
from tests.test_store_conformance import STORE_KINDS, FakeClock, open_kind
from tests.waiting import wait_for_file


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = open_kind(request, request.param, tmp_path, FakeClock())
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


# ---- a source run through the engine, against every store ------------------------------
TICKETS = """\
import json, pathlib, sys, time
here = pathlib.Path(__file__).parent
lines = (here / "answer.jsonl").read_text()
(here / "started").write_text("yes")
while (here / "hold").exists() and not (here / "release").exists():
    time.sleep(0.01)
sys.stdout.write(lines)
"""


@pytest.fixture
def second(request: pytest.FixtureRequest, store: Store, tmp_path: Path) -> Iterator[Store]:
    """Another handle on the same state (a second worker); memory has only the one."""
    kind = request.node.callspec.params["store"]
    if kind == "memory":
        yield store
        return
    opened = open_kind(request, kind, tmp_path, FakeClock())
    yield opened
    opened.close()


def tickets_source(tmp_path: Path, *lines: dict[str, object]) -> SourceConfig:
    (tmp_path / "tickets.py").write_text(TICKETS, encoding="utf-8")
    answer = "".join(json.dumps(line) + "\n" for line in lines)
    (tmp_path / "answer.jsonl").write_text(answer, encoding="utf-8")
    command = f"{shlex.quote(sys.executable)} {shlex.quote(str(tmp_path / 'tickets.py'))}"
    return SourceConfig("tickets", command=command, every_seconds=3600)


def settings_for(source: SourceConfig) -> Settings:
    return Settings(pipelines=default_pipelines(), sources=(source,))


def by_external_id(store: Store) -> dict[str, Item]:
    with store.reader() as tx:
        items = tx.list_items(include_archived=True)
    return {i.external_id: i for i in items if i.external_id is not None}


def fired(store: Store) -> list[dict[str, Any]]:
    with store.reader() as tx:
        return [dict(e.data) for e in tx.events() if e.kind is EventKind.SOURCE_FIRED]


def test_a_source_run_creates_follows_and_closes_in_one_commit(
    store: Store, tmp_path: Path
) -> None:
    source = tickets_source(
        tmp_path, {"external_id": "T-1", "title": "Fix login"}, {"external_id": "T-2", "title": "B"}
    )
    first = run_source(tmp_path, store, settings_for(source), source, manual=True)
    assert first is not None and first.counts is not None and first.counts.created == 2
    source = tickets_source(
        tmp_path,
        {"external_id": "T-3", "title": "Add export", "url": "https://tickets/T-3"},
        {"external_id": "T-1", "title": "Fix the login page"},
        {"external_id": "T-2", "title": "B", "state": "closed"},
    )
    again = run_source(tmp_path, store, settings_for(source), source, manual=True)
    assert again is not None and again.counts is not None
    assert (again.counts.created, again.counts.updated, again.counts.closed) == (1, 1, 1)
    items = by_external_id(store)
    assert sorted(items) == ["T-1", "T-2", "T-3"]
    assert items["T-1"].title == "Fix the login page"
    assert items["T-2"].archived and items["T-2"].closed_reason == "closed at its source"
    assert items["T-3"].origin == "https://tickets/T-3"
    assert [(e["created"], e["updated"], e["closed"]) for e in fired(store)] == [
        (2, 0, 0),
        (1, 1, 1),
    ]
    with store.reader() as tx:
        row = tx.get_schedule("tickets")
    assert row is not None and (row.runs, row.items_created, row.claimed_by) == (2, 3, None)


def test_an_entry_refused_midway_rolls_the_whole_run_back(store: Store, tmp_path: Path) -> None:
    source = tickets_source(
        tmp_path,
        {"external_id": "T-1", "title": "Fine"},
        {"external_id": "T-2", "title": "Not fine", "pipeline": "no-such-pipeline"},
    )
    outcome = run_source(tmp_path, store, settings_for(source), source, manual=True)
    assert outcome is not None and outcome.bad_output
    assert outcome.error is not None and "unknown pipeline 'no-such-pipeline'" in outcome.error
    assert by_external_id(store) == {}  # T-1 was created in the run's transaction: gone
    assert fired(store) == []
    with store.reader() as tx:
        row = tx.get_schedule("tickets")
        failed = [e for e in tx.events() if e.kind is EventKind.SOURCE_FAILED]
    assert row is not None and (row.failures, row.runs, row.claimed_by) == (1, 0, None)
    assert row.last_error == outcome.error and len(failed) == 1


def test_a_source_running_on_one_worker_is_not_fired_by_another(
    store: Store, second: Store, tmp_path: Path
) -> None:
    source = tickets_source(tmp_path, {"external_id": "T-1", "title": "Once"})
    settings = settings_for(source)
    sync(store, settings)  # new: due at once
    (tmp_path / "hold").write_text("yes")
    done: list[SourceRun | None] = []
    worker = threading.Thread(
        target=lambda: done.append(run_source(tmp_path, store, settings, source))
    )
    worker.start()
    try:
        wait_for_file(tmp_path / "started")  # the first run holds its claim, mid-fetch
        assert run_source(tmp_path, second, settings, source) is None  # due, but claimed
        with pytest.raises(SourceBusy, match="source 'tickets' is running now"):
            run_source(tmp_path, second, settings, source, manual=True)
    finally:
        (tmp_path / "release").write_text("go")
        worker.join(timeout=300)
    (outcome,) = done
    assert outcome is not None and outcome.counts is not None and outcome.counts.created == 1
    assert run_source(tmp_path, second, settings, source) is None  # not due again for an hour
    assert list(by_external_id(second)) == ["T-1"] and len(fired(second)) == 1
