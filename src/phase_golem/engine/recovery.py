"""Runs left active by an orchestrator that died (DESIGN §6 "Side effects and crashes").

At start the process lock proves that no other orchestrator owns any run, so every
claimed or started run is recovered whatever its lease says; during `run` a periodic
sweep recovers runs whose lease expired and that are not ours. For each such run:
- never started (queued): it stays queued;
- its agent is still alive on this host (proven by its environment, not just its pid),
  or already wrote its result: it is *adopted*:
  we wait for the agent to exit and complete the run from its result file, so finished
  work is never thrown away and a retry never races an orphan;
- a side-effect phase whose agent is gone may have acted, so it is never retried
  blindly: its `reconcile` check decides (happened → the phase counts as complete; not
  happened → retried), and without one, or when the check cannot tell, the run ends
  `paused:indeterminate` and the item waits for `phase-golem resolve`;
- anything else: it ends `crashed` and is retried as a new run with the same attempt
  number (the crash was ours, not the agent's) and the same idempotency key.
A sweep reads the process table once. The plain crashes of a sweep (agent gone, no side
effect in flight) end in one transaction together, and every other run in its own, so a
crash during recovery loses nothing: the next start simply recovers what is still active.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from phase_golem.agents.base import StreamInfo
from phase_golem.agents.orphans import (
    AgentProcess,
    AgentTable,
    agent_processes,
    still_running,
    stop_processes,
)
from phase_golem.agents.process import ProcessExit
from phase_golem.agents.runner import AgentOutcome, collect_outcome
from phase_golem.clock import utc_now
from phase_golem.domain.endings import EndingKind, Verdict, may_have_acted
from phase_golem.domain.events import EventKind
from phase_golem.domain.hosts import Host, died_with_its_boot, may_adopt, same_host
from phase_golem.domain.items import (
    format_timestamp,
    parse_timestamp,
)
from phase_golem.domain.pipelines import Settings
from phase_golem.domain.runs import (
    EndedElsewhere,
    ErrorClass,
    Holder,
    Run,
    RunRuleError,
    RunStatus,
    Step,
)
from phase_golem.engine.completion import Completion, complete_run, phase_config
from phase_golem.engine.context import EngineContext, ours, run_directory, timeout_seconds
from phase_golem.engine.executor import (
    adapter_of,
    agent_request,
    cancel_run,
    complete_held,
    record_unfinished,
)
from phase_golem.engine.interruptions import end_interrupted
from phase_golem.engine.leases import lease_expired, leased
from phase_golem.engine.owed import remember_leftovers_in
from phase_golem.engine.reconcile import Reconciliation
from phase_golem.engine.side_effects import check_side_effect, reconcile_uncertain
from phase_golem.engine.trees import tree_key, tree_path
from phase_golem.engine.workspaces import (
    TreeSnapshots,
    WorkspaceChange,
    change_since_start,
    run_change,
    run_workdir,
)
from phase_golem.host import this_host
from phase_golem.store import Store, Transaction

LOST = "the orchestrator stopped before this run finished"


def agent_pids(run: Run, root: Path, table: AgentTable | None = None) -> list[int]:
    return agent_processes(run.pid, run.id, root, table)


@dataclass
class Recovered:
    """What a recovery did: runs it retried, reconciled or paused; runs whose agent it
    found alive (to adopt); and completions its reconcile checks made, which the caller
    finishes like any other (worklog line, commit)."""

    runs: list[str] = field(default_factory=list)
    adopt: list[Run] = field(default_factory=list)
    completed: list[Completion] = field(default_factory=list)
    # The agent processes the sweep found for the runs to adopt (no second /proc scan).
    agents: dict[str, list[AgentProcess]] = field(default_factory=dict)
    # Runs to adopt that shared their tree with finished runs whose commit waits for them.
    shared: set[str] = field(default_factory=set)
    # Runs left alone for now: their agent still runs under another clone on this host.
    waiting: list[str] = field(default_factory=list)

    def add(self, run: Run, outcome: Run | Completion | None) -> None:
        if isinstance(outcome, Run):
            self.adopt.append(outcome)
            return
        self.runs.append(run.id)
        if outcome is not None:
            self.completed.append(outcome)


def recover_run(
    store: Store,
    settings: Settings,
    root: Path,
    run: Run,
    table: AgentTable | None = None,
    host: Host | None = None,
) -> Run | Completion | None:
    """Recover one interrupted run: the run itself when it must be adopted instead, the
    completion when its reconcile check said its side effect happened, else None.

    `table` is the sweep's one read of the process table (read here when not given).
    """
    host = host or this_host()
    if _to_adopt(run, root, table, host):
        return run
    may_have_acted = _may_have_acted(run)
    reconciled = check_side_effect(store, settings, root, run.id) if may_have_acted else None
    change = _change_so_far(store, settings, root, run) if same_host(run, host) else None
    if reconciled is not None and reconciled.verdict is Verdict.HAPPENED:
        lost = AgentOutcome(None, ErrorClass.CRASHED, LOST, StreamInfo())
        workdir = root / change.tree if change is not None else None
        try:
            held = Holder.of_lapsed(run)  # unless a worker adopted it while the check ran
            return complete_run(
                store, settings, run.id, lost, reconciled, change=change, workdir=workdir,
                holder=held,
            )  # fmt: skip
        except RunRuleError:
            return None  # its owner finished it while the check ran
    with store.transaction() as tx:
        if _end_lost_run(tx, run, reconciled):
            _record_leftovers(tx, root, run, change)
    return None


def _to_adopt(run: Run, root: Path, table: AgentTable | None, host: Host) -> bool:
    """Its agent lives, or already wrote its result: adopt it. Otherwise whatever is left
    of a run that never got going is stopped. Only on the agent's own host and boot: a pid
    of another host or of an earlier boot names nothing of ours (DESIGN §14)."""
    if not may_adopt(run, host):
        return False
    result_file = run_directory(root, run.id) / "result.json"
    leftovers = agent_pids(run, root, table)
    if run.step is Step.STARTED and (leftovers or os.path.lexists(result_file)):
        return True
    stop_processes(leftovers)
    return False


def _may_have_acted(run: Run) -> bool:
    return may_have_acted(run.side_effect, run.mutation)


def _end_lost_run(tx: Transaction, run: Run, reconciled: Reconciliation | None) -> bool:
    """Inside a transaction: a run whose agent is gone ends crashed and is retried, or —
    a side effect that may have acted and no check could tell — waits for a human.
    False when someone else ended it first."""
    current = tx.get_run(run.id)
    if current is None or not Holder.of_lapsed(run).holds(current):
        return False  # ended, or a worker took it over since it was read (adopted it)
    uncertain = "the orchestrator stopped while it ran"
    data = {"recovered": True}
    end_interrupted(
        tx, current, EndingKind.LOST, LOST, reconciled=reconciled, uncertain=uncertain, data=data
    )
    return True


def _record_leftovers(
    tx: Transaction, root: Path, run: Run, change: WorkspaceChange | None
) -> None:
    """In the transaction that ends the run: what it touched stays as its leftovers, so
    no kill can land between the two (a crashed run whose files nobody owns would make
    every later start refuse the "uncommitted" tree)."""
    item = tx.get_item(run.item_id)
    if change is None or not change.touched or item is None:
        return
    lost = run_change(run, item, change, succeeded=False)
    remember_leftovers_in(tx, change.tree, tree_path(root, change.tree), [lost])


def recover_all(
    store: Store,
    settings: Settings,
    root: Path,
    runs: list[Run],
    table: AgentTable,
    host: Host | None = None,
) -> Recovered:
    """Recover a sweep's runs: those to adopt are named, side effects that may have acted
    get their check one by one, and all the plain crashes end in ONE transaction (atomic,
    so a crash meanwhile still loses nothing; one commit instead of one per run)."""
    host = host or this_host()
    recovered = Recovered()
    plain: list[Run] = []
    for run in sorted(runs, key=lambda r: r.id):
        if _agent_elsewhere(run, table, host):
            recovered.waiting.append(run.id)  # recovered once that agent has exited
            continue
        if _to_adopt(run, root, table, host):
            recovered.add(run, run)
        elif _may_have_acted(run):
            recovered.add(run, recover_run(store, settings, root, run, table, host))
        else:
            plain.append(run)
    if plain:
        # Measured before the transaction (git and the file system are slow), recorded in it.
        snapshots = TreeSnapshots()  # every run of a tree measured against one snapshot
        changes = {
            r.id: _change_so_far(store, settings, root, r, len(runs) > 1, snapshots)
            if same_host(r, host)
            else None  # another host's run touched another machine's clone, not this tree
            for r in plain
        }
        with store.transaction() as tx:
            for run in plain:
                if _end_lost_run(tx, run, None):
                    _record_leftovers(tx, root, run, changes[run.id])
        for run in plain:
            recovered.add(run, None)
    recovered.runs.sort()
    recovered.agents = {run.id: table.of(run.id, run.pid) for run in recovered.adopt}
    return recovered


def _change_so_far(
    store: Store,
    settings: Settings,
    root: Path,
    run: Run,
    overlapped: bool = True,
    snapshots: TreeSnapshots | None = None,
) -> WorkspaceChange | None:
    with store.reader() as tx:
        item = tx.get_item(run.item_id)
    if item is None or run.started_at is None:
        return None
    directory = run_directory(root, run.id)
    measure = snapshots if snapshots is not None else TreeSnapshots()
    return change_since_start(
        root, settings, item, run, directory, overlapped=overlapped, snapshots=measure
    )


def _agent_elsewhere(run: Run, table: AgentTable, host: Host) -> bool:
    """Its agent still runs on this host, under another clone's root: a worker of that
    clone died and left it. Neither ours to adopt nor dead: a retry now would race it."""
    return may_adopt(run, host) and table.lives_elsewhere(run.id, run.pid)


def orphaned(run: Run, now: datetime, host: Host, *, shared: bool) -> bool:
    """A claimed or started run nobody is working on. In a store only we use (the process
    lock proves it) that is every one; in a shared store only those whose lease expired,
    or that this host started in an earlier boot: anything else is a live worker's."""
    if run.step is Step.QUEUED or not run.is_active:
        return False
    return not shared or lease_expired(run, now) or died_with_its_boot(run, host)


def recover_interrupted_runs(
    store: Store, settings: Settings, root: Path, host: Host | None = None
) -> Recovered:
    """At start: every run left claimed or started by an orchestrator that is gone."""
    host = host or this_host()
    with store.reader() as tx:
        now = tx.now  # the store's clock
    shared = store.shared
    interrupted = [r for r in store.snapshot().runs() if orphaned(r, now, host, shared=shared)]
    if not interrupted:
        return Recovered()
    return recover_all(store, settings, root, interrupted, AgentTable(root), host)


def blocked_by(store: Store, run_ids: Collection[str]) -> set[str]:
    """Items that recovered runs left waiting for a human (an uncertain side effect)."""
    with store.reader() as tx:
        runs = [tx.get_run(run_id) for run_id in run_ids]
    return {r.item_id for r in runs if r is not None and r.status is RunStatus.PAUSED_INDETERMINATE}


def sweep_expired_leases(
    store: Store,
    settings: Settings,
    root: Path,
    ours: Collection[str],
    host: Host | None = None,
) -> Recovered:
    """During `run`: recover the runs whose lease expired (or whose boot ended on this
    host) and that we are not running."""
    host = host or this_host()
    with store.reader() as tx:
        now = tx.now  # the store's clock
    expired = [
        r
        for r in store.snapshot().runs()
        if r.id not in ours and orphaned(r, now, host, shared=True)
    ]
    if not expired:
        return Recovered()
    return recover_all(store, settings, root, expired, AgentTable(root), host)


def take_over(ctx: EngineContext, seen: list[Run]) -> dict[str, Run | None]:
    """Adopted runs become ours: our worker id and a fresh lease, on the record, for all
    of them in one transaction (a restart adopts every live agent at once). A run another
    worker ended or took over since it was `seen` stays as it is now (not ours)."""
    taken: dict[str, Run | None] = {}
    with ctx.store.transaction() as tx:
        lease = format_timestamp(tx.now + timedelta(seconds=ctx.settings.execution.lease_seconds))
        for run in seen:
            current = tx.get_run(run.id)
            if current is None or not Holder.of_lapsed(run).holds(current):
                taken[run.id] = current
                continue
            mine = current.replace(worker_id=ctx.worker_id, lease_until=lease)
            tx.save_run(mine, EventKind.RUN_UPDATED, {"adopted_by": ctx.worker_id})
            taken[run.id] = mine
    return taken


ADOPT_POLL_SECONDS = 0.5


def _agent_of(run: Run, root: Path) -> list[AgentProcess]:
    return AgentTable(root).of(run.id, run.pid)


async def adopt_run(
    ctx: EngineContext,
    run_id: str,
    *,
    overlapped: bool = False,
    agents: list[AgentProcess] | None = None,
    taken: Run | None,
) -> Completion:
    """Finish a run whose agent outlived the orchestrator that started it (DESIGN §6).

    Waits (polling twice a second: the agent is not our child) for the agent to exit, but
    no longer than its phase timeout counted from when it started; then classifies its
    result file exactly as if we had run it. `taken` is the run as `take_over` left it.
    """
    run = taken
    with ctx.store.reader() as tx:
        item = tx.get_item(run.item_id) if run is not None else None
    if run is None or item is None:
        raise LookupError(f"no run {run_id} to adopt")
    # Its owner finished it after all, or another worker adopted it first.
    ours(ctx).check(run)
    limit = timeout_seconds(ctx, item, run)
    started = parse_timestamp(run.started_at) if run.started_at else utc_now()
    deadline = started + timedelta(seconds=limit)
    timed_out = False
    workdir = run_workdir(ctx.root, ctx.settings, item, run)
    tree = tree_key(ctx.root, workdir)
    ctx.trees.enter(tree, run_id)  # runs we start meanwhile share its tree

    def left() -> WorkspaceChange | None:
        # The after-snapshot before it leaves (a run entering until then overlapped it);
        # settling until its change is on record, so no batch of its group goes without it.
        ctx.trees.finish(tree, run_id)
        after = ctx.fresh_tree(workdir) if workdir.is_dir() else None
        shared = ctx.trees.leave(tree, run_id, settling=True) or overlapped
        if after is None:
            return None
        directory = run_directory(ctx.root, run_id)
        return change_since_start(
            ctx.root,
            ctx.settings,
            item,
            run,
            directory,
            overlapped=shared,
            snapshots=lambda _: after,
        )

    try:
        async with leased(ctx.store, run_id, ctx.worker_id, ctx.settings.execution):
            processes = agents if agents is not None else _agent_of(run, ctx.root)
            processes = still_running(processes) or _agent_of(run, ctx.root)
            while processes:
                if utc_now() >= deadline:
                    stop_processes([p.pid for p in processes])
                    timed_out = True
                    break
                await asyncio.sleep(ADOPT_POLL_SECONDS)
                # The known processes are checked one by one; /proc is scanned again only
                # once they are all gone, for children that may still carry the run.
                processes = still_running(processes) or _agent_of(run, ctx.root)
            adapter = adapter_of(ctx, phase_config(ctx.settings, item, run))
            request = agent_request(ctx, run, item, prompt="", workdir=workdir)
            exit = ProcessExit(None, timed_out=timed_out)
            limit = ctx.settings.execution.max_result_bytes
            outcome = await asyncio.to_thread(collect_outcome, adapter, request, exit, limit)
            reconciled = await reconcile_uncertain(
                ctx.store, ctx.settings, ctx.root, run_id, outcome
            )
    except (asyncio.CancelledError, EndedElsewhere):
        # Stopped, or ended by another worker after our lease ran out: the agent (not our
        # child) is stopped, and what it wrote stays as the visit's leftovers.
        stop_processes(agent_pids(run, ctx.root))
        cancel_run(ctx, run_id)  # nothing when another worker ended it
        try:
            unfinished = left()
            if unfinished is not None:
                record_unfinished(ctx, run, item, unfinished)
        finally:
            ctx.trees.settled(tree, run_id)
        raise
    try:
        change = left()
        return complete_held(ctx, run, item, outcome, reconciled, change, workdir)
    finally:
        ctx.trees.settled(tree, run_id)
