"""Waiting on what can be observed (a file, a row of the state database, a process), never
on the clock: every wait ends as soon as its condition holds, and only a generous deadline,
which a working system never meets on the slowest machine, turns a wait into a failure."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

# Long enough that only a hung test reaches it, on a 2-core machine shared with CPU burners.
DEADLINE_SECONDS = 300.0

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    what: str,
    *,
    timeout: float = DEADLINE_SECONDS,
    process: subprocess.Popen[Any] | None = None,
) -> T:
    """Poll `condition` until it returns something truthy, and return that.

    Fails naming `what` at the deadline, or at once when `process` (the orchestrator the
    test waits on) exits first, since then the condition can no longer come true.
    """
    deadline = time.monotonic() + timeout
    pause = 0.01
    while True:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{what}: the process exited ({process.returncode}) first")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still not true after {timeout:.0f} s")
        time.sleep(pause)  # a poll interval, not a bet on how long anything takes
        pause = min(pause * 2, 0.2)


def wait_for_file(path: Path, *, process: subprocess.Popen[Any] | None = None) -> Path:
    return wait_until(lambda: path if path.exists() else None, f"{path} exists", process=process)


def state_db(root: Path) -> Path:
    return root / ".phase-golem" / "state.db"


def state_rows(root: Path, sql: str, *params: Any) -> list[dict[str, Any]]:
    """Rows of the project's SQLite state, read directly: much cheaper to poll than a CLI
    command, so waiting never adds load to the machine it waits on."""
    db = state_db(root)
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(db, timeout=60)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute(sql, params)]


def live_agents(root: Path, phase: str | None = None) -> list[dict[str, Any]]:
    """Active runs whose agent has started (it has a pid) and not ended."""
    rows = state_rows(
        root,
        "SELECT * FROM runs WHERE status = 'active' AND pid IS NOT NULL AND ended_at IS NULL "
        "ORDER BY id",
    )
    return [r for r in rows if phase is None or r["phase"] == phase]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def wait_until_due(root: Path, run_id: str) -> None:
    """Wait until the moment a run's backoff recorded (`not_before`) has come."""
    [row] = state_rows(root, "SELECT not_before FROM runs WHERE id = ?", run_id)
    due = datetime.fromisoformat(row["not_before"])
    wait_until(lambda: datetime.now(UTC) >= due, f"{run_id} is due (not_before {due})")


def never(tmp: Path) -> str:
    """A gate (`wait_for` in a scenario) that nobody opens: the agent holds until killed."""
    return str(tmp / "gate-never-opened")
