"""Complete a run: in ONE transaction finish it, move its item, ingest follow-ups and
merges, and queue a retry or a backoff (DESIGN §3 step 4, §6 failure classes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from phase_golem.agents.runner import AgentOutcome
from phase_golem.domain.commits import RunChange
from phase_golem.domain.events import EventKind
from phase_golem.domain.items import (
    BlockedType,
    Item,
    ItemStatus,
    archive,
    block,
    format_timestamp,
    touch,
)
from phase_golem.domain.pipelines import ApprovalGate, PhaseConfig, Settings
from phase_golem.domain.redaction import redact, redact_text
from phase_golem.domain.results import PhaseResult, ResultCode, result_to_dict
from phase_golem.domain.runs import ErrorClass, Mutation, Run, RunKind, RunStatus, Step, finish
from phase_golem.domain.transitions import (
    Outcome,
    Resolution,
    apply_triage_result,
    attempts_exhausted_reason,
    resolve_transition,
    wake_time,
)
from phase_golem.engine.agent_pauses import agent_for_run, last_resumed, pause_agent
from phase_golem.engine.approvals import AFTER, request_approval
from phase_golem.engine.backlog_effects import ingest_follow_ups, merge_duplicates
from phase_golem.engine.commits import record_change, visit_leftovers
from phase_golem.engine.receipts import may_commit, prepare_receipt
from phase_golem.engine.reconcile import Reconciliation, Verdict
from phase_golem.engine.retries import backoff_seconds, max_attempts, queue_retry
from phase_golem.engine.workspaces import WorkspaceChange, run_change
from phase_golem.store import Store, Transaction

RETRYABLE = frozenset(
    {ErrorClass.TIMEOUT, ErrorClass.CRASHED, ErrorClass.INVALID_RESULT, ErrorClass.REPORTED_FAILED}
)
# A side-effect phase that ended like this may or may not have acted (DESIGN §6).
UNCERTAIN = frozenset({ErrorClass.TIMEOUT, ErrorClass.CRASHED, ErrorClass.INVALID_RESULT})
_WORKLOG_OUTCOMES = {
    Outcome.ADVANCED: "Complete",
    Outcome.READY: "Complete",
    Outcome.SCOPING: "Complete",
    Outcome.DONE: "Complete",
    Outcome.BLOCKED: "Blocked",
    Outcome.REPEAT: "Subphase Complete",
    Outcome.SLEEPING: "Waiting",
}


@dataclass
class Completion:
    """What one finished run did, for the run summary, the worklog and the display."""

    run: Run
    item_id: str
    title: str
    worklog_outcome: str
    message: str
    completed: bool = False
    blocked: bool = False
    exhausted: bool = False  # counts toward the circuit breaker
    retry_queued: bool = False
    follow_ups: list[str] = field(default_factory=list)
    skipped_follow_ups: list[tuple[str, str]] = field(default_factory=list)
    merged: list[tuple[str, str]] = field(default_factory=list)
    commit_summary: str | None = None
    change: RunChange | None = None  # what the run left in its tree, owed to git
    tree: str | None = None


def indeterminate_reason(run: Run, what: str) -> str:
    return (
        f"Side-effect phase {run.phase} ({run.id}) may or may not have acted: {what}. "
        "It is not retried blindly: check, then `phase-golem resolve "
        f"{run.id} --happened | --not-happened | --skip`"
    )


def pause_indeterminate(tx: Transaction, run: Run, what: str) -> None:
    """A side-effect run that may or may not have acted: paused, its item asks a human."""
    reason = indeterminate_reason(run, what)
    paused = finish(
        run,
        RunStatus.PAUSED_INDETERMINATE,
        format_timestamp(tx.now),
        error=reason,
        error_class=ErrorClass.CRASHED,
        mutation=Mutation.INDETERMINATE,
    )
    tx.save_run(paused, EventKind.RUN_FINISHED, {"outcome": "Blocked", "why": reason})
    tx.append_event(
        EventKind.RUN_INDETERMINATE, item_id=run.item_id, run_id=run.id, data={"why": reason}
    )
    item = tx.get_item(run.item_id)
    if item is not None:
        block_item(tx, item, reason, BlockedType.DECISION, run)


def reconciled_result(run: Run, what: str) -> PhaseResult:
    """What a side-effect run reports when its reconcile check (or a human) says it acted."""
    summary = f"{run.phase}: the side effect happened ({what})"
    return PhaseResult(
        item_id=run.item_id,
        phase=run.phase,
        result=ResultCode.PHASE_COMPLETE,
        summary=summary,
        commit_summary=summary,
    )


def phase_config(settings: Settings, item: Item, run: Run) -> PhaseConfig | None:
    pipeline = settings.pipeline(item.pipeline_type)
    if pipeline is None or run.kind is RunKind.TRIAGE:
        return None
    position = pipeline.locate(run.phase, run.pool)
    return position.phase if position is not None else None


def _ingest_follow_ups(
    tx: Transaction, settings: Settings, origin_item: Item, result: PhaseResult, done: Completion
) -> list[str]:
    created, done.skipped_follow_ups = ingest_follow_ups(tx, settings, origin_item, result)
    return created


def _apply_result(
    tx: Transaction, settings: Settings, run: Run, item: Item, result: PhaseResult, done: Completion
) -> Item:
    execution = settings.execution
    if run.kind is RunKind.TRIAGE:
        survivor, done.merged = merge_duplicates(tx, item, result)
        if survivor is None:
            done.worklog_outcome, done.message = "Merged", f"merged into {done.merged[-1][1]}"
            done.follow_ups = _ingest_follow_ups(tx, settings, item, result, done)
            return tx.require_item(item.id)
        item = survivor
        resolution = apply_triage_result(
            item, result, settings.pipelines, settings.guardrails, execution.wake, tx.now
        )
        if resolution.outcome is Outcome.REPEAT:
            resolution = _count_triage_attempt(resolution, settings, tx.now)
    else:
        phase = phase_config(settings, item, run)
        gated = phase is not None and phase.approval is ApprovalGate.AFTER
        if (
            gated
            and result.result is ResultCode.PHASE_COMPLETE
            and wake_time(result, tx.now, execution.wake) is None
        ):
            done.follow_ups = _ingest_follow_ups(tx, settings, item, result, done)
            blocked = request_approval(tx, item, run.phase, AFTER, run.id)
            done.blocked = True
            done.worklog_outcome = "Blocked"
            done.message = f"{result.summary} → {blocked.blocked_reason}"
            return blocked
        resolution = resolve_transition(
            item,
            result,
            settings.pipeline(item.pipeline_type),
            settings.guardrails,
            execution.wake,
            tx.now,
        )
    done.follow_ups = _ingest_follow_ups(tx, settings, item, result, done)
    updated = resolution.item
    kind = (
        EventKind.ITEM_TRANSITION if updated.status is not item.status else EventKind.ITEM_UPDATED
    )
    tx.save_item(updated, kind, {"run_id": run.id, "outcome": resolution.outcome.value})
    if resolution.outcome is Outcome.DONE:
        updated = archive(updated, tx.now)
        tx.save_item(updated, EventKind.ITEM_ARCHIVED, {"run_id": run.id})
        done.completed = True
    done.blocked = resolution.outcome is Outcome.BLOCKED
    done.worklog_outcome = _WORKLOG_OUTCOMES[resolution.outcome]
    done.message = _describe(resolution, result)
    return updated


def _count_triage_attempt(resolution: Resolution, settings: Settings, now: datetime) -> Resolution:
    item = resolution.item.replace(triage_attempts=resolution.item.triage_attempts + 1)
    if item.triage_attempts >= settings.execution.max_triage_attempts:
        reason = f"Triage gave no decision after {item.triage_attempts} attempts"
        return Resolution(block(item, reason, now), Outcome.BLOCKED, reason)
    return Resolution(item, Outcome.REPEAT)


def _describe(resolution: Resolution, result: PhaseResult) -> str:
    outcome = resolution.outcome
    if outcome is Outcome.ADVANCED:
        return f"{result.summary} → next: {resolution.note}"
    if outcome is Outcome.SCOPING:
        return f"{result.summary} → scoping ({resolution.note})"
    if outcome is Outcome.READY:
        return f"{result.summary} → ready"
    if outcome is Outcome.DONE:
        return f"{result.summary} → done"
    if outcome is Outcome.BLOCKED:
        return resolution.note
    if outcome is Outcome.SLEEPING:
        return f"{result.summary} → sleeping {resolution.note}"
    return result.summary


def _spend(run: Run, outcome: AgentOutcome) -> dict[str, Any]:
    return {
        "session_id": outcome.stream.session_id or run.session_id,
        "cost_usd": outcome.stream.cost_usd,
        "tokens_in": outcome.stream.tokens_in,
        "tokens_out": outcome.stream.tokens_out,
        "exit_code": outcome.exit_code,
    }


def block_item(
    tx: Transaction, item: Item, reason: str, kind: BlockedType | None, run: Run
) -> bool:
    """Block the item for this run's reason, unless it is already blocked, done or closed."""
    if item.status in (ItemStatus.BLOCKED, ItemStatus.DONE) or item.archived:
        return False
    tx.save_item(block(item, reason, tx.now, kind), EventKind.ITEM_TRANSITION, {"run_id": run.id})
    return True


def _enforce_budget(
    tx: Transaction, settings: Settings, run: Run, run_cost: float, done: Completion
) -> bool:
    """Over a `[budget]` limit, the item stops for a human decision before it spends more."""
    budget = settings.budget
    item = tx.require_item(run.item_id)
    reason = None
    if budget.max_cost_usd_per_run is not None and run_cost > budget.max_cost_usd_per_run:
        reason = f"run {run.id} cost ${run_cost:.4f}, over the per-run budget"
        reason += f" ${budget.max_cost_usd_per_run:.4f}"
    elif budget.max_cost_usd_per_item is not None and item.cost_usd > budget.max_cost_usd_per_item:
        reason = f"{item.id} has cost ${item.cost_usd:.4f}, over the per-item budget"
        reason += f" ${budget.max_cost_usd_per_item:.4f}"
    if reason is None or item.archived or item.status in (ItemStatus.BLOCKED, ItemStatus.DONE):
        return False
    block_item(tx, item, reason, BlockedType.DECISION, run)
    done.blocked = True
    done.message = f"{done.message}; {reason}" if done.message else reason
    return True


def _record_workspace(
    tx: Transaction,
    settings: Settings,
    run: Run,
    item: Item,
    result: PhaseResult | None,
    change: WorkspaceChange,
    done: Completion,
) -> None:
    """The run's change, owed to git: its result's paths, or leftovers if it did not succeed."""
    succeeded = (
        done.run.status is RunStatus.COMMITTED
        and result is not None
        and (result.result in (ResultCode.PHASE_COMPLETE, ResultCode.SUBPHASE_COMPLETE))
    )
    phase = phase_config(settings, item, run)
    immediate = (
        run.kind is RunKind.TRIAGE
        or (phase is not None and phase.is_destructive)
        or (result is not None and result.result is ResultCode.SUBPHASE_COMPLETE)
    )
    summary = done.commit_summary or ""
    done.change = run_change(
        run, item, change, succeeded=succeeded, immediate=immediate, summary=summary
    )
    done.tree = change.tree
    record_change(tx, change.tree, done.change)


def complete_run(
    store: Store,
    settings: Settings,
    run_id: str,
    outcome: AgentOutcome,
    reconciled: Reconciliation | None = None,
    *,
    change: WorkspaceChange | None = None,
    workdir: Path | None = None,
    touched: Sequence[str] = (),
) -> Completion:
    """Apply one agent outcome; everything it changes commits together or not at all.

    `reconciled` is the verdict of a side-effect phase's reconcile check, taken (outside
    any transaction) when its outcome was uncertain: happened → the phase counts as
    complete; not happened → the usual retry; unknown → a human decides.

    A committed run gets its receipt in the same transaction: the artifacts its result
    reported plus the paths it `touched` (by default, those of its workspace `change`),
    resolved in `workdir` and hashed beforehand.
    """
    if change is not None and not touched:
        touched = change.touched
    if change is not None and may_commit(outcome):
        touched = _with_visit_leftovers(store, run_id, change.tree, touched)
    receipt = prepare_receipt(workdir, outcome, touched)  # hashed outside the lock
    with store.transaction() as tx:
        # Taken before any write, so the follow-up and merge checks see one consistent backlog.
        tx.snapshot()
        run = tx.get_run(run_id)
        if run is None:
            raise LookupError(f"no run {run_id}")
        item = tx.require_item(run.item_id)
        stamp = format_timestamp(tx.now)
        spend = _spend(run, outcome)
        done = Completion(run, item.id, item.title, "Failed", outcome.error or "")
        item_spend = touch(
            item,
            tx.now,
            cost_usd=item.cost_usd + spend["cost_usd"],
            tokens_in=item.tokens_in + spend["tokens_in"],
            tokens_out=item.tokens_out + spend["tokens_out"],
        )
        if item_spend != item:
            tx.save_item(item_spend, EventKind.ITEM_UPDATED, {"run_id": run.id, "spend": True})
            item = item_spend
        error_class = outcome.error_class
        result = outcome.result
        retry: tuple[int, datetime | None, str] | None = None
        verdict = None
        error_text = outcome.error
        if run.side_effect and error_class in UNCERTAIN and reconciled is not None:
            verdict = reconciled.verdict
            tx.append_event(
                EventKind.RUN_RECONCILED,
                item_id=item.id,
                run_id=run.id,
                data={**reconciled.ledger_data(), "after": outcome.error},
            )
            if verdict is Verdict.HAPPENED:
                result = reconciled_result(run, reconciled.detail)
                error_class = error_text = None
                done.message = ""
            elif verdict is Verdict.UNKNOWN:
                done.message = f"{done.message}; {reconciled.detail}"
        stored = redact(result_to_dict(result)) if result is not None else None

        if result is not None and error_class in (None, ErrorClass.REPORTED_BLOCKED):
            _apply_result(tx, settings, run, item, result, done)
            done.commit_summary = result.commit_summary or result.summary
            status = RunStatus.COMMITTED
        elif run.side_effect and error_class in UNCERTAIN and verdict is not Verdict.NOT_HAPPENED:
            status = RunStatus.PAUSED_INDETERMINATE
            reason = indeterminate_reason(run, done.message)
            block_item(tx, item, reason, BlockedType.DECISION, run)
            tx.append_event(
                EventKind.RUN_INDETERMINATE, item_id=item.id, run_id=run.id, data={"why": reason}
            )
            done.blocked = True
            done.worklog_outcome, done.message = "Blocked", reason
        elif error_class in RETRYABLE:
            status = (
                RunStatus.FAILED_LOGIC
                if error_class is ErrorClass.REPORTED_FAILED
                else RunStatus.FAILED_AGENT
            )
            limit = max_attempts(settings, phase_config(settings, item, run))
            if run.attempt < limit:
                retry = (run.attempt + 1, None, done.message)
                done.retry_queued = True
                done.message = (
                    f"attempt {run.attempt}/{limit} failed ({error_class}): {done.message}"
                )
            else:
                reason = attempts_exhausted_reason(run.phase, run.attempt, done.message)
                block_item(tx, item, reason, None, run)
                done.blocked = done.exhausted = True
                done.worklog_outcome, done.message = "Blocked", reason
        elif error_class is ErrorClass.RATE_LIMITED:
            # Never an attempt: the retry keeps this one's number and waits out a backoff.
            status = RunStatus.PAUSED_TRANSIENT
            agent = agent_for_run(settings, item, run)
            delay, streak = backoff_seconds(tx, run, settings, last_resumed(tx, agent))
            retry = (run.attempt, tx.now + timedelta(seconds=delay), "rate limited")
            done.retry_queued = True
            done.worklog_outcome = "Waiting"
            done.message = f"rate limited; trying again in {delay:g} s (no attempt used)"
            if streak >= settings.execution.backoff.max_transient:
                why = f"rate-limited {streak} times in a row"
                pause_agent(tx, agent, why, run)
                done.message = f"{why}; agent {agent} is paused (phase-golem resume-agent {agent})"
        elif error_class is ErrorClass.UNAVAILABLE:
            # The agent, not the item, is what is wrong: pause it, keep the item's place.
            status = RunStatus.PAUSED_APPROVAL
            agent = agent_for_run(settings, item, run)
            pause_agent(tx, agent, f"unavailable: {done.message}", run)
            retry = (run.attempt, None, "agent unavailable")
            done.retry_queued = True
            done.worklog_outcome = "Waiting"
            done.message = (
                f"agent {agent} unavailable: {done.message}; it is paused "
                f"(phase-golem resume-agent {agent})"
            )
        else:  # mismatch and internal errors block at once and count toward the breaker
            status = (
                RunStatus.FAILED_INTERNAL
                if error_class is ErrorClass.INTERNAL
                else RunStatus.FAILED_AGENT
            )
            block_item(tx, item, done.message, None, run)
            done.blocked = done.exhausted = True
            done.worklog_outcome = "Blocked"

        if _enforce_budget(tx, settings, run, spend["cost_usd"], done):
            # No more spending until a human says so: whatever retry was planned is dropped.
            if retry is not None:
                retry, done.retry_queued = None, False
                done.message = f"{done.message}; no retry"
            done.worklog_outcome = "Blocked"
        mutation = run.mutation
        if run.side_effect:
            mutation = Mutation.APPLIED if status is RunStatus.COMMITTED else mutation
            mutation = Mutation.FAILED if verdict is Verdict.NOT_HAPPENED else mutation
        step = Step.COMMITTED if status is RunStatus.COMMITTED else Step.AGENT_EXITED
        finished = finish(
            run,
            status,
            stamp,
            step=max(step, run.step, key=lambda s: s.order),
            error=redact_text(error_text) if error_text else None,
            error_class=error_class,
            result=stored,
            mutation=(
                Mutation.INDETERMINATE if status is RunStatus.PAUSED_INDETERMINATE else mutation
            ),
            snapshot_after=change.snapshot_after if change is not None else run.snapshot_after,
            **spend,
        )
        tx.save_run(
            finished,
            EventKind.RUN_FINISHED,
            {
                "error_class": error_class.value if error_class else None,
                "error": outcome.error,
                "outcome": done.worklog_outcome,
                "cost_usd": spend["cost_usd"],
                "follow_ups": done.follow_ups,
                "merged": [list(pair) for pair in done.merged],
            },
        )
        done.run = finished
        if change is not None:
            _record_workspace(tx, settings, run, item, result, change, done)
        receipt.save(tx, finished)
        if retry is not None:
            attempt, not_before, reason = retry
            queue_retry(tx, finished, attempt=attempt, not_before=not_before, reason=reason)
    return done


def _with_visit_leftovers(
    store: Store, run_id: str, tree: str, touched: Sequence[str]
) -> tuple[str, ...]:
    with store.reader() as tx:
        run = tx.get_run(run_id)
        if run is None:
            return tuple(touched)
        left = visit_leftovers(tx, tree, run.item_id, run.phase)
    return tuple(sorted({*touched, *left}))
