"""The published snapshot stays exact while others write (DESIGN §3 "Snapshots").

After any interleaving of writes from two store objects on one SQLite file (each its own
connection, exactly as two processes see each other) and from a second real process, the
snapshot each one refreshed incrementally equals a fresh full load — and after the first
load nothing decodes the whole backlog again.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phase_golem.domain.events import EventKind
from phase_golem.domain.items import (
    ItemStatus,
    archive,
    block,
    format_timestamp,
    new_item,
    touch,
    transition,
)
from phase_golem.domain.runs import Run, RunKind, RunStatus, finish
from phase_golem.store import Store
from phase_golem.store.sqlite import SqliteStore

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)

ops = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "add",
                "retitle",
                "advance",
                "block",
                "depend",
                "sleep",
                "archive",
                "queue",
                "claim",
                "finish",
                "renew",
                "two_at_once",
                "refresh",
            ]
        ),
        st.sampled_from([0, 1]),  # which store object acts
        st.integers(0, 50),
    ),
    max_size=40,
)


def _live_run(store: Store, item_id: str) -> Run | None:
    with store.reader() as tx:
        live = tx.list_runs(item_id=item_id, statuses=[RunStatus.ACTIVE], limit=1)
    return live[0] if live else None


def apply(store: Store, op: str, pick: int) -> None:
    if op == "refresh":
        store.snapshot()
        return
    with store.transaction() as tx:
        items = tx.list_items()
        if op == "add" or not items:
            wake = format_timestamp(NOW + timedelta(minutes=pick)) if pick % 3 == 0 else None
            deps = (items[pick % len(items)].id,) if items and pick % 2 else ()
            item_id = tx.allocate_item_id("WRK")
            tx.create_item(new_item(item_id, f"i{pick}", tx.now, dependencies=deps, wake_at=wake))
            return
        item = items[pick % len(items)]
        other = items[(pick // 2) % len(items)]
        if op == "retitle":
            tx.save_item(touch(item, tx.now, title=item.title + "!"), EventKind.ITEM_UPDATED)
        elif op == "advance" and item.status in (ItemStatus.NEW, ItemStatus.SCOPING):
            target = ItemStatus.SCOPING if item.status is ItemStatus.NEW else ItemStatus.READY
            tx.save_item(transition(item, target, tx.now), EventKind.ITEM_TRANSITION)
        elif op == "block" and item.status is not ItemStatus.BLOCKED:
            tx.save_item(block(item, "why", tx.now), EventKind.ITEM_TRANSITION)
        elif op == "depend" and other.id != item.id:
            tx.save_item(touch(item, tx.now, dependencies=(other.id,)), EventKind.ITEM_UPDATED)
        elif op == "sleep":
            wake = format_timestamp(NOW + timedelta(seconds=pick * 7))
            tx.save_item(touch(item, tx.now, wake_at=wake), EventKind.ITEM_UPDATED)
        elif op == "archive":
            tx.save_item(archive(item, tx.now), EventKind.ITEM_ARCHIVED)
        elif op == "two_at_once":
            tx.save_item(touch(item, tx.now, tokens_in=item.tokens_in + 1), EventKind.ITEM_UPDATED)
            tx.create_item(new_item(tx.allocate_item_id("WRK"), "pair", tx.now))
        elif op == "queue" and not tx.list_runs(item_id=item.id, statuses=[RunStatus.ACTIVE]):
            run = Run(tx.allocate_run_id(), item.id, "prd", RunKind.PHASE, tx.stamp)
            tx.create_run(run)
        elif op == "claim":
            tx.claim_runs("w", 1 + pick % 3, tx.now + timedelta(minutes=1))
        elif op in ("finish", "renew"):
            live = tx.list_runs(item_id=item.id, statuses=[RunStatus.ACTIVE], limit=1)
            if live and op == "finish":
                ended = finish(live[0], RunStatus.CANCELLED, tx.stamp)
                tx.save_run(ended, EventKind.RUN_FINISHED)
            elif live and live[0].worker_id:
                tx.renew_lease(live[0].id, live[0].worker_id, tx.now + timedelta(minutes=pick))


def fresh_load(path: Path) -> SqliteStore:
    return SqliteStore(path)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=ops)
def test_two_writers_on_one_file_refresh_to_a_fresh_load(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, int, int]]
) -> None:
    path = tmp_path_factory.mktemp("two") / "state.db"
    stores = [SqliteStore(path), SqliteStore(path)]
    try:
        for store in stores:
            store.snapshot()  # the one full load each
        for op, who, pick in steps:
            apply(stores[who], op, pick)
        truth = fresh_load(path)
        expected = truth.snapshot().content()
        truth.close()
        for store in stores:
            assert store.snapshot().content() == expected
            assert store.full_loads == 1
    finally:
        for store in stores:
            store.close()


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    sys.path[:0] = sys.argv[3].split("|")
    from tests.test_store_snapshot import apply
    from phase_golem.store.sqlite import SqliteStore

    store = SqliteStore(Path(sys.argv[1]))
    names = ["add", "retitle", "advance", "block", "depend", "sleep", "archive",
             "queue", "claim", "finish", "renew", "two_at_once"]
    for n in range(int(sys.argv[2])):
        apply(store, names[(n * 7 + n // 3) % len(names)], n * 13 % 51)
    store.close()
    """
)


@pytest.mark.slow
def test_a_second_process_writing_meanwhile_is_seen_exactly(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    ours = SqliteStore(path)
    for n in range(30):
        apply(ours, "add", n)
    ours.snapshot()
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, *sys.path])}
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), "300", "|".join([root, *sys.path])], env=env
    )
    try:
        refreshes = 0
        while writer.poll() is None:
            apply(ours, ["retitle", "queue", "finish", "refresh"][refreshes % 4], refreshes)
            ours.snapshot()
            refreshes += 1
        assert writer.wait(timeout=120) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
    truth = SqliteStore(path)
    with truth.reader() as tx:
        assert len(tx.list_items(include_archived=True)) > 60  # the writer did write
    assert ours.snapshot().content() == truth.snapshot().content()
    assert ours.full_loads == 1  # every change since was read by sequence, not reloaded
    assert refreshes > 0
    truth.close()
    ours.close()


def test_rows_written_around_the_store_are_seen_too(tmp_path: Path) -> None:
    """The sqlite3 shell, a script: rows that do not stamp themselves are stamped by the
    database, so an incremental refresh never misses them."""
    import sqlite3

    path = tmp_path / "state.db"
    store = SqliteStore(path)
    apply(store, "add", 1)
    apply(store, "add", 2)
    before = store.snapshot()
    with contextlib.closing(sqlite3.connect(path)) as raw:
        raw.execute("UPDATE items SET title = 'edited by hand' WHERE id = 'WRK-001'")
        raw.execute(
            "INSERT INTO runs (id, item_id, phase, kind, attempt, visit, step, status, "
            "queued_at) VALUES ('run-900001', 'WRK-002', 'prd', 'phase', 1, 1, 'claimed', "
            "'active', '2026-01-01T00:00:00.000000+00:00')"
        )
        raw.commit()
    after = store.snapshot()
    assert after.get("WRK-001").title == "edited by hand"  # type: ignore[union-attr]
    assert after.run_for("WRK-002").id == "run-900001"  # type: ignore[union-attr]
    assert after.change_seq > before.change_seq and store.full_loads == 1
    truth = SqliteStore(path)
    assert after.content() == truth.snapshot().content()
    truth.close()
    store.close()
