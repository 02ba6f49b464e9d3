"""Scheduler control (pause, resume, retry) over both stores, one transaction each."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from phase_golem.domain.errors import DomainError
from phase_golem.domain.events import EventKind
from phase_golem.domain.items import ItemStatus, block, new_item, transition
from phase_golem.domain.runs import Run, RunKind, RunStatus, Step, finish
from phase_golem.engine import control
from phase_golem.store import Store
from phase_golem.store.memory import MemoryStore
from phase_golem.store.sqlite import SqliteStore


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened: Store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "s.db")
    yield opened
    opened.close()


def kinds(store: Store) -> list[str]:
    with store.reader() as tx:
        return [e.kind.value for e in tx.events()]


def test_pause_is_durable_said_once_and_resumed(store: Store) -> None:
    state, paused = control.pause(store, "  lunch  ")
    assert paused and state.reason == "lunch"
    again, paused_again = control.pause(store, "other")
    assert not paused_again and again.reason == "lunch"
    assert control.read_pause(store) == state
    assert kinds(store).count("scheduler.paused") == 1
    assert control.resume(store) == state
    assert control.read_pause(store) is None
    assert control.resume(store) is None
    assert kinds(store).count("scheduler.resumed") == 1


def blocked_item_with_failed_run(store: Store) -> str:
    with store.transaction() as tx:
        item = new_item("WRK-001", "Flaky", tx.now)
        tx.create_item(item)
        item = transition(item, ItemStatus.SCOPING, tx.now)
        item = transition(item, ItemStatus.READY, tx.now)
        item = transition(item, ItemStatus.IN_PROGRESS, tx.now).replace(phase="build")
        tx.save_item(item, EventKind.ITEM_TRANSITION)
        run = Run(
            id=tx.allocate_run_id(),
            item_id=item.id,
            phase="build",
            kind=RunKind.PHASE,
            queued_at=tx.stamp,
        )
        tx.create_run(run)
        done = finish(
            run.replace(step=Step.AGENT_EXITED),
            RunStatus.FAILED_LOGIC,
            tx.stamp,
            error="tests failed: 3",
        )
        tx.save_run(done, EventKind.RUN_FINISHED)
        tx.save_item(block(item, "retries exhausted", tx.now), EventKind.ITEM_TRANSITION)
    return "WRK-001"


def test_retry_unblocks_with_the_previous_failure_in_one_event(store: Store) -> None:
    item_id = blocked_item_with_failed_run(store)
    before = len(kinds(store))
    item = control.retry_item(store, item_id, "look at the flaky test")
    assert item.status is ItemStatus.IN_PROGRESS and item.phase == "build"
    assert item.unblock_context is not None
    assert "tests failed: 3" in item.unblock_context
    assert "look at the flaky test" in item.unblock_context
    assert kinds(store)[before:] == ["item.retried"]


def test_retry_refuses_an_item_that_is_not_blocked(store: Store) -> None:
    item_id = blocked_item_with_failed_run(store)
    control.retry_item(store, item_id)
    before = len(kinds(store))
    with pytest.raises(DomainError, match="not blocked"):
        control.retry_item(store, item_id)
    assert len(kinds(store)) == before
