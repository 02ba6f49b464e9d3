"""Faults of the machine, not of the input or of our code: a read-only or full disk, a
quota, a size limit, an I/O error, a database file removed under us.

They are a precondition that is not met (exit 3) and are reported in one line naming the
cause. A run that meets one is neither failed nor blocked: its transaction rolls back, the
scheduler stops, and the next start recovers the run like any interrupted one.
"""

from __future__ import annotations

import contextlib
import errno
import sqlite3
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, TypeVar

from phase_golem.store.errors import StoreError

if TYPE_CHECKING:  # asyncio costs read commands ~15 ms of start-up; only `run` needs it
    import asyncio

T = TypeVar("T")

MACHINE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EACCES, errno.EPERM}
)
_SQLITE_CAUSES = (
    ("readonly", "the database is read-only (check the permissions of .phase-golem/)"),
    ("read-only", "the database is read-only (check the permissions of .phase-golem/)"),
    ("disk is full", "the disk is full"),
    ("disk i/o error", "disk I/O error (is the disk failing, or was a database file removed?)"),
    ("unable to open", "the database file cannot be opened"),
    ("database is locked", "the database is locked by another process"),
    ("malformed", "the database file is damaged"),
    ("not a database", "the file is not a phase-golem database"),
)


class MachineFault(Exception):
    """A fault of the machine met while running; the message is the one line to print."""


class StoreFault(StoreError):
    """The store's files or disk failed under us (not a missing row or a conflict)."""


class StoreUnavailable(StoreFault):
    """The connection to a database server was lost in the middle of a transaction (a
    restarted server, a network cut): that transaction rolled back (unless the break
    came during its COMMIT, when it may have committed), and the store reconnects at its
    next use, waiting a bounded while for the server to answer again (store/pg_conn.py).
    Whoever can safely do its work again carries on; anyone else stops as on any
    StoreFault."""


def once_more_if_lost(attempt: Callable[[], T], undone: Callable[[], bool]) -> T:
    """`attempt()`, and once more when its connection was lost mid-transaction and
    `undone()` (asked of the reconnected store) says none of it committed."""
    try:
        return attempt()
    except StoreUnavailable:
        if not undone():
            raise
        return attempt()


def fault_of(exc: BaseException) -> Exception | None:
    """The fault `exc` is (to stop on, not to blame a run for), or None for anything else."""
    if isinstance(exc, (StoreFault, MachineFault)):
        return exc
    message = os_fault(exc)
    return MachineFault(message) if message is not None else None


def os_fault(exc: BaseException) -> str | None:
    """One line for an OSError of the machine (full, read-only, …), else None."""
    if not isinstance(exc, OSError) or exc.errno not in MACHINE_ERRNOS:
        return None
    what = exc.filename if exc.filename is not None else "a file"
    return f"cannot write {what}: {exc.strerror or exc}"


def sqlite_fault(exc: BaseException, path: object) -> str:
    """One line naming what a SQLite error says about the machine or the file."""
    text = str(exc).lower()
    for needle, cause in _SQLITE_CAUSES:
        if needle in text:
            return f"{path}: {cause} ({exc})"
    return f"{path}: database error: {exc}"


def is_sqlite_error(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.Error)


async def abandon_tasks(tasks: Iterable[asyncio.Task[object]]) -> None:
    """After a fault: stop every run task (their agents are stopped as on a cancel) and
    wait for them, whatever they raise — the store may be unusable, so nothing more is
    recorded; the next start recovers their runs as interrupted."""
    import asyncio

    pending = list(tasks)
    for task in pending:
        task.cancel()
    with contextlib.suppress(BaseException):
        await asyncio.gather(*pending, return_exceptions=True)
