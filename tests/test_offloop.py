"""Blocking work in a thread is never cut short by a cancel, however many arrive."""

from __future__ import annotations

import asyncio
import threading

import pytest

from phase_golem.engine.offloop import see_through, settle_then_cancel


async def _cancel_repeatedly(task: asyncio.Task[object], started: threading.Event) -> None:
    """Cancel `task` three times while its thread is still working."""
    while not started.is_set():
        await asyncio.sleep(0)
    for _ in range(3):
        task.cancel()
        await asyncio.sleep(0)


def _work(started: threading.Event, release: threading.Event, done: list[str]) -> str:
    started.set()
    release.wait(timeout=60)
    done.append("recorded")
    return "completion"


def test_see_through_keeps_the_result_through_repeated_cancels() -> None:
    async def scenario() -> tuple[object, list[str]]:
        started, release, done = threading.Event(), threading.Event(), []
        task = asyncio.ensure_future(see_through(_work, started, release, done))
        await _cancel_repeatedly(task, started)
        release.set()
        return await task, done

    assert asyncio.run(scenario()) == ("completion", ["recorded"])


def test_settle_then_cancel_waits_for_its_thread_through_repeated_cancels() -> None:
    async def scenario() -> list[str]:
        started, release, done = threading.Event(), threading.Event(), []
        task = asyncio.ensure_future(settle_then_cancel(_work, started, release, done))
        await _cancel_repeatedly(task, started)
        assert not task.done()  # still waiting for the thread, not cut short
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        return done

    assert asyncio.run(scenario()) == ["recorded"]
