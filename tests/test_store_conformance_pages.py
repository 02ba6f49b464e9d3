"""Conformance of the read commands' pages (store/pages.py), run against every store.

The same `store` fixture as `test_store_conformance.py`: a new store passes these too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phase_golem.domain.errors import DomainError
from phase_golem.domain.events import EventKind, LedgerEvent
from phase_golem.domain.items import ItemStatus, Level, archive, new_item, status_sort_key
from phase_golem.domain.listing import CLOSED, EventPage, RunCursor, RunPage
from phase_golem.domain.runs import ErrorClass, Run, RunStatus, Step
from phase_golem.store import Store
from phase_golem.store.sqlite import SqliteStore
from tests.test_store_conformance import add, make_run, store

__all__ = ["store"]  # the parametrised fixture, used by every test here


def add_item(
    store: Store, status: ItemStatus, impact: Level | None, *, closed: bool = False
) -> str:
    with store.transaction() as tx:
        item = new_item(tx.allocate_item_id("WRK"), "Item", tx.now, impact=impact)
        item = item.replace(status=status)
        if status is ItemStatus.DONE or closed:
            item = archive(item, tx.now, closed_reason="no longer wanted" if closed else None)
        tx.create_item(item)
        return item.id


def test_sections_count_and_list_in_status_order(store: Store) -> None:
    plan = [
        (ItemStatus.NEW, Level.LOW),
        (ItemStatus.NEW, None),
        (ItemStatus.NEW, Level.HIGH),
        (ItemStatus.NEW, Level.HIGH),
        (ItemStatus.READY, Level.MEDIUM),
        (ItemStatus.BLOCKED, None),
        (ItemStatus.IN_PROGRESS, Level.LOW),
        (ItemStatus.DONE, Level.HIGH),
    ]
    ids = [add_item(store, status, impact) for status, impact in plan]
    closed = add_item(store, ItemStatus.NEW, Level.HIGH, closed=True)
    with store.reader() as tx:
        counts = tx.item_counts()
        assert counts.by_section == {"new": 4, "ready": 1, "blocked": 1, "in_progress": 1}
        assert (counts.total, counts.archived) == (7, 2)
        everything = tx.item_counts(include_archived=True)
        assert everything.by_section == {**counts.by_section, "done": 1, CLOSED: 1}
        # Impact high first, then ID; a limit keeps the first rows.
        new = [i.id for i in tx.items_in_section("new")]
        assert new == [ids[2], ids[3], ids[0], ids[1]]
        assert [i.id for i in tx.items_in_section("new", limit=2)] == new[:2]
        assert tx.items_in_section("new", limit=0) == []
        assert [i.id for i in tx.items_in_section("new", include_archived=True)] == new
        assert tx.items_in_section("done") == [] and tx.items_in_section(CLOSED) == []
        assert [i.id for i in tx.items_in_section("done", include_archived=True)] == [ids[7]]
        assert [i.id for i in tx.items_in_section(CLOSED, include_archived=True)] == [closed]
        for include in (False, True):
            streamed = list(tx.items_in_status_order(include_archived=include))
            expected = sorted(tx.list_items(include_archived=include), key=status_sort_key)
            assert streamed == expected
        with pytest.raises(DomainError, match="section"):
            tx.items_in_section("sleeping")
        with pytest.raises(DomainError, match="negative"):
            tx.items_in_section("new", limit=-1)
        with pytest.raises(DomainError, match="negative"):
            tx.run_page(RunPage(limit=-1))


PAGE_ITEMS = 3
PAGE_RUNS = 30


@pytest.fixture
def paged_store(store: Store) -> Store:
    """Runs whose queued times tie and disagree with their IDs' order, spread over items,
    with several statuses; events of every kind and item along the way."""
    ids = [add(store) for _ in range(PAGE_ITEMS)]
    clock = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    statuses = [RunStatus.COMMITTED, RunStatus.FAILED_AGENT, RunStatus.CRASHED]
    for n in range(PAGE_RUNS):
        queued = clock + timedelta(seconds=(n * 7) % 11)  # ties, and out of ID order
        make_run(
            store,
            ids[n % PAGE_ITEMS],
            queued_at=queued.isoformat(timespec="microseconds"),
            step=Step.COMMITTED,
            status=statuses[n % len(statuses)],
        )
        if n % 4 == 0:
            with store.transaction() as tx:
                tx.append_event(EventKind.SCHEDULER_STARTED)
    return store


def _cut(found: list[Any], limit: int | None, from_the_end: bool) -> list[Any]:
    if limit is None:
        return found
    if limit == 0:
        return []
    return found[-limit:] if from_the_end else found[:limit]


optional_limit = st.none() | st.integers(0, PAGE_RUNS + 2)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_run_pages_are_the_listing_filtered_and_cut(
    paged_store: Store, data: st.DataObject
) -> None:
    with paged_store.reader() as tx:
        listing = tx.list_runs()  # newest first: the order every page keeps
        assert listing == sorted(listing, key=RunCursor.of, reverse=True)
        cursors = [RunCursor.of(r) for r in listing]
        page = RunPage(
            item_id=data.draw(st.none() | st.sampled_from([f"WRK-00{n}" for n in (1, 2, 3)])),
            statuses=tuple(data.draw(st.sets(st.sampled_from(list(RunStatus)), max_size=2))),
            limit=data.draw(optional_limit),
            before=data.draw(st.none() | st.sampled_from(cursors)),
            after=data.draw(st.none() | st.sampled_from(cursors)),
            oldest=data.draw(st.booleans()),
        )
        expected = _cut([r for r in listing if page.admits(r)], page.limit, page.oldest)
        assert tx.run_page(page) == expected


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_event_pages_are_the_ledger_filtered_and_cut(
    paged_store: Store, data: st.DataObject
) -> None:
    with paged_store.reader() as tx:
        ledger = tx.events()
        seqs = [e.seq for e in ledger]
        page = EventPage(
            item_id=data.draw(st.none() | st.sampled_from(["WRK-001", "WRK-003", "WRK-404"])),
            after_seq=data.draw(st.none() | st.sampled_from(seqs)),
            before_seq=data.draw(st.none() | st.sampled_from(seqs)),
            limit=data.draw(optional_limit),
            newest=data.draw(st.booleans()),
        )
        matching = [e for e in ledger if page.admits(e.seq, e.item_id)]
        assert tx.event_page(page) == _cut(matching, page.limit, page.newest)


def test_paging_by_cursor_walks_every_row_once(paged_store: Store) -> None:
    with paged_store.reader() as tx:
        listing, ledger = tx.list_runs(), tx.events()
        # `runs --before LAST` page after page, down to the oldest run.
        walked: list[Run] = []
        page = RunPage.around(before=None, after=None, limit=7)
        while batch := tx.run_page(page):
            walked += batch
            page = RunPage.around(before=RunCursor.of(batch[-1]), after=None, limit=7)
        assert walked == listing
        # `runs --after FIRST` page after page, up to the newest (each page newest first).
        upward: list[Run] = []
        page = RunPage.around(before=None, after=RunCursor.of(listing[-1]), limit=4)
        while batch := tx.run_page(page):
            assert page.oldest and batch == sorted(batch, key=RunCursor.of, reverse=True)
            upward = batch + upward
            page = RunPage.around(before=None, after=RunCursor.of(batch[0]), limit=4)
        assert upward == listing[:-1]
        # `log --after SEQ` forward and `log --before SEQ` backward.
        forward: list[LedgerEvent] = []
        after = 0
        while batch_events := tx.event_page(
            EventPage.around(after_seq=after, before_seq=None, limit=5)
        ):
            forward += batch_events
            after = batch_events[-1].seq
        assert forward == ledger
        backward: list[LedgerEvent] = []
        before = None
        while batch_events := tx.event_page(
            EventPage.around(after_seq=None, before_seq=before, limit=5)
        ):
            backward = batch_events + backward
            before = batch_events[0].seq
        assert backward == ledger


def test_sqlite_pages_read_indexes_instead_of_sorting_tables(tmp_path: Path) -> None:
    from phase_golem.store import sql_pages

    store = SqliteStore(tmp_path / "state.db")
    conn = store._conn  # the plan of the very statements the store runs

    def plan(sql: str, params: Sequence[object]) -> str:
        return " / ".join(r["detail"] for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))

    cursor = RunCursor("2026-01-01T00:00:00+00:00", "run-000010")
    for page in (
        RunPage(limit=20),
        RunPage.around(before=cursor, after=None, limit=20),
        RunPage.around(before=None, after=cursor, limit=20),
    ):
        sql, params, _ = sql_pages.run_page_query(page)
        assert "USING INDEX runs_queued" in plan(sql, params)
        assert "TEMP B-TREE" not in plan(sql, params)
    for event_page in (
        EventPage(limit=20, newest=True),
        EventPage.around(after_seq=100, before_seq=None, limit=20),
        EventPage(item_id="WRK-001", limit=20, newest=True),
    ):
        sql, params, _ = sql_pages.event_page_query(event_page)
        assert "TEMP B-TREE" not in plan(sql, params) and "SCAN ledger USING" not in plan(
            sql, params
        )
    section = sql_pages.section_query("new", False, 10)
    assert section is not None
    assert plan(*section) == "SEARCH items USING INDEX items_section (archived=? AND status=?)"
    assert "COVERING INDEX" in plan(sql_pages.ACTIVE_COUNTS, [])
    store.close()


def test_run_totals_count_and_sum_every_run_by_group(store: Store) -> None:
    item = add(store)
    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    plan = [  # (status, error class, agent, cost, tokens in, seconds)
        (RunStatus.COMMITTED, None, "claude", 0.5, 100, 30.0),
        (RunStatus.COMMITTED, None, "claude", 0.25, 50, 10.0),
        (RunStatus.FAILED_AGENT, ErrorClass.TIMEOUT, "claude", 0.125, 7, 5.0),
        (RunStatus.COMMITTED, None, "codex", 1.0, 1, 2.5),
    ]
    for status, error_class, agent, cost, tokens_in, seconds in plan:
        make_run(
            store,
            item,
            status=status,
            step=Step.COMMITTED,
            error_class=error_class,
            agent=agent,
            cost_usd=cost,
            tokens_in=tokens_in,
            started_at=start.isoformat(),
            ended_at=(start + timedelta(seconds=seconds)).isoformat(),
        )
    make_run(store, item, agent="codex")  # queued: never started, no duration
    with store.reader() as tx:
        totals = {(t.status, t.error_class, t.agent, t.step): t for t in tx.run_totals()}
    claude = totals[("committed", None, "claude", "committed")]
    assert (claude.runs, claude.cost_usd, claude.tokens_in) == (2, 0.75, 150)
    assert claude.seconds == pytest.approx(40.0, abs=0.01)
    failed = totals[("failed:agent", "timeout", "claude", "committed")]
    assert (failed.runs, failed.seconds) == (1, pytest.approx(5.0, abs=0.01))
    queued = totals[("active", None, "codex", "queued")]
    assert (queued.runs, queued.seconds, queued.cost_usd) == (1, 0.0, 0.0)
    assert sum(t.runs for t in totals.values()) == 5
