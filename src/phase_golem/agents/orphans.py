"""Find an agent's processes after the orchestrator that started them is gone.

A pid alone proves nothing after a crash or a reboot: it may belong to someone else now.
A process counts as a run's agent only if it is in the run's process group and its own
environment carries both `PHASE_GOLEM_RUN_ID` and `PHASE_GOLEM_ROOT` of that run, which
every agent process and its children inherit. Nothing else is ever signalled or waited on.
Without `/proc` (not Linux) no process can be proven ours, so none is.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

PROC = Path("/proc")


def _stat_fields(pid_dir: Path) -> tuple[str, int] | None:
    """(state, process group) from /proc/<pid>/stat, or None when unreadable."""
    try:
        text = (pid_dir / "stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()
    try:
        return fields[0], int(fields[2])
    except (IndexError, ValueError):
        return None


def agent_processes(pgid: int | None, run_id: str, root: Path) -> list[int]:
    """Live processes of this run's agent (leader and children), proven by environment.

    With no recorded process group (the orchestrator died between starting the agent
    and recording its pid) the environment alone proves it: it names this run and root.
    """
    if not PROC.is_dir():
        return []
    marks = {f"PHASE_GOLEM_RUN_ID={run_id}".encode(), f"PHASE_GOLEM_ROOT={root}".encode()}
    found: list[int] = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat_fields(entry)
        if stat is None or (pgid is not None and stat[1] != pgid) or stat[0] == "Z":
            continue
        try:
            environ = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue  # not readable: not provably ours, so left alone
        if marks <= environ:
            found.append(int(entry.name))
    return found


def stop_processes(pids: list[int], grace: float = 2.0) -> None:
    """TERM the given processes, then KILL those still there after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        if sig == signal.SIGKILL:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    stat = _stat_fields(PROC / str(pid))
    return stat is not None and stat[0] != "Z"
