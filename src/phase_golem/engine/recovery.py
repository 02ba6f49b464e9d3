"""Runs left active by an orchestrator that died (DESIGN §6 "Side effects and crashes").

The process lock guarantees no other orchestrator owns them. For each such run:
- never started (queued): it stays queued;
- its agent is still alive on this host, or already wrote its result: it is *adopted*:
  we wait for the agent to exit and complete the run from its result file, so finished
  work is never thrown away and a retry never races an orphan;
- a side-effect phase whose agent is gone: it may have acted, so it is not retried
  blindly; the run ends `paused:indeterminate` and the item waits for a decision;
- anything else: it ends `crashed` and is retried as a new run with the same attempt
  number (the crash was ours, not the agent's) and the same idempotency key.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from phase_golem.domain.events import EventKind
from phase_golem.domain.items import BlockedType, ItemStatus, block, format_timestamp
from phase_golem.domain.runs import ErrorClass, Mutation, Run, RunStatus, Step, finish
from phase_golem.engine.completion import indeterminate_reason, queue_retry
from phase_golem.store import Store, Transaction


def agent_alive(run: Run) -> bool:
    """Is the process recorded for this run still running *this run's* agent?"""
    if run.pid is None:
        return False
    proc = Path(f"/proc/{run.pid}")
    try:
        environ = (proc / "environ").read_bytes()
        state = (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False  # gone, or a zombie nobody has reaped yet: either way it is done
    except (OSError, IndexError):
        # No /proc to read (or not ours): fall back to "is the group there at all".
        try:
            os.killpg(run.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    return state != "Z" and f"PHASE_GOLEM_RUN_ID={run.id}".encode() in environ.split(b"\0")


def stop_leftovers(pgid: int | None) -> None:
    """Kill what is left of an agent's process group (its leader already gone)."""
    if pgid is None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return


def _side_effect_gone(tx: Transaction, run: Run) -> None:
    reason = indeterminate_reason(run, "the orchestrator stopped while it ran")
    stamp = format_timestamp(tx.now)
    paused = finish(
        run,
        RunStatus.PAUSED_INDETERMINATE,
        stamp,
        error=reason,
        error_class=ErrorClass.CRASHED,
        mutation=Mutation.INDETERMINATE,
    )
    tx.save_run(paused, EventKind.RUN_INDETERMINATE, {"recovered": True})
    item = tx.get_item(run.item_id)
    if (
        item is not None
        and not item.archived
        and item.status
        not in (
            ItemStatus.BLOCKED,
            ItemStatus.DONE,
        )
    ):
        blocked = block(item, reason, tx.now, BlockedType.DECISION)
        tx.save_item(blocked, EventKind.ITEM_TRANSITION, {"run_id": run.id})


def recover_interrupted_runs(store: Store, root: Path) -> tuple[list[str], list[Run]]:
    """(runs retried or paused, runs to adopt); see the module docstring."""
    recovered: list[str] = []
    adopt: list[Run] = []
    with store.transaction() as tx:
        for run in tx.list_runs(statuses=[RunStatus.ACTIVE]):
            if run.step is Step.QUEUED:
                continue
            result_file = root / ".phase-golem" / "runs" / run.id / "result.json"
            if run.step is Step.STARTED and (agent_alive(run) or result_file.exists()):
                adopt.append(run)
                continue
            stop_leftovers(run.pid)
            recovered.append(run.id)
            if run.side_effect and run.step is Step.STARTED:
                _side_effect_gone(tx, run)
                continue
            crashed = finish(
                run,
                RunStatus.CRASHED,
                format_timestamp(tx.now),
                error="the orchestrator stopped before this run finished",
                error_class=ErrorClass.CRASHED,
            )
            tx.save_run(crashed, EventKind.RUN_FINISHED, {"recovered": True})
            queue_retry(tx, crashed, attempt=run.attempt, not_before=None, reason="recovered")
    return recovered, adopt
