"""Persistence behind one protocol: memory (tests), SQLite (default), PostgreSQL (many workers)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from phase_golem.clock import utc_now
from phase_golem.store.base import Store, Transaction
from phase_golem.store.errors import ConflictError, NotFoundError, StoreError
from phase_golem.store.snapshot import BacklogSnapshot
from phase_golem.store.state import Leftover, PausedAgent, PendingCommit

__all__ = [
    "BacklogSnapshot",
    "ConflictError",
    "Leftover",
    "NotFoundError",
    "PausedAgent",
    "PendingCommit",
    "Store",
    "StoreError",
    "Transaction",
    "open_store",
]


def open_store(url: str, root: Path, *, clock: Callable[[], datetime] = utc_now) -> Store:
    """Open the store a `[storage] url` names; relative SQLite paths resolve against root."""
    if url.startswith("sqlite:///"):
        from phase_golem.store.sqlite import SqliteStore

        raw = url.removeprefix("sqlite:///")
        path = Path(raw)
        if not path.is_absolute():
            path = root / path
        return SqliteStore(path, clock=clock)
    if url == "memory://":
        from phase_golem.store.memory import MemoryStore

        return MemoryStore(clock=clock)
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from phase_golem.store.postgres import PostgresStore
        except ImportError:
            raise StoreError(
                "PostgreSQL storage needs the postgres extra: pip install 'phase-golem[postgres]'"
            ) from None
        return PostgresStore(url, clock=clock)
    raise StoreError(f"unsupported storage url {url!r} (use sqlite:///PATH or postgresql://…)")
