"""The Committer (engine/output.py) saves run output off the event loop, in order, and a
run that must start from earlier commits waits for them (never by the clock)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from phase_golem.engine import output
from phase_golem.engine.completion import Completion
from phase_golem.engine.output import Committer


class _Done:
    """A completion as the Committer sees it (it only reads the item id)."""

    def __init__(self, item_id: str) -> None:
        self.item_id = item_id


def _completion(item_id: str) -> Completion:
    done: Any = _Done(item_id)
    return done  # type: ignore[no-any-return]


def _held_saves(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, list[str]]:
    """Saving blocks (in the worker thread) until the event is set; saved items listed."""
    release, saved = threading.Event(), []

    def save(ctx: object, completion: Completion, emit: object) -> None:
        assert release.wait(10)
        saved.append(completion.item_id)

    monkeypatch.setattr(output, "save_run_output", save)
    return release, saved


def test_runs_wait_only_for_the_output_they_start_from(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    release, saved = _held_saves(monkeypatch)

    async def scenario() -> None:
        committer = Committer(Any, lambda line: None)  # type: ignore[arg-type]
        committer.save(_completion("WRK-001"))
        committer.save(_completion("WRK-002"))
        await asyncio.wait_for(committer.ready("WRK-003"), 30)  # nothing of its own owed
        mine = asyncio.ensure_future(committer.ready("WRK-001"))
        everything = asyncio.ensure_future(committer.ready(None))
        await asyncio.sleep(0.05)
        assert not mine.done() and not everything.done()  # the commit is under way
        release.set()
        await asyncio.wait_for(mine, 30)
        await asyncio.wait_for(everything, 30)
        await committer.drain()

    asyncio.run(scenario())
    assert saved == ["WRK-001", "WRK-002"]


def test_a_fault_while_saving_is_raised_on_the_loop_and_frees_the_waiters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def save(ctx: object, completion: Completion, emit: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(output, "save_run_output", save)

    async def scenario() -> None:
        committer = Committer(Any, lambda line: None)  # type: ignore[arg-type]
        committer.save(_completion("WRK-001"))
        await asyncio.wait_for(committer.ready("WRK-001"), 30)
        with pytest.raises(OSError, match="disk gone"):
            await committer.drain()

    asyncio.run(scenario())
