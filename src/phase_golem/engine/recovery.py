"""Runs left active by an orchestrator that died (DESIGN §6 "Side effects and crashes").

The process lock guarantees no other orchestrator owns them. For each such run:
- never started (queued): it stays queued;
- its agent is still alive on this host (proven by its environment, not just its pid),
  or already wrote its result: it is *adopted*:
  we wait for the agent to exit and complete the run from its result file, so finished
  work is never thrown away and a retry never races an orphan;
- a side-effect phase whose agent is gone: it may have acted, so it is not retried
  blindly; the run ends `paused:indeterminate` and the item waits for a decision;
- anything else: it ends `crashed` and is retried as a new run with the same attempt
  number (the crash was ours, not the agent's) and the same idempotency key.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from phase_golem.agents.orphans import agent_processes, stop_processes
from phase_golem.agents.process import ProcessExit
from phase_golem.agents.runner import collect_outcome
from phase_golem.clock import utc_now
from phase_golem.domain.events import EventKind
from phase_golem.domain.items import (
    format_timestamp,
    parse_timestamp,
)
from phase_golem.domain.runs import ErrorClass, Run, RunStatus, Step, finish
from phase_golem.engine.commits import remember_crash_leftovers, tree_key
from phase_golem.engine.completion import (
    Completion,
    complete_run,
    pause_indeterminate,
    phase_config,
    queue_retry,
)
from phase_golem.engine.executor import (
    EngineContext,
    adapter_of,
    agent_request,
    cancel_run,
    record_unfinished,
    run_directory,
    timeout_seconds,
)
from phase_golem.engine.workspaces import (
    WorkspaceChange,
    change_since_start,
    run_change,
    run_workdir,
)
from phase_golem.store import Store


def agent_pids(run: Run, root: Path) -> list[int]:
    return agent_processes(run.pid, run.id, root)


def recover_interrupted_runs(store: Store, root: Path) -> tuple[list[str], list[Run]]:
    """(runs retried or paused, runs to adopt); see the module docstring."""
    recovered: list[str] = []
    adopt: list[Run] = []
    with store.transaction() as tx:
        for run in tx.list_runs(statuses=[RunStatus.ACTIVE]):
            if run.step is Step.QUEUED:
                continue
            result_file = run_directory(root, run.id) / "result.json"
            leftovers = agent_pids(run, root)
            if run.step is Step.STARTED and (leftovers or result_file.exists()):
                adopt.append(run)
                continue
            stop_processes(leftovers)
            recovered.append(run.id)
            if run.side_effect and run.step is Step.STARTED:
                pause_indeterminate(tx, run, "the orchestrator stopped while it ran")
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


ADOPT_POLL_SECONDS = 0.5


def record_crash_leftovers(ctx: EngineContext, run_ids: list[str]) -> None:
    """What runs that died touched stays in the tree as their leftovers (DESIGN §8)."""
    for run_id in run_ids:
        with ctx.store.reader() as tx:
            run = tx.get_run(run_id)
            item = tx.get_item(run.item_id) if run is not None else None
        if run is None or item is None or run.started_at is None:
            continue
        directory = run_directory(ctx.root, run.id)
        change = change_since_start(
            ctx.root, ctx.settings, item, run, directory, overlapped=len(run_ids) > 1
        )
        if change is not None and change.touched:
            remember_crash_leftovers(
                ctx.store, ctx.root, change.tree, run_change(run, item, change, succeeded=False)
            )


async def adopt_run(ctx: EngineContext, run_id: str, *, overlapped: bool = False) -> Completion:
    """Finish a run whose agent outlived the orchestrator that started it (DESIGN §6).

    Waits (polling twice a second: the agent is not our child) for the agent to exit, but
    no longer than its phase timeout counted from when it started; then classifies its
    result file exactly as if we had run it.
    """
    with ctx.store.reader() as tx:
        run = tx.get_run(run_id)
        item = tx.get_item(run.item_id) if run is not None else None
    if run is None or item is None:
        raise LookupError(f"no run {run_id} to adopt")
    limit = timeout_seconds(ctx, item, run)
    started = parse_timestamp(run.started_at) if run.started_at else utc_now()
    deadline = started + timedelta(seconds=limit)
    timed_out = False
    workdir = run_workdir(ctx.root, ctx.settings, item, run)
    tree = tree_key(ctx.root, workdir)
    ctx.trees.enter(tree, run_id)  # runs we start meanwhile share its tree

    def left() -> WorkspaceChange | None:
        shared = ctx.trees.leave(tree, run_id) or overlapped
        directory = run_directory(ctx.root, run_id)
        return change_since_start(ctx.root, ctx.settings, item, run, directory, overlapped=shared)

    try:
        while pids := agent_pids(run, ctx.root):
            if utc_now() >= deadline:
                stop_processes(pids)
                timed_out = True
                break
            await asyncio.sleep(ADOPT_POLL_SECONDS)
    except asyncio.CancelledError:
        stop_processes(agent_pids(run, ctx.root))
        cancel_run(ctx, run_id)
        unfinished = left()
        if unfinished is not None:
            record_unfinished(ctx, run, item, unfinished)
        raise
    phase = phase_config(ctx.settings, item, run)
    adapter = adapter_of(ctx, phase)
    request = agent_request(ctx, run, item, prompt="", workdir=workdir)
    exit = ProcessExit(None, timed_out=timed_out)
    outcome = collect_outcome(adapter, request, exit, ctx.settings.execution.max_result_bytes)
    change = left()
    return complete_run(
        ctx.store, ctx.settings, run_id, outcome, change=change, workdir=request.cwd
    )
