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
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class AgentProcess:
    """One process proven to be a run's agent; its start time tells it from a reused pid."""

    pid: int
    pgid: int
    started: int  # clock ticks after boot (/proc/<pid>/stat field 22)


def _stat_fields(pid_dir: Path) -> tuple[str, int, int] | None:
    """(state, process group, start time) from /proc/<pid>/stat, or None when unreadable."""
    try:
        text = (pid_dir / "stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()
    try:
        return fields[0], int(fields[2]), int(fields[19])
    except (IndexError, ValueError):
        return None


_RUN_MARK = b"PHASE_GOLEM_RUN_ID="


class AgentTable:
    """Every live agent process under one root, by run id, from ONE pass over /proc.

    A recovery sweep reads the process table once and asks it about each run, instead of
    scanning /proc once per run (DESIGN §3 "Cost rules").
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.by_run: dict[str, list[AgentProcess]] = {}
        # Agents of other roots on this host (another clone's worker on the same store):
        # never ours to signal or adopt, but a run whose agent lives there is not dead.
        self.elsewhere: dict[str, list[AgentProcess]] = {}
        if not PROC.is_dir():
            return
        root_mark = f"PHASE_GOLEM_ROOT={root}".encode()
        for entry in PROC.iterdir():
            if not entry.name.isdigit():
                continue
            stat = _stat_fields(entry)
            if stat is None or stat[0] == "Z":
                continue
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
            except OSError:
                continue  # not readable: not provably ours, so left alone
            index = self.by_run if root_mark in environ else self.elsewhere
            for variable in environ:
                if variable.startswith(_RUN_MARK):
                    run_id = variable[len(_RUN_MARK) :].decode(errors="replace")
                    process = AgentProcess(int(entry.name), stat[1], stat[2])
                    index.setdefault(run_id, []).append(process)

    def of(self, run_id: str, pgid: int | None) -> list[AgentProcess]:
        """The run's live agent processes (in its recorded process group, when it has one)."""
        found = self.by_run.get(run_id, [])
        return [p for p in found if pgid is None or p.pgid == pgid]

    def lives_elsewhere(self, run_id: str, pgid: int | None) -> bool:
        """The run's agent runs here under another root (the process group it recorded)."""
        return pgid is not None and any(p.pgid == pgid for p in self.elsewhere.get(run_id, []))


def agent_processes(
    pgid: int | None, run_id: str, root: Path, table: AgentTable | None = None
) -> list[int]:
    """Live processes of this run's agent (leader and children), proven by environment.

    With no recorded process group (the orchestrator died between starting the agent
    and recording its pid) the environment alone proves it: it names this run and root.
    """
    table = table if table is not None and table.root == root else AgentTable(root)
    return [p.pid for p in table.of(run_id, pgid)]


def still_running(processes: list[AgentProcess]) -> list[AgentProcess]:
    """Those of these processes that are still the same live processes (no /proc scan)."""
    alive = []
    for process in processes:
        stat = _stat_fields(PROC / str(process.pid))
        if stat is not None and stat[0] != "Z" and stat[2] == process.started:
            alive.append(process)
    return alive


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
