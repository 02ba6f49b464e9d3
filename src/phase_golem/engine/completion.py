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
from phase_golem.domain.endings import (
    UNCERTAIN,
    Ending,
    EndingKind,
    RunFacts,
    Verdict,
    budget_reason,
    decide_ending,
    over_budget,
)
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
from phase_golem.domain.runs import (
    ErrorClass,
    Holder,
    Run,
    RunKind,
    RunStatus,
    finish,
)
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
from phase_golem.engine.interruptions import block_item, indeterminate_reason, reconciled_result
from phase_golem.engine.owed import record_change, visit_leftovers
from phase_golem.engine.receipts import may_commit, prepare_receipt
from phase_golem.engine.reconcile import Reconciliation
from phase_golem.engine.retries import backoff_seconds, max_attempts, queue_retry
from phase_golem.engine.workspaces import WorkspaceChange, run_change
from phase_golem.store import Store, Transaction

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


def _enforce_budget(
    tx: Transaction, settings: Settings, run: Run, run_cost: float, done: Completion
) -> bool:
    """Over a `[budget]` limit, the item stops for a human decision before it spends more."""
    item = tx.require_item(run.item_id)
    reason = budget_reason(settings.budget, run.id, run_cost, item.id, item.cost_usd)
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


@dataclass(frozen=True)
class _Left:
    """What the agent left, once its reconcile check (if any) has spoken."""

    result: PhaseResult | None
    error_class: ErrorClass | None
    error_text: str | None
    verdict: Verdict | None
    backoff: tuple[float, int] | None = None  # (delay, streak) after a rate limit


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
    holder: Holder | None = None,
) -> Completion:
    """Apply one agent outcome; everything it changes commits together or not at all.

    How the run ends is `decide_ending`'s (domain/endings.py); this carries it out.
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
        (holder or Holder(run.worker_id)).check(run)
        spend = _spend(run, outcome)
        item = _charge(tx, run, spend)
        done = Completion(run, item.id, item.title, "Failed", outcome.error or "")
        left = _after_reconcile(tx, settings, run, item, outcome, reconciled, done)
        ending = decide_ending(_facts(settings, run, item, left))
        retry = _carry_out(tx, settings, run, item, left, ending, done)
        if _enforce_budget(tx, settings, run, spend["cost_usd"], done):
            # No more spending until a human says so: whatever retry was planned is dropped.
            if retry is not None:
                retry, done.retry_queued = None, False
                done.message = f"{done.message}; no retry"
            ending = over_budget(ending)
            done.worklog_outcome = "Blocked"
        finished = _save_finished(tx, run, outcome, left, ending, spend, change, done)
        if change is not None:
            _record_workspace(tx, settings, run, item, left.result, change, done)
        receipt.save(tx, finished)
        if retry is not None:
            attempt, not_before, reason = retry
            queue_retry(tx, finished, attempt=attempt, not_before=not_before, reason=reason)
    return done


def _charge(tx: Transaction, run: Run, spend: dict[str, Any]) -> Item:
    """The run's cost and tokens added to its item's, in the completing transaction."""
    item = tx.require_item(run.item_id)
    charged = touch(
        item,
        tx.now,
        cost_usd=item.cost_usd + spend["cost_usd"],
        tokens_in=item.tokens_in + spend["tokens_in"],
        tokens_out=item.tokens_out + spend["tokens_out"],
    )
    if charged == item:
        return item
    tx.save_item(charged, EventKind.ITEM_UPDATED, {"run_id": run.id, "spend": True})
    return charged


def _after_reconcile(
    tx: Transaction,
    settings: Settings,
    run: Run,
    item: Item,
    outcome: AgentOutcome,
    reconciled: Reconciliation | None,
    done: Completion,
) -> _Left:
    """The outcome as the ending sees it: a side effect its check says happened counts as
    a complete phase; the check's verdict is in the ledger either way."""
    result, error_class, error_text = outcome.result, outcome.error_class, outcome.error
    verdict = None
    if run.side_effect and error_class in UNCERTAIN and reconciled is not None:
        verdict = reconciled.verdict
        data = {**reconciled.ledger_data(), "after": outcome.error}
        tx.append_event(EventKind.RUN_RECONCILED, item_id=item.id, run_id=run.id, data=data)
        if verdict is Verdict.HAPPENED:
            result = reconciled_result(run, reconciled.detail)
            error_class = error_text = None
            done.message = ""
        elif verdict is Verdict.UNKNOWN:
            done.message = f"{done.message}; {reconciled.detail}"
    backoff = None
    if error_class is ErrorClass.RATE_LIMITED:
        agent = agent_for_run(settings, item, run)
        backoff = backoff_seconds(tx, run, settings, last_resumed(tx, agent))
    return _Left(result, error_class, error_text, verdict, backoff)


def _facts(settings: Settings, run: Run, item: Item, left: _Left) -> RunFacts:
    return RunFacts(
        error_class=left.error_class,
        has_result=left.result is not None,
        side_effect=run.side_effect,
        mutation=run.mutation,
        verdict=left.verdict,
        attempt=run.attempt,
        max_attempts=max_attempts(settings, phase_config(settings, item, run)),
        transient_streak=left.backoff[1] if left.backoff is not None else 0,
        max_transient=settings.execution.backoff.max_transient,
        step=run.step,
    )


_Retry = tuple[int, datetime | None, str]


def _carry_out(
    tx: Transaction,
    settings: Settings,
    run: Run,
    item: Item,
    left: _Left,
    ending: Ending,
    done: Completion,
) -> _Retry | None:
    """Do what the ending says to the item, the agent and the description of the run;
    returns the retry to queue (attempt, not before, why)."""
    kind = ending.kind
    if kind is EndingKind.APPLIED:
        assert left.result is not None
        _apply_result(tx, settings, run, item, left.result, done)
        done.commit_summary = left.result.commit_summary or left.result.summary
        return None
    if kind in (EndingKind.BACKOFF, EndingKind.UNAVAILABLE):
        return _pause(tx, settings, run, item, left, ending, done)
    done.worklog_outcome = ending.worklog
    if kind is EndingKind.RETRY:
        assert ending.retry_attempt is not None
        why = done.message
        limit = max_attempts(settings, phase_config(settings, item, run))
        done.retry_queued = True
        done.message = f"attempt {run.attempt}/{limit} failed ({left.error_class}): {why}"
        return ending.retry_attempt, None, why
    if kind is EndingKind.INDETERMINATE:
        reason = indeterminate_reason(run, done.message)
        data = {"why": reason}
        tx.append_event(EventKind.RUN_INDETERMINATE, item_id=item.id, run_id=run.id, data=data)
    elif kind is EndingKind.EXHAUSTED:
        reason = attempts_exhausted_reason(run.phase, run.attempt, done.message)
    else:  # mismatch and internal errors block at once
        reason = done.message
    block_item(tx, item, reason, ending.blocked_type, run)
    done.blocked, done.exhausted, done.message = True, ending.exhausted, reason
    return None


def _pause(
    tx: Transaction,
    settings: Settings,
    run: Run,
    item: Item,
    left: _Left,
    ending: Ending,
    done: Completion,
) -> _Retry:
    """Rate limited (a backoff, no attempt used) or unavailable (the agent is paused, the
    item keeps its place): either way the run is retried with its own attempt number."""
    assert ending.retry_attempt is not None
    agent = agent_for_run(settings, item, run)
    done.retry_queued, done.worklog_outcome = True, ending.worklog
    if ending.kind is EndingKind.UNAVAILABLE:
        pause_agent(tx, agent, f"unavailable: {done.message}", run)
        done.message = (
            f"agent {agent} unavailable: {done.message}; it is paused "
            f"(phase-golem resume-agent {agent})"
        )
        return ending.retry_attempt, None, "agent unavailable"
    delay, streak = left.backoff or (0.0, 1)
    done.message = f"rate limited; trying again in {delay:g} s (no attempt used)"
    if ending.pause_agent:
        why = f"rate-limited {streak} times in a row"
        pause_agent(tx, agent, why, run)
        done.message = f"{why}; agent {agent} is paused (phase-golem resume-agent {agent})"
    return ending.retry_attempt, tx.now + timedelta(seconds=delay), "rate limited"


def _save_finished(
    tx: Transaction,
    run: Run,
    outcome: AgentOutcome,
    left: _Left,
    ending: Ending,
    spend: dict[str, Any],
    change: WorkspaceChange | None,
    done: Completion,
) -> Run:
    stored = redact(result_to_dict(left.result)) if left.result is not None else None
    finished = finish(
        run,
        ending.status,
        format_timestamp(tx.now),
        step=ending.step,
        error=redact_text(left.error_text) if left.error_text else None,
        error_class=left.error_class,
        result=stored,
        mutation=ending.mutation,
        snapshot_after=change.snapshot_after if change is not None else run.snapshot_after,
        **spend,
    )
    data = {
        "error_class": left.error_class.value if left.error_class else None,
        "error": outcome.error,
        "outcome": done.worklog_outcome,
        "cost_usd": spend["cost_usd"],
        "follow_ups": done.follow_ups,
        "merged": [list(pair) for pair in done.merged],
    }
    tx.save_run(finished, EventKind.RUN_FINISHED, data)
    done.run = finished
    return finished


def _with_visit_leftovers(
    store: Store, run_id: str, tree: str, touched: Sequence[str]
) -> tuple[str, ...]:
    with store.reader() as tx:
        run = tx.get_run(run_id)
        if run is None:
            return tuple(touched)
        left = visit_leftovers(tx, tree, run.item_id, run.phase)
    return tuple(sorted({*touched, *left}))
