"""Ending runs that did not finish on their own — stopped, their agent lost, their item
stale, a bug of ours — and settling side effects that may or may not have acted
(DESIGN §6): as `interrupted_ending` and `settle` (domain/endings.py) decide.
"""

from __future__ import annotations

from typing import Any

from phase_golem.domain.endings import (
    Decision,
    EndingKind,
    RunFacts,
    interrupted_ending,
    settle,
)
from phase_golem.domain.events import EventKind
from phase_golem.domain.items import (
    BlockedType,
    Item,
    ItemStatus,
    archive,
    block,
    format_timestamp,
)
from phase_golem.domain.pipelines import Settings
from phase_golem.domain.results import PhaseResult, ResultCode
from phase_golem.domain.runs import ErrorClass, Mutation, Run, RunStatus, finish
from phase_golem.domain.transitions import Outcome, resolve_transition
from phase_golem.engine.reconcile import Reconciliation
from phase_golem.engine.retries import queue_retry
from phase_golem.store import Transaction


def indeterminate_reason(run: Run, what: str) -> str:
    return (
        f"Side-effect phase {run.phase} ({run.id}) may or may not have acted: {what}. "
        "It is not retried blindly: check, then `phase-golem resolve "
        f"{run.id} --happened | --not-happened | --skip`"
    )


def pause_indeterminate(tx: Transaction, run: Run, what: str) -> bool:
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
    return item is not None and block_item(tx, item, reason, BlockedType.DECISION, run)


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


def block_item(
    tx: Transaction, item: Item, reason: str, kind: BlockedType | None, run: Run
) -> bool:
    """Block the item for this run's reason, unless it is already blocked, done or closed."""
    if item.status in (ItemStatus.BLOCKED, ItemStatus.DONE) or item.archived:
        return False
    tx.save_item(block(item, reason, tx.now, kind), EventKind.ITEM_TRANSITION, {"run_id": run.id})
    return True


def end_interrupted(
    tx: Transaction,
    run: Run,
    kind: EndingKind,
    why: str,
    *,
    reconciled: Reconciliation | None = None,
    uncertain: str = "",
    data: dict[str, Any] | None = None,
) -> bool:
    """Inside a transaction: end an active run that did not finish on its own — stopped,
    its agent lost, its item stale, a bug of ours — as `interrupted_ending` decides.

    `uncertain` says what happened to a side effect that may have acted (for the human
    who resolves it); `data` adds to the ledger's `run.finished` event. True when its
    item was blocked by it.
    """
    if reconciled is not None:
        checked = {**reconciled.ledger_data(), "after": why}
        tx.append_event(EventKind.RUN_RECONCILED, item_id=run.item_id, run_id=run.id, data=checked)
    verdict = reconciled.verdict if reconciled is not None else None
    facts = RunFacts(
        None,
        side_effect=run.side_effect,
        mutation=run.mutation,
        verdict=verdict,
        attempt=run.attempt,
        step=run.step,
    )
    ending = interrupted_ending(kind, facts)
    if ending.kind is EndingKind.INDETERMINATE:
        detail = f"; {reconciled.detail}" if reconciled is not None else ""
        return pause_indeterminate(tx, run, f"{uncertain or why}{detail}")
    error_class = {EndingKind.LOST: ErrorClass.CRASHED, EndingKind.INTERNAL: ErrorClass.INTERNAL}
    stamp = format_timestamp(tx.now)
    ended = finish(
        run,
        ending.status,
        stamp,
        error=why,
        error_class=error_class.get(kind),
        mutation=ending.mutation,
    )
    tx.save_run(ended, EventKind.RUN_FINISHED, {"outcome": ending.worklog, **(data or {})})
    if kind is EndingKind.STALE:
        tx.append_event(EventKind.ITEM_STALE, item_id=run.item_id, run_id=run.id, data={"why": why})
    item = tx.get_item(run.item_id) if ending.block else None
    blocked = item is not None and block_item(tx, item, why, ending.blocked_type, run)
    if ending.retry_attempt is not None:
        queue_retry(tx, ended, attempt=ending.retry_attempt, not_before=None, reason="recovered")
    return blocked


def settle_indeterminate(
    tx: Transaction, settings: Settings, run: Run, item: Item, decision: Decision
) -> tuple[Run, Item, Run | None]:
    """Inside a transaction: a human's `resolve` of a `paused:indeterminate` run, as
    `settle` decides: (the run with its decision recorded, the item, the retry if any)."""
    settlement = settle(decision, run.phase)
    resolved = run.replace(mutation=settlement.mutation)
    tx.save_run(resolved, EventKind.RUN_RESOLVED, {"decision": decision.value})
    if settlement.retry:
        tx.save_item(item, EventKind.ITEM_TRANSITION, {"run_id": run.id, "resolved": True})
        retry = queue_retry(
            tx, resolved, attempt=run.attempt, not_before=None, reason=settlement.summary
        )
        return resolved, item, retry
    if decision is Decision.HAPPENED:
        result = reconciled_result(run, "a human said so")
    else:
        result = PhaseResult(run.item_id, run.phase, ResultCode.PHASE_COMPLETE, settlement.summary)
    return resolved, _advance_resolved(tx, settings, run, item, result), None


def _advance_resolved(
    tx: Transaction, settings: Settings, run: Run, item: Item, result: PhaseResult
) -> Item:
    resolution = resolve_transition(
        item,
        result,
        settings.pipeline(item.pipeline_type),
        settings.guardrails,
        settings.execution.wake,
        tx.now,
    )
    updated = resolution.item
    tx.save_item(updated, EventKind.ITEM_TRANSITION, {"run_id": run.id, "resolved": True})
    if resolution.outcome is Outcome.DONE:
        updated = archive(updated, tx.now)
        tx.save_item(updated, EventKind.ITEM_ARCHIVED, {"run_id": run.id})
    return updated
