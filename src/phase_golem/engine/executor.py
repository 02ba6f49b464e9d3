"""Execute one claimed run: start it, build its prompt, run its agent, complete it."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

from phase_golem.agents.base import AgentAdapter, AgentRequest, StreamInfo
from phase_golem.agents.registry import adapter_for
from phase_golem.agents.runner import AgentOutcome
from phase_golem.clock import utc_now
from phase_golem.config import resolve_workflow_path
from phase_golem.domain.endings import EndingKind, Verdict
from phase_golem.domain.events import EventKind
from phase_golem.domain.items import (
    Item,
    ItemStatus,
    format_timestamp,
    touch,
)
from phase_golem.domain.pipelines import PhaseConfig
from phase_golem.domain.redaction import redact_text
from phase_golem.domain.runs import (
    EndedElsewhere,
    ErrorClass,
    Holder,
    Mutation,
    Run,
    RunKind,
    RunRuleError,
    Step,
    advance_step,
)
from phase_golem.engine.completion import Completion, complete_run, phase_config
from phase_golem.engine.context import (
    EngineContext,
    idempotency_key,
    ours,
    run_directory,
    timeout_seconds,
)
from phase_golem.engine.files import append_worklog, change_folder
from phase_golem.engine.interruptions import block_item, end_interrupted
from phase_golem.engine.leases import leased
from phase_golem.engine.offloop import see_through, settle_then_cancel
from phase_golem.engine.owed import record_change
from phase_golem.engine.preflight import phase_agent
from phase_golem.engine.prompts import PromptContext, build_phase_prompt, build_triage_prompt
from phase_golem.engine.reconcile import Reconciliation
from phase_golem.engine.side_effects import check_side_effect, reconcile_uncertain
from phase_golem.engine.workspaces import (
    Workspace,
    WorkspaceChange,
    measure_change,
    prepare_workspace,
    run_change,
    save_manifest,
)
from phase_golem.faults import fault_of, once_more_if_lost
from phase_golem.store import Transaction
from phase_golem.workspace.git import GitError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Prepared:
    run: Run
    item: Item
    request: AgentRequest
    workspace: Workspace


def _runnable(tx: Transaction, run_id: str, holder: Holder) -> tuple[Run, Item]:
    """The claimed run and its item, if the run is still ours and its item may go on."""
    run = tx.get_run(run_id)
    if run is None:
        raise LookupError(f"no run {run_id}")
    holder.check(run)  # its lease ran out before it started, and another worker ended it
    item = tx.require_item(run.item_id)
    if item.archived or item.status in (ItemStatus.BLOCKED, ItemStatus.DONE):
        raise NotRunnable(f"{item.id} is {item.status.value}; run {run.id} is dropped")
    return run, item


def _workspace(ctx: EngineContext, run_id: str) -> Workspace:
    """The run's tree and before-snapshot, found outside any transaction (it runs git)."""
    with ctx.store.reader() as tx:
        run, item = _runnable(tx, run_id, ours(ctx))
    phase = phase_config(ctx.settings, item, run)
    return prepare_workspace(
        ctx.root, ctx.settings, item, run, phase, ctx.base_branch, ctx.current_tree
    )


def _start(ctx: EngineContext, run_id: str, workspace: Workspace) -> _Prepared:
    """Mark the run started and build its prompt from the state it starts from."""
    settings = ctx.settings
    with ctx.store.transaction() as tx:
        run, item = _runnable(tx, run_id, ours(ctx))
        previous_failure = None
        if run.retry_of is not None:
            earlier = tx.get_run(run.retry_of)
            if earlier is not None and earlier.error:
                previous_failure = f"({earlier.error_class or 'error'}) {earlier.error}"
        woken = None
        if item.wake_at is not None:
            woken = (
                f"You asked to come back later; it is now past {item.wake_at}, so this phase "
                "runs again. Pick up where you left off."
            )
            item = touch(item, tx.now, wake_at=None)
            tx.save_item(item, EventKind.ITEM_UPDATED, {"woken": True, "run_id": run.id})
        phase = phase_config(settings, item, run)
        agent = phase_agent(settings, phase)
        model = (phase.model if phase is not None else None) or settings.agent.model
        snapshot = workspace.snapshot
        key = run.idempotency_key or idempotency_key(item.id, run.phase, run.visit, snapshot.id)
        started = advance_step(run, Step.STARTED).replace(
            started_at=format_timestamp(tx.now),
            agent=agent.value,
            model=model,
            snapshot_before=snapshot.id,
            idempotency_key=key,
            # Recorded before the agent starts: after a crash we know it may have acted.
            mutation=Mutation.IN_FLIGHT if run.side_effect else run.mutation,
        )
        tx.save_run(
            started,
            EventKind.RUN_STARTED,
            {"agent": agent.value, "model": model, "snapshot_before": snapshot.id},
        )
        if workspace.freshness == "stale":  # `ignore` or `warn` let it run; the ledger says so
            tx.append_event(
                EventKind.ITEM_STALE,
                item_id=item.id,
                run_id=run.id,
                data={"anchor": item.last_phase_commit, "ran_anyway": True},
            )
        anchored = _anchor(item, run, workspace, tx.now)
        if anchored != item:
            tx.save_item(anchored, EventKind.ITEM_UPDATED, {"run_id": run.id, "anchor": True})
            item = anchored
        # The triage prompt lists the backlog: read from the snapshot, never the table.
        backlog = tx.snapshot().items() if run.kind is RunKind.TRIAGE else []
    save_manifest(run_directory(ctx.root, run.id), snapshot)
    result_file = run_directory(ctx.root, run.id) / "result.json"
    context = PromptContext(previous_failure, woken, started.idempotency_key)
    if run.kind is RunKind.TRIAGE:
        prompt = build_triage_prompt(item, backlog, settings.pipelines, result_file, context)
    else:
        pipeline = settings.pipeline(item.pipeline_type)
        if pipeline is None or phase is None:
            raise LookupError(f"{item.id}: phase {run.phase} of {item.effective_pipeline} is gone")
        workflows = [resolve_workflow_path(w, ctx.base_dir) for w in phase.workflows]
        folder = change_folder(workspace.workdir, item)
        prompt = build_phase_prompt(
            item, run.phase, pipeline, workflows, folder, result_file, context
        )
    request = agent_request(ctx, started, item, prompt, workspace.workdir)
    return _Prepared(started, item, request, workspace)


def _anchor(item: Item, run: Run, workspace: Workspace, now: datetime) -> Item:
    """Phase Golem's staleness anchor: HEAD at the start of every phase (and the branch)."""
    if run.kind is not RunKind.PHASE:
        return item
    changes: dict[str, object] = {}
    if workspace.snapshot.head is not None and item.last_phase_commit != workspace.snapshot.head:
        changes["last_phase_commit"] = workspace.snapshot.head
    if workspace.branch is not None and item.branch != workspace.branch:
        changes["branch"] = workspace.branch
    return touch(item, now, **changes) if changes else item


def _block_stale(tx: Transaction, run: Run, item: Item, reason: str) -> None:
    end_interrupted(tx, run, EndingKind.STALE, reason, data={"stale": True})


def agent_request(
    ctx: EngineContext, run: Run, item: Item, prompt: str, workdir: Path | None = None
) -> AgentRequest:
    """The invocation of this run's agent; its files live in the run's directory."""
    return AgentRequest(
        run_id=run.id,
        item_id=item.id,
        phase=run.phase,
        attempt=run.attempt,
        prompt=prompt,
        run_dir=run_directory(ctx.root, run.id),
        cwd=workdir or ctx.root,
        timeout_seconds=timeout_seconds(ctx, item, run),
        model=run.model,
        idempotency_key=run.idempotency_key,
        extra_env={"PHASE_GOLEM_ITEM_TITLE": item.title, "PHASE_GOLEM_ROOT": str(ctx.root)},
        pass_env=ctx.settings.agent.pass_env,
    )


def adapter_of(ctx: EngineContext, phase: PhaseConfig | None) -> AgentAdapter:
    return adapter_for(
        phase_agent(ctx.settings, phase),
        ctx.settings.agent,
        ctx.base_dir,
        root=ctx.root,
        base_branch=ctx.base_branch,
        merge_strategy=ctx.settings.execution.merge_strategy,
        remote=ctx.settings.execution.remote,
    )


def _record_pid(ctx: EngineContext, run_id: str, pid: int) -> None:
    def record() -> None:
        with ctx.store.transaction() as tx:
            run = tx.get_run(run_id)
            if run is not None and run.is_active:
                host = ctx.host
                here = run.replace(pid=pid, host_id=host.host_id, boot_id=host.boot_id)
                tx.save_run(here, EventKind.RUN_UPDATED, {"pid": pid, "host_id": host.host_id})

    once_more_if_lost(record, lambda: True)  # the same pid again, if it had committed


def cancel_run(ctx: EngineContext, run_id: str, why: str = "stop requested") -> Completion | None:
    """The run ends `cancelled` and its item stays exactly where it was.

    Except a side-effect phase whose agent had started: stopped mid-action it may or may
    not have acted, so its reconcile check decides — happened: the run completes (and its
    completion is returned); not happened: cancelled, safe to run again — and without a
    check, or when it cannot tell, it ends `paused:indeterminate` for a human to resolve.
    """
    reconciled = check_side_effect(ctx.store, ctx.settings, ctx.root, run_id)
    if reconciled is not None and reconciled.verdict is Verdict.HAPPENED:
        stopped = AgentOutcome(
            None, ErrorClass.CRASHED, f"stopped while it ran ({why})", StreamInfo()
        )
        try:
            return complete_run(
                ctx.store, ctx.settings, run_id, stopped, reconciled, holder=ours(ctx)
            )
        except RunRuleError:
            return None  # it ended meanwhile
    with ctx.store.transaction() as tx:
        run = tx.get_run(run_id)
        if run is None or not ours(ctx).holds(run):
            return None  # ended, or taken over by a worker that adopted its agent
        uncertain = f"it was stopped while it ran ({why})"
        end_interrupted(
            tx, run, EndingKind.CANCELLED, why, reconciled=reconciled, uncertain=uncertain
        )
    return None


def fail_internally(ctx: EngineContext, run_id: str, error: BaseException) -> bool:
    """A bug of ours in a run: it ends `failed:internal`, its item blocks; True if it did."""
    message = redact_text(f"internal error: {error!r}")
    with ctx.store.transaction() as tx:
        run = tx.get_run(run_id)
        if run is None:
            return False
        if run.is_active:
            if not ours(ctx).holds(run):
                return False  # a worker that adopted it ends it
            return end_interrupted(tx, run, EndingKind.INTERNAL, message, data={"error": message})
        item = tx.get_item(run.item_id)
        if item is None or _moved_on(tx, run):
            return False
        return block_item(tx, item, message, None, run)


def _moved_on(tx: Transaction, run: Run) -> bool:
    """Another worker ended the run meanwhile (its lease had run out) and its item has a
    newer run queued or at work: the item is fine, and blocking it would stop that run."""
    return any(
        other.item_id == run.item_id and other.id != run.id and other.is_active
        for other in tx.snapshot().runs_by_id.values()
    )


class NotRunnable(Exception):
    """The item changed under a queued run (blocked, done, closed): the run is dropped."""


def _prepare(ctx: EngineContext, run_id: str) -> _Prepared | Completion | NotRunnable:
    """Everything before the agent starts (git, the start transaction, the prompt): in a
    worker thread, so many runs start at once without holding up the loop."""
    try:
        workspace = _workspace(ctx, run_id)
        if workspace.stale is not None:
            return stale_completion(ctx, run_id, workspace.stale)
        # A start cut off midway (a restarted server) rolled back: the run is still claimed.
        start = partial(_start, ctx, run_id, workspace)
        return once_more_if_lost(start, partial(_live, ctx, run_id, Step.CLAIMED))
    except NotRunnable as exc:
        cancel_run(ctx, run_id, str(exc))
        return exc
    except (LookupError, GitError) as exc:
        outcome = AgentOutcome(None, ErrorClass.INTERNAL, str(exc), StreamInfo())
        return complete_run(
            ctx.store, ctx.settings, run_id, outcome, workdir=ctx.root, holder=ours(ctx)
        )


async def execute_run(ctx: EngineContext, run_id: str) -> Completion:
    """Run one claimed run to its completion; a cancel leaves the item untouched."""
    prepared = await settle_then_cancel(_prepare, ctx, run_id)
    if isinstance(prepared, NotRunnable):
        raise asyncio.CancelledError
    if isinstance(prepared, Completion):
        return prepared
    phase = phase_config(ctx.settings, prepared.item, prepared.run)
    adapter = adapter_of(ctx, phase)
    workspace = prepared.workspace
    ctx.trees.enter(workspace.tree, run_id)
    try:
        async with leased(ctx.store, run_id, ctx.worker_id, ctx.settings.execution):
            outcome = await ctx.agent_runner(
                adapter,
                prepared.request,
                max_result_bytes=ctx.settings.execution.max_result_bytes,
                on_start=lambda pid: _record_pid(ctx, run_id, pid),
            )
            reconciled = await reconcile_uncertain(
                ctx.store, ctx.settings, ctx.root, run_id, outcome
            )
    except EndedElsewhere:
        # Its lease ran out and another worker ended it; its agent is stopped. What the agent
        # wrote stays in this tree as the visit's leftovers (a retry here takes them).
        await see_through(_leave_unfinished, ctx, prepared)
        raise
    except asyncio.CancelledError:
        completed = cancel_run(ctx, run_id)
        _leave_unfinished(ctx, prepared)  # what it touched is on record
        item = prepared.item
        outcome_text, message = ("Cancelled", "Shutdown requested")
        if completed is not None:  # a stopped side effect its check says happened
            outcome_text, message = completed.worklog_outcome, completed.message
        append_worklog(
            ctx.root, utc_now(), item.id, item.title, prepared.run.phase, outcome_text, message
        )
        raise
    except Exception as exc:  # a bug of ours: the item blocks, the trace goes to the ledger
        fault = fault_of(exc)
        if fault is not None:  # the machine, not the run: stop, recover it at the next start
            raise fault from None
        log.exception("run %s failed inside phase-golem", run_id)
        outcome = AgentOutcome(None, ErrorClass.INTERNAL, f"internal error: {exc!r}", StreamInfo())
        reconciled = None
    ctx.trees.finish(workspace.tree, run_id)
    try:
        return await see_through(_complete, ctx, prepared, outcome, reconciled)
    finally:
        ctx.trees.leave(workspace.tree, run_id)  # gone already, unless the thread failed
        ctx.trees.settled(workspace.tree, run_id)  # its completion is on record (or failed)


def _complete(
    ctx: EngineContext,
    prepared: _Prepared,
    outcome: AgentOutcome,
    reconciled: Reconciliation | None,
) -> Completion:
    """After the agent: what it changed (git), then the complete transaction (a thread)."""
    change = _measured(ctx, prepared)
    run_id = prepared.run.id

    def complete() -> Completion:
        workdir = prepared.workspace.workdir
        return complete_held(ctx, prepared.run, prepared.item, outcome, reconciled, change, workdir)

    # A completion is the one thing an agent's work comes down to: not lost to a server
    # restarted under its transaction (which rolled back if the run is still live).
    return once_more_if_lost(complete, lambda: _live(ctx, run_id))


def _live(ctx: EngineContext, run_id: str, step: Step | None = None) -> bool:
    """The run is still active (and at `step`): what a lost transaction did rolled back."""
    with ctx.store.reader() as tx:
        run = tx.get_run(run_id)
    return run is not None and run.is_active and (step is None or run.step is step)


def complete_held(
    ctx: EngineContext,
    run: Run,
    item: Item,
    outcome: AgentOutcome,
    reconciled: Reconciliation | None,
    change: WorkspaceChange | None,
    workdir: Path,
) -> Completion:
    """Complete a run this worker holds (ran or adopted). Refused because another worker
    ended it after our lease ran out, what it changed stays in the tree as leftovers."""
    try:
        return complete_run(
            ctx.store, ctx.settings, run.id, outcome, reconciled, change=change,
            workdir=workdir, holder=ours(ctx),
        )  # fmt: skip
    except EndedElsewhere:
        if change is not None:
            record_unfinished(ctx, run, item, change)
        raise


def _leave_unfinished(ctx: EngineContext, prepared: _Prepared) -> None:
    """The run leaves its tree without a completion: what it touched becomes leftovers."""
    try:
        record_unfinished(ctx, prepared.run, prepared.item, _left(ctx, prepared))
    finally:
        ctx.trees.settled(prepared.workspace.tree, prepared.run.id)


def _left(ctx: EngineContext, prepared: _Prepared) -> WorkspaceChange:
    """The run leaves its tree: what it changed there, and whether it had company. It
    stays settling (its group's batch waits) until the caller has recorded the change."""
    ctx.trees.finish(prepared.workspace.tree, prepared.run.id)
    return _measured(ctx, prepared)


def _measured(ctx: EngineContext, prepared: _Prepared) -> WorkspaceChange:
    """The after-snapshot first, and only then the run leaves its tree: a run that entered
    before that snapshot could have written what it shows, so the two overlapped."""
    workspace = prepared.workspace
    after = ctx.fresh_tree(workspace.workdir)
    overlapped = ctx.trees.leave(workspace.tree, prepared.run.id, settling=True)
    return measure_change(
        ctx.root, workspace.workdir, prepared.item, workspace.snapshot, overlapped, lambda _: after
    )


def record_unfinished(ctx: EngineContext, run: Run, item: Item, change: WorkspaceChange) -> None:
    """A run that ended without a result: what it touched becomes its leftovers."""
    if not change.touched:
        return
    with ctx.store.transaction() as tx:
        record_change(tx, change.tree, run_change(run, item, change, succeeded=False))


def stale_completion(ctx: EngineContext, run_id: str, reason: str) -> Completion:
    """A destructive phase whose prior phase's commit left history: it never starts."""
    with ctx.store.transaction() as tx:
        run, item = _runnable(tx, run_id, ours(ctx))
        _block_stale(tx, run, item, reason)
        ended = tx.get_run(run_id) or run
    return Completion(ended, item.id, item.title, "Blocked", reason, blocked=True)
