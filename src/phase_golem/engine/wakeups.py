"""What ends the scheduler's wait besides its own runs, and what stops it.

A store that announces its commits (PostgreSQL's LISTEN/NOTIFY) wakes the loop at once
and nothing is polled; with one that cannot (SQLite), the loop looks at the store's data
version once a second. Signals ask the loop to stop; the first names the exit code.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from datetime import datetime
from typing import Any

from phase_golem.clock import utc_now
from phase_golem.store import Store

IDLE_CHECK_SECONDS = 1.0
# With a store that announces commits nothing is polled: this is only a backstop against a
# notification lost with a dropped connection.
LISTENING_CHECK_SECONDS = 30.0
MIN_WAIT_SECONDS = 0.05  # a backstop: whatever the clock says, never spin
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


class Wakeups:
    """Commits seen in the store since the loop last looked."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._woken = asyncio.Event()  # a commit somewhere (stores that announce commits)
        self._listening = False
        self._seen_version = -1

    def listen(self) -> Callable[[], None] | None:
        """Have the store wake the loop on every commit, where it can; returns the stop."""
        listen = getattr(self.store, "listen", None)
        if listen is None:
            return None
        loop = asyncio.get_running_loop()

        def woken() -> None:  # called from the store's listening thread
            # A notice that comes in as `run` ends, once the loop has closed, wakes nobody.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._woken.set)

        stop: Callable[[], None] = listen(woken)
        self._listening = True
        return stop

    def announced(self) -> bool:
        """A commit was announced since the last wait (and is now taken note of)."""
        if not self._woken.is_set():
            return False
        self._woken.clear()
        return True

    def timeout(self, due: datetime | None) -> float:
        """How long to wait at most: until `due`, else until the next look at the store."""
        timeout = LISTENING_CHECK_SECONDS if self._listening else IDLE_CHECK_SECONDS
        if due is not None:
            timeout = min(timeout, max((due - utc_now()).total_seconds(), MIN_WAIT_SECONDS))
        return timeout

    def waiter(self) -> asyncio.Future[Any]:
        """Done when a commit is announced (cancel it after the wait)."""
        return asyncio.ensure_future(self._woken.wait())

    def after_wait(self) -> None:
        self._woken.clear()

    def store_changed(self) -> bool:
        """The store's data changed since the last call (one cheap query)."""
        version = self.store.data_version()
        changed = version != self._seen_version
        self._seen_version = version
        return changed


class StopSignals:
    """SIGINT, SIGTERM, SIGHUP and SIGQUIT set `stop`; the first one is remembered."""

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self.first: int | None = None

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._on, sig)

    def _on(self, sig: int) -> None:
        if self.first is None:  # the first signal names the exit code (128 + it)
            self.first = sig
        self.stop.set()

    def remove(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)
