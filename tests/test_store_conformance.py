"""One conformance suite, run against every store (a new store adds one factory)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phase_golem.domain.errors import ParseError
from phase_golem.domain.events import EventKind, Schedule
from phase_golem.domain.items import ItemStatus, archive, new_item, touch, transition
from phase_golem.domain.receipts import ArtifactDigest, ArtifactState, Receipt
from phase_golem.domain.redaction import REDACTED
from phase_golem.domain.runs import Run, RunKind, RunRuleError, RunStatus, Step
from phase_golem.store import ConflictError, NotFoundError, Store, StoreError
from phase_golem.store.memory import MemoryStore
from phase_golem.store.sqlite import SqliteStore, migration_scripts
from tests.waiting import DEADLINE_SECONDS


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


StoreFactory = Callable[[Path, FakeClock], Store]
FACTORIES: dict[str, StoreFactory] = {
    "memory": lambda path, clock: MemoryStore(clock=clock),
    "sqlite": lambda path, clock: SqliteStore(path / "state.db", clock=clock),
}


STORE_KINDS = [*sorted(FACTORIES), "postgres"]


def open_kind(request: pytest.FixtureRequest, kind: str, tmp_path: Path, clock: FakeClock) -> Store:
    """A new store of `kind`; PostgreSQL's is a fresh database on the session's server."""
    if kind == "postgres":
        from phase_golem.store.postgres import PostgresStore

        return PostgresStore(request.getfixturevalue("pg_url"), clock=clock)
    return FACTORIES[kind](tmp_path, clock)


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = open_kind(request, request.param, tmp_path, FakeClock())
    yield opened
    opened.close()


def add(store: Store, title: str = "Item", prefix: str = "WRK") -> str:
    with store.transaction() as tx:
        item_id = tx.allocate_item_id(prefix)
        tx.create_item(new_item(item_id, title, tx.now))
        return item_id


def event_count(store: Store) -> int:
    with store.reader() as tx:
        return len(tx.events())


def make_run(store: Store, item_id: str, **fields: object) -> Run:
    with store.transaction() as tx:
        run = Run(
            id=tx.allocate_run_id(),
            item_id=item_id,
            phase="prd",
            kind=RunKind.PHASE,
            queued_at=tx.now.isoformat(timespec="microseconds"),
        ).replace(**fields)
        tx.create_run(run)
        return run


# --- items, IDs, ledger ------------------------------------------------------------


def test_ids_are_sequential_per_prefix_and_never_reused(store: Store) -> None:
    assert [add(store) for _ in range(3)] == ["WRK-001", "WRK-002", "WRK-003"]
    assert add(store, prefix="OPS") == "OPS-001"
    with store.transaction() as tx:
        item = tx.require_item("WRK-003")
        tx.save_item(archive(item, tx.now), EventKind.ITEM_ARCHIVED)
    assert add(store) == "WRK-004"
    with store.transaction() as tx:
        tx.create_item(new_item("WRK-100", "Imported", tx.now))
    assert add(store) == "WRK-101"
    with store.transaction() as tx:
        tx.raise_high_water("WRK", 50)  # never lowers
        assert tx.high_water("WRK") == 101


def test_every_change_writes_exactly_one_event(store: Store) -> None:
    item_id = add(store)
    assert event_count(store) == 1
    with store.transaction() as tx:
        item = tx.require_item(item_id)
        tx.save_item(transition(item, ItemStatus.SCOPING, tx.now), EventKind.ITEM_TRANSITION)
    with store.reader() as tx:
        events = tx.events()
    assert [e.kind for e in events] == [EventKind.ITEM_CREATED, EventKind.ITEM_TRANSITION]
    assert events[1].data["from"] == "new" and events[1].data["to"] == "scoping"
    assert events[0].seq < events[1].seq


def test_secrets_are_redacted_in_the_ledger(store: Store) -> None:
    with store.transaction() as tx:
        tx.create_item(
            new_item("WRK-001", "Rotate sk-ant-api03-abcdefghijklmnopqrstuvwx", tx.now),
            data={"api_token": "hunter2hunter2", "note": "password=letmein"},
        )
    with store.reader() as tx:
        (event,) = tx.events()
    text = repr(event.to_dict())
    for secret in ("abcdefghijklmnopqrstuvwx", "hunter2hunter2", "letmein"):
        assert secret not in text
    assert REDACTED in event.data["title"]


def test_text_no_store_can_hold_is_refused_in_items_and_escaped_in_evidence(
    store: Store,
) -> None:
    before = event_count(store)
    for title in ("nul\x00title", "lone \ud800 surrogate"):
        with pytest.raises(ParseError, match="WRK-001: title contains"), store.transaction() as tx:
            tx.create_item(new_item("WRK-001", title, tx.now))
    assert event_count(store) == before
    item_id = add(store)
    run = make_run(store, item_id, error="agent said \x00 and \udc80")
    with store.transaction() as tx:
        tx.append_event(EventKind.RUN_UPDATED, item_id=item_id, data={"stream": "bad \ud83d"})
    with store.reader() as tx:
        stored = tx.get_run(run.id)
        last = tx.events()[-1]
    assert stored is not None and stored.error == "agent said \\x00 and \\udc80"
    assert last.data["stream"] == "bad \ud83d"  # kept (JSON-escaped in the column)


def test_secrets_in_item_text_are_redacted_before_they_are_stored(store: Store) -> None:
    with store.transaction() as tx:
        tx.create_item(new_item("WRK-001", "Use ghp_abcdefghijklmnopqrstuvwxyz0123 here", tx.now))
    with store.reader() as tx:
        assert tx.require_item("WRK-001").title == f"Use {REDACTED} here"
    assert store.snapshot().get("WRK-001").title == f"Use {REDACTED} here"


def test_a_failed_transaction_changes_nothing(store: Store) -> None:
    first = add(store)
    before_snapshot = store.snapshot()
    before_events = event_count(store)
    with pytest.raises(RuntimeError), store.transaction() as tx:
        item_id = tx.allocate_item_id("WRK")
        tx.create_item(new_item(item_id, "Doomed", tx.now))
        tx.save_item(touch(tx.require_item(first), tx.now, title="Changed"), EventKind.ITEM_UPDATED)
        tx.set_meta("k", "v")
        raise RuntimeError("boom")
    assert event_count(store) == before_events
    assert store.snapshot().items() == before_snapshot.items()
    with store.reader() as tx:
        assert tx.get_item("WRK-002") is None
        assert tx.require_item(first).title == "Item"
        assert tx.high_water("WRK") == 1
        assert tx.get_meta("k") is None
    assert add(store) == "WRK-002"


def test_conflicts_and_missing(store: Store) -> None:
    item_id = add(store)
    with pytest.raises(ConflictError), store.transaction() as tx:
        tx.create_item(new_item(item_id, "Again", tx.now))
    with pytest.raises(NotFoundError), store.transaction() as tx:
        tx.save_item(new_item("WRK-404", "Ghost", tx.now), EventKind.ITEM_UPDATED)
    with pytest.raises(NotFoundError), store.reader() as tx:
        tx.require_item("WRK-404")


def test_reader_refuses_writes(store: Store) -> None:
    with pytest.raises(StoreError, match="read-only"), store.reader() as tx:
        tx.create_item(new_item("WRK-001", "No", datetime.now(UTC)))


def test_archived_items_are_listed_only_on_request(store: Store) -> None:
    keep, gone = add(store), add(store)
    with store.transaction() as tx:
        tx.save_item(archive(tx.require_item(gone), tx.now), EventKind.ITEM_ARCHIVED)
        assert [i.id for i in tx.list_items()] == [keep]
        assert [i.id for i in tx.list_items(include_archived=True)] == [keep, gone]
    assert store.snapshot().ids() == {keep}


# --- runs ---------------------------------------------------------------------------


def test_runs_lifecycle_and_rules(store: Store) -> None:
    item_id = add(store)
    run = make_run(store, item_id)
    with pytest.raises(ConflictError, match="one run per item"):
        make_run(store, item_id)
    with store.transaction() as tx:
        tx.save_run(run.replace(step=Step.STARTED), EventKind.RUN_STARTED)
    with (
        pytest.raises(RunRuleError, match="cannot go from started to claimed"),
        store.transaction() as tx,
    ):
        tx.save_run(run.replace(step=Step.CLAIMED), EventKind.RUN_UPDATED)
    ended = run.replace(step=Step.AGENT_EXITED, status=RunStatus.FAILED_AGENT, error="x")
    with store.transaction() as tx:
        tx.save_run(ended, EventKind.RUN_FINISHED)
    with pytest.raises(RunRuleError), store.transaction() as tx:
        tx.save_run(ended.replace(status=RunStatus.CRASHED), EventKind.RUN_FINISHED)
    retry = make_run(store, item_id, attempt=2, retry_of=run.id)
    with store.reader() as tx:
        runs = tx.list_runs(item_id=item_id)
        assert [r.id for r in runs] == [retry.id, run.id]  # newest first
        assert tx.list_runs(statuses=[RunStatus.ACTIVE]) == [retry]
        assert tx.get_run(retry.id) == retry
        kinds = [e.kind for e in tx.events(item_id=item_id)]
    assert kinds.count(EventKind.RUN_QUEUED) == 2
    with pytest.raises(NotFoundError):
        make_run(store, "WRK-404")


def committed_run(store: Store, item_id: str) -> Run:
    run = make_run(store, item_id)
    with store.transaction() as tx:
        done = run.replace(
            step=Step.COMMITTED, status=RunStatus.COMMITTED, ended_at=tx.now.isoformat()
        )
        tx.save_run(done, EventKind.RUN_FINISHED)
    return done


def receipt_of(run: Run, *artifacts: ArtifactDigest) -> Receipt:
    return Receipt(
        run_id=run.id,
        item_id=run.item_id,
        phase=run.phase,
        created_at=run.ended_at or "",
        idempotency_key="ik:abc",
        snapshot_before="snap-1",
        snapshot_after="snap-2",
        workdir="/work/tree",
        artifacts=artifacts,
    )


def test_receipts_round_trip_in_recording_order(store: Store) -> None:
    first, second = add(store), add(store)
    runs = [committed_run(store, first), committed_run(store, second)]
    runs.append(committed_run(store, first))
    present = ArtifactDigest("src/a.txt", ArtifactState.PRESENT, "ab" * 32, 12, reported=True)
    missing = ArtifactDigest("gone.txt", ArtifactState.MISSING, touched=True)
    unsafe = ArtifactDigest("/etc/passwd", ArtifactState.UNSAFE, reason="absolute path")
    receipts = [
        receipt_of(runs[0], present, missing),
        receipt_of(runs[1]),
        receipt_of(runs[2], unsafe),
    ]
    before = event_count(store)
    with store.transaction() as tx:
        for receipt in receipts:
            tx.save_receipt(receipt)
    assert event_count(store) == before + 3  # one receipt.recorded each
    with store.reader() as tx:
        assert tx.get_receipt(runs[0].id) == receipts[0]
        assert tx.get_receipt("run-404") is None
        assert tx.list_receipts() == receipts
        assert tx.list_receipts(item_id=first) == [receipts[0], receipts[2]]
        recorded = [e for e in tx.events() if e.kind is EventKind.RECEIPT_RECORDED]
    assert recorded[0].data == {"artifacts": 2, "not_present": ["gone.txt"]}
    assert recorded[0].run_id == runs[0].id and recorded[0].item_id == first


def test_a_receipt_needs_a_committed_run_of_its_item_and_is_written_once(store: Store) -> None:
    item_id, other = add(store), add(store)
    active = make_run(store, item_id)
    with pytest.raises(ConflictError, match="only a committed run"), store.transaction() as tx:
        tx.save_receipt(receipt_of(active))
    with store.transaction() as tx:
        tx.save_run(
            active.replace(step=Step.AGENT_EXITED, status=RunStatus.FAILED_AGENT),
            EventKind.RUN_FINISHED,
        )
    done = committed_run(store, item_id)
    with pytest.raises(NotFoundError), store.transaction() as tx:
        tx.save_receipt(receipt_of(done.replace(id="run-404")))
    with pytest.raises(ConflictError, match="belongs to"), store.transaction() as tx:
        tx.save_receipt(receipt_of(done.replace(item_id=other)))
    with store.transaction() as tx:
        tx.save_receipt(receipt_of(done))
    with pytest.raises(ConflictError, match="already has a receipt"), store.transaction() as tx:
        tx.save_receipt(receipt_of(done))
    with store.reader() as tx:
        assert [r.run_id for r in tx.list_receipts()] == [done.id]


def test_the_commit_is_set_later_for_a_batch_once(store: Store) -> None:
    item_id = add(store)
    runs = [committed_run(store, item_id) for _ in range(3)]
    with store.transaction() as tx:
        for run in runs:
            tx.save_receipt(receipt_of(run))
    with store.transaction() as tx:
        tx.set_receipt_commit([runs[0].id, runs[1].id], "c0ffee")
    with store.transaction() as tx:
        tx.set_receipt_commit([runs[1].id], "c0ffee")  # the same value again: nothing new
    with store.reader() as tx:
        assert [r.commit for r in tx.list_receipts()] == ["c0ffee", "c0ffee", None]
        committed = [e for e in tx.events() if e.kind is EventKind.RECEIPT_COMMITTED]
    assert [(e.run_id, e.data) for e in committed] == [
        (runs[0].id, {"commit": "c0ffee"}),
        (runs[1].id, {"commit": "c0ffee"}),
    ]
    with pytest.raises(ConflictError, match="already names commit"), store.transaction() as tx:
        tx.set_receipt_commit([runs[2].id, runs[0].id], "beef")
    with pytest.raises(NotFoundError), store.transaction() as tx:
        tx.set_receipt_commit(["run-404"], "beef")
    with store.reader() as tx:  # the failed batch changed nothing, not even runs[2]
        assert [r.commit for r in tx.list_receipts()] == ["c0ffee", "c0ffee", None]
    with pytest.raises(StoreError), store.reader() as tx:
        tx.set_receipt_commit([runs[2].id], "beef")


def test_claims_respect_limit_and_not_before(store: Store) -> None:
    ids = [add(store) for _ in range(3)]
    far = datetime(2100, 1, 1, tzinfo=UTC).isoformat(timespec="microseconds")
    make_run(store, ids[0])
    make_run(store, ids[1], not_before=far)
    make_run(store, ids[2])
    with store.transaction() as tx:
        lease = tx.now + timedelta(seconds=60)
        first = tx.claim_runs("worker-a", 1, lease)
        rest = tx.claim_runs("worker-b", 5, lease)
    assert [r.item_id for r in first] == [ids[0]]
    assert [r.item_id for r in rest] == [ids[2]]
    assert all(r.step is Step.CLAIMED and r.lease_until for r in first + rest)
    with store.reader() as tx:
        claimed = [e for e in tx.events() if e.kind is EventKind.RUN_CLAIMED]
        assert [e.data["worker_id"] for e in claimed] == ["worker-a", "worker-b"]
        assert tx.get_run(first[0].id).worker_id == "worker-a"  # type: ignore[union-attr]


def test_only_the_holder_renews_a_live_runs_lease_and_no_event_is_written(
    store: Store,
) -> None:
    item = add(store)
    make_run(store, item)
    with store.transaction() as tx:
        [run] = tx.claim_runs("worker-a", 1, tx.now + timedelta(seconds=60))
        later = tx.now + timedelta(seconds=120)
    before = event_count(store)
    with store.transaction() as tx:
        assert not tx.renew_lease(run.id, "worker-b", later)
        assert not tx.renew_lease("run-999999", "worker-a", later)
        assert tx.renew_lease(run.id, "worker-a", later)
    with store.reader() as tx:
        renewed = tx.get_run(run.id)
    assert renewed is not None and renewed.lease_until == later.isoformat(timespec="microseconds")
    assert event_count(store) == before
    with store.transaction() as tx:
        ended = renewed.replace(status=RunStatus.CANCELLED, ended_at=tx.now.isoformat())
        tx.save_run(ended, EventKind.RUN_FINISHED)
        assert not tx.renew_lease(run.id, "worker-a", later + timedelta(seconds=1))
    with store.reader() as tx:
        assert tx.get_run(run.id) == ended


# --- schedules, meta -----------------------------------------------------------------


def test_schedules_and_meta(store: Store) -> None:
    with store.transaction() as tx:
        tx.save_schedule(Schedule("inbox", "every", "10", next_run_at="a"))
        tx.save_schedule(Schedule("inbox", "every", "10", next_run_at="b", last_run_at="a"))
        tx.save_schedule(Schedule("gh", "cron", "*/5 * * * *"))
        tx.set_meta("owner", "x")
    with store.reader() as tx:
        assert [s.source for s in tx.list_schedules()] == ["gh", "inbox"]
        assert tx.get_schedule("inbox") == Schedule("inbox", "every", "10", "b", "a")
        assert tx.get_meta("owner") == "x"


# --- snapshots -----------------------------------------------------------------------


def test_snapshot_is_shared_and_replaced_incrementally(store: Store) -> None:
    first, second = add(store), add(store)
    snap = store.snapshot()
    assert store.snapshot() is snap  # O(1): no work when nothing changed
    with store.transaction() as tx:
        item = tx.require_item(second)
        tx.save_item(touch(item, tx.now, title="New title"), EventKind.ITEM_UPDATED)
    after = store.snapshot()
    assert after is not snap and after.version > snap.version
    assert after.get(first) is snap.get(first)  # untouched items are the same objects
    assert after.get(second).title == "New title"  # type: ignore[union-attr]
    assert snap.get(second).title == "Item"  # type: ignore[union-attr]  # old one unchanged
    with pytest.raises(AttributeError):
        snap.version = 99  # type: ignore[misc]


def test_every_item_and_run_write_takes_the_next_change_seq(store: Store) -> None:
    with store.reader() as tx:
        start = tx.change_seq()
    first = add(store)
    with store.reader() as tx:
        assert tx.change_seq() == start + 1
        assert [i.id for i in tx.items_changed_since(start)] == [first]
        assert tx.items_changed_since(start + 1) == []
    with store.transaction() as tx:  # many rows in one transaction: one sequence
        second = tx.allocate_item_id("WRK")
        tx.create_item(new_item(second, "Two", tx.now))
        item = tx.require_item(first)
        tx.save_item(touch(item, tx.now, title="One"), EventKind.ITEM_UPDATED)
    with store.reader() as tx:
        assert tx.change_seq() == start + 2
        assert sorted(i.id for i in tx.items_changed_since(start + 1)) == [first, second]
    with store.transaction() as tx:  # ledger and metadata only: no item or run changed
        tx.append_event(EventKind.SCHEDULER_STARTED)
        tx.set_meta("k", "v")
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.save_item(touch(tx.require_item(first), tx.now, title="x"), EventKind.ITEM_UPDATED)
        raise RuntimeError("rolled back")
    with store.reader() as tx:
        assert tx.change_seq() == start + 2
    run = make_run(store, first)
    with store.transaction() as tx:
        [claimed] = tx.claim_runs("w", 1, tx.now + timedelta(minutes=1))
    with store.reader() as tx:
        seq = tx.change_seq()
        assert [r.id for r in tx.runs_changed_since(seq - 2)] == [run.id]
    with store.transaction() as tx:  # a lease renewal writes a run row: it is stamped too
        assert tx.renew_lease(run.id, "w", tx.now + timedelta(minutes=2))
    with store.reader() as tx:
        [renewed] = tx.runs_changed_since(seq)
        assert renewed.lease_until != claimed.lease_until
    with store.transaction() as tx:
        tx.save_item(archive(tx.require_item(second), tx.now), EventKind.ITEM_ARCHIVED)
    with store.reader() as tx:  # archived rows come too, so a snapshot can drop them
        [gone] = tx.items_changed_since(tx.change_seq() - 1)
        assert gone.id == second and gone.archived


def test_snapshot_keeps_live_runs_and_refreshes_by_sequence(store: Store) -> None:
    item_id = add(store)
    before = store.snapshot()
    assert before.runs() == [] and before.change_seq > 0
    run = make_run(store, item_id)
    live = store.snapshot()
    assert live.run_for(item_id) == run and live.change_seq > before.change_seq
    with store.reader() as tx:
        assert live.change_seq == tx.change_seq()
    with store.transaction() as tx:
        tx.save_run(
            run.replace(status=RunStatus.CANCELLED, ended_at=tx.stamp), EventKind.RUN_FINISHED
        )
    assert store.snapshot().runs() == []
    with store.transaction() as tx:  # decide's view: refreshed inside the transaction
        seen = tx.snapshot()
        assert seen is store.snapshot()
        tx.save_item(touch(tx.require_item(item_id), tx.now, title="t"), EventKind.ITEM_UPDATED)
        mine = tx.snapshot()  # its own write laid over what it saw, not yet published
        assert mine.get(item_id).title == "t"  # type: ignore[union-attr]
        assert store.snapshot().get(item_id).title == "Item"  # type: ignore[union-attr]
    assert store.snapshot().get(item_id).title == "t"  # type: ignore[union-attr]
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.save_item(touch(tx.require_item(item_id), tx.now, title="u"), EventKind.ITEM_UPDATED)
        assert tx.snapshot().get(item_id).title == "u"  # type: ignore[union-attr]
        raise RuntimeError("rolled back")
    assert store.snapshot().get(item_id).title == "t"  # type: ignore[union-attr]


# --- SQLite specifics ----------------------------------------------------------------


def test_sqlite_file_settings(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.db")
    add(store)
    for path in tmp_path.glob("state.db*"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    conn = store._conn  # the store's own connection carries the pragmas
    assert conn.execute("PRAGMA journal_mode").fetchone()["journal_mode"] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()["synchronous"] == 2
    assert conn.execute("PRAGMA foreign_keys").fetchone()["foreign_keys"] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()["timeout"] > 0
    latest = migration_scripts("sqlite")[-1][0]  # every migration applied, in order
    assert latest >= 2 and store.schema_version() == latest
    store.close()
    reopened = SqliteStore(tmp_path / "state.db")
    assert reopened.schema_version() == latest
    with reopened.reader() as tx:
        assert len(tx.list_items()) == 1
    reopened._conn.execute("INSERT INTO schema_migrations VALUES (99, 'future', 'x')")
    reopened.close()
    with pytest.raises(StoreError, match="newer than this phase-golem understands"):
        SqliteStore(tmp_path / "state.db")


def test_sqlite_sees_other_connections_writes_once(tmp_path: Path) -> None:
    one = SqliteStore(tmp_path / "state.db")
    two = SqliteStore(tmp_path / "state.db")
    mine = add(one)
    snap = one.snapshot()
    add(two)
    reloaded = one.snapshot()
    assert reloaded is not snap and len(reloaded) == 2
    assert one.snapshot() is reloaded  # reloaded once, then shared again
    assert two.snapshot().ids() == {mine, "WRK-002"}
    # Only our own write: incremental, untouched items keep their identity.
    add(one)
    assert one.snapshot().get(mine) is reloaded.get(mine)
    one.close()
    two.close()


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from phase_golem.domain.events import EventKind
    from phase_golem.domain.items import new_item, touch
    from phase_golem.store.sqlite import SqliteStore, migration_scripts

    store = SqliteStore(Path(sys.argv[1]))
    for n in range(int(sys.argv[2])):
        with store.transaction() as tx:
            item_id = tx.allocate_item_id("WRK")
            tx.create_item(new_item(item_id, f"from {sys.argv[3]} #{n}", tx.now))
        with store.transaction() as tx:
            counter = tx.require_item("CNT-001")
            bumped = touch(counter, tx.now, tokens_in=counter.tokens_in + 1)
            tx.save_item(bumped, EventKind.ITEM_UPDATED)
    store.close()
    """
)


@pytest.mark.slow
@pytest.mark.serial
def test_concurrent_writers_in_many_processes(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    seed = SqliteStore(db)
    with seed.transaction() as tx:
        tx.create_item(new_item("CNT-001", "Shared counter", tx.now))
    seed.close()
    writers, per_writer = 6, 60
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(per_writer), str(n)], env=env)
        for n in range(writers)
    ]
    try:
        codes = [p.wait(timeout=DEADLINE_SECONDS) for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert codes == [0] * writers
    store = SqliteStore(db)
    total = writers * per_writer
    with store.reader() as tx:
        items = tx.list_items()
        counter = tx.require_item("CNT-001")
        events = tx.events()
    ids = sorted(i.id for i in items if i.id.startswith("WRK"))
    assert ids == [f"WRK-{n:03d}" for n in range(1, total + 1)]  # no duplicate, no gap
    assert counter.tokens_in == total  # no lost update
    assert len(events) == 1 + 2 * total  # one event per change
    assert [e.seq for e in events] == sorted({e.seq for e in events})
    store.close()


# --- the same behaviour from every store -------------------------------------------------

operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.text(alphabet="abc xyz", min_size=1, max_size=8)),
        st.tuples(st.just("retitle"), st.integers(0, 20)),
        st.tuples(st.just("advance"), st.integers(0, 20)),
        st.tuples(st.just("archive"), st.integers(0, 20)),
    ),
    max_size=25,
)


def apply_operations(store: Store, ops: list[tuple[str, object]]) -> None:
    for op, arg in ops:
        with store.transaction() as tx:
            items = tx.list_items()
            if op == "add":
                title = str(arg).strip() or "t"
                tx.create_item(new_item(tx.allocate_item_id("WRK"), title, tx.now))
                continue
            if not items:
                continue
            item = items[int(str(arg)) % len(items)]
            if op == "retitle":
                tx.save_item(touch(item, tx.now, title=item.title + "!"), EventKind.ITEM_UPDATED)
            elif op == "advance" and item.status is ItemStatus.NEW:
                tx.save_item(
                    transition(item, ItemStatus.SCOPING, tx.now), EventKind.ITEM_TRANSITION
                )
            elif op == "archive":
                tx.save_item(archive(item, tx.now), EventKind.ITEM_ARCHIVED)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
def test_memory_and_sqlite_agree(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, object]]
) -> None:
    fixed = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
    memory = MemoryStore(clock=lambda: fixed)
    sqlite = SqliteStore(tmp_path_factory.mktemp("prop") / "state.db", clock=lambda: fixed)
    apply_operations(memory, ops)
    apply_operations(sqlite, ops)
    with memory.reader() as a, sqlite.reader() as b:
        assert a.list_items(include_archived=True) == b.list_items(include_archived=True)
        assert [(e.kind, e.item_id) for e in a.events()] == [
            (e.kind, e.item_id) for e in b.events()
        ]
    assert memory.snapshot().items() == sqlite.snapshot().items()
    sqlite.close()
