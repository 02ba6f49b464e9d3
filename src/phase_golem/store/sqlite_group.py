"""Group commit for the SQLite store: writers that queue share one COMMIT (and its fsync).

The store has one writing connection, taken in turns under its lock. A transaction whose
turn ends while another thread waits for the lock leaves the database transaction open:
its work is kept behind a savepoint (released: it stays; rolled back to on an error: only
its own work goes), and the next writer adds its own to the same COMMIT. The last writer
of a group, or one that finds the group full, commits it; every member's `with` ends only
once that COMMIT is durable, so a caller sees exactly what it saw before (its work is on
disk when its transaction returns) at one fsync per group instead of one per transaction.

A group is capped at `MAX_MEMBERS` so the write lock is never kept from other processes
for longer than a few transactions. A COMMIT that fails fails every member of its group.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress

from phase_golem.faults import StoreFault

MAX_MEMBERS = 8
# How often a member waiting for its group's COMMIT makes sure one is still coming.
NUDGE_SECONDS = 0.2


class _Group:
    __slots__ = ("done", "error", "members")

    def __init__(self) -> None:
        self.members = 0
        self.done = threading.Event()
        self.error: BaseException | None = None


class CommitGroups:
    """The open group of a store's writing connection (used under the store's lock)."""

    def __init__(
        self,
        lock: threading.RLock,
        conn: Callable[[], sqlite3.Connection],
        commit: Callable[[], None],
        lost: Callable[[], None],
    ) -> None:
        self._lock = lock
        self._conn = conn
        self._commit = commit
        self._lost = lost
        self._open: _Group | None = None
        self._waiting = 0  # threads queued for the lock to write
        self._count_lock = threading.Lock()
        self._in_body = False  # a transaction's body runs (in the thread holding the lock)
        self.commits = 0  # COMMITs made (each one fsync)

    @contextmanager
    def writing(self, begin: Callable[[], None]) -> Iterator[None]:
        """One writer's turn: the lock, and a group (begun if none is open); after the
        turn, the wait for the group's COMMIT."""
        with self._count_lock:
            self._waiting += 1
        try:
            self._lock.acquire()
        finally:
            with self._count_lock:
                self._waiting -= 1
        if self._in_body:  # the same thread, inside its own transaction
            self._lock.release()
            raise StoreFault("could not start a write: a transaction is already open")
        group: _Group | None = None
        try:
            if self._open is None:
                begin()
                self._open = _Group()
            group = self._open
            yield
        finally:
            self._end_turn()
            self._lock.release()
        self._wait(group)

    @contextmanager
    def member(self, errors: Callable[[], AbstractContextManager[None]]) -> Iterator[None]:
        """A transaction's body behind its own savepoint; on an error only its work goes."""
        with errors():
            self._conn().execute("SAVEPOINT member")
        self._in_body = True
        try:
            yield
        except BaseException as exc:
            self._in_body = False
            self._undo()
            if isinstance(exc, sqlite3.Error):
                with errors():
                    raise exc from None
            raise
        self._in_body = False
        try:
            self._conn().execute("RELEASE member")
        except sqlite3.Error as exc:
            self._break(exc)
            with errors():
                raise exc from None
        if self._open is not None:
            self._open.members += 1

    def settle(self) -> None:
        """Commit the open group now (before the connection is used another way)."""
        if self._open is not None and not self._in_body:
            self._finish()

    def _undo(self) -> None:
        conn = self._conn()
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK TO member")
                conn.execute("RELEASE member")
                return
            except sqlite3.Error as exc:
                self._break(exc)
                return
        self._break(RuntimeError("SQLite rolled the whole transaction back"))

    def _break(self, cause: BaseException) -> None:
        """The open group cannot commit: its members' work is gone."""
        group, self._open = self._open, None
        conn = self._conn()
        if conn.in_transaction:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        if group is not None:
            group.error = StoreFault(f"the write was rolled back: {cause}")
            self._lost()
            group.done.set()

    def _end_turn(self) -> None:
        """At the end of a turn: commit, unless a writer queues and the group has room."""
        group = self._open
        if group is None:
            return
        if group.members < MAX_MEMBERS and self._waiting > 0:
            return  # the writer that queued takes its turn and commits after it
        self._finish()

    def _finish(self) -> None:
        group, self._open = self._open, None
        if group is None:
            return
        try:
            self._commit()
        except BaseException as exc:
            group.error = exc
            self._lost()
        finally:
            self.commits += 1
            group.done.set()

    def _wait(self, group: _Group | None) -> None:
        if group is None:
            return
        while not group.done.wait(NUDGE_SECONDS):
            # The writer it waited for may have left before its turn (interrupted): make
            # sure the group is committed by someone.
            with self._lock:
                if self._open is group and not self._in_body:
                    self._end_turn()
        if group.error is not None:
            raise StoreFault(str(group.error)) from None
