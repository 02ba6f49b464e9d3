"""Blocking work (git, hashing, SQLite commits) off the event loop (DESIGN §3 "Cost rules").

One slow run start must not delay the others, so each run's preparation and completion
run in a worker thread while the loop goes on starting, watching and finishing the rest.
A thread cannot be interrupted, so a cancel that arrives meanwhile never abandons it: it
waits for the work to end, so the run is in a known state when the cancel takes effect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


async def settle_then_cancel(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run `fn` in a thread; on a cancel, let it finish first, then be cancelled."""
    work = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
    if await _until_done(work):
        raise asyncio.CancelledError
    return work.result()


async def see_through(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run `fn` in a thread to its end even if cancelled meanwhile, and return its result
    (what finishes a run whose agent is done: its outcome is kept, not thrown away)."""
    work = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
    await _until_done(work)
    return work.result()


async def _until_done(work: asyncio.Future[T]) -> bool:
    """Wait for the thread's end whatever happens; True when a cancel came meanwhile.

    Every cancel is absorbed, not only the first: the scheduler may cancel a task again
    (its run ended in the store, a shutdown) while the thread is still recording, and
    a second cancel must not cut the wait short and lose what the thread recorded.
    """
    cancelled = False
    while not work.done():
        try:
            await asyncio.shield(work)
        except asyncio.CancelledError:
            cancelled = True
    return cancelled
