"""The human decision gates: `approve ID [--notes]` and `reject ID --reason`.

An item waits for a human when it is blocked with `blocked_type = decision` (the
human-review and guardrail gate, a phase's `approval` gate, a budget) or carries
`requires_human_review`. An item blocked by an uncertain side effect is decided with
`phase-golem resolve` instead (engine/resolution.py).

- At the end-of-scoping gate, approving sends the item to Ready with the gate lifted.
- At a phase's `approval = "before"` gate, approving lets that phase run.
- At a phase's `approval = "after"` gate, approving applies the phase's stored result
  (the item advances, or is done); rejecting sends the phase back for another visit with
  the reason in its prompt.
- Anywhere else approving resumes the item where it stopped; rejecting closes it.
"""

from __future__ import annotations

from typing import Any

from phase_golem.domain.errors import DomainError
from phase_golem.domain.events import EventKind
from phase_golem.domain.items import (
    BlockedType,
    Item,
    ItemStatus,
    archive,
    block,
    touch,
    unblock,
)
from phase_golem.domain.pipelines import Settings
from phase_golem.domain.results import result_from_dict
from phase_golem.domain.runs import Mutation, RunStatus
from phase_golem.domain.transitions import (
    GUARDRAIL_REASON,
    HUMAN_REVIEW_REASON,
    Outcome,
    resolve_transition,
    to_ready,
)
from phase_golem.engine.backlog import no_live_run
from phase_golem.store import Store, Transaction

BEFORE, AFTER = "before", "after"


def _awaiting_decision(item: Item) -> bool:
    if item.archived:
        return False
    if item.status is ItemStatus.BLOCKED:
        return item.blocked_type is BlockedType.DECISION or item.requires_human_review
    return item.requires_human_review


def _at_scoping_gate(item: Item) -> bool:
    reason = item.blocked_reason or ""
    return item.blocked_from_status is ItemStatus.SCOPING and (
        reason.startswith(HUMAN_REVIEW_REASON) or reason.startswith(GUARDRAIL_REASON)
    )


def pending_gate(tx: Transaction, item: Item) -> dict[str, Any] | None:
    """The phase gate the item waits at: the latest request not yet granted or rejected."""
    latest: dict[str, Any] | None = None
    for event in tx.events(item_id=item.id):
        if event.kind is EventKind.APPROVAL_REQUESTED:
            latest = dict(event.data)
        elif event.kind in (EventKind.APPROVAL_GRANTED, EventKind.APPROVAL_REJECTED):
            latest = None
    if item.status is not ItemStatus.BLOCKED or latest is None:
        return None
    # Only while the item is still blocked *by that request*: a plain unblock and a later
    # block for another reason must not resurrect an old gate (and its stored result).
    expected = gate_reason(str(latest.get("phase")), str(latest.get("gate")))
    return latest if item.blocked_reason == expected else None


def phase_approved(tx: Transaction, item_id: str, phase: str) -> bool:
    """True when the last gate decision for this phase was a grant (visit after visit)."""
    approved = False
    for event in tx.events(item_id=item_id):
        if event.data.get("phase") != phase:
            continue
        if event.kind is EventKind.APPROVAL_REQUESTED:
            approved = False
        elif event.kind is EventKind.APPROVAL_GRANTED:
            approved = True
    return approved


def gate_reason(phase: str, gate: str) -> str:
    if gate == BEFORE:
        return f"Awaiting approval before phase {phase}"
    return f"Awaiting approval of the output of phase {phase}"


def request_approval(
    tx: Transaction, item: Item, phase: str, gate: str, run_id: str | None = None
) -> Item:
    """Block the item for a decision and say which gate it waits at."""
    blocked = block(item, gate_reason(phase, gate), tx.now, BlockedType.DECISION)
    tx.save_item(blocked, EventKind.ITEM_TRANSITION, {"gate": gate, "phase": phase})
    data = {"phase": phase, "gate": gate, "run_id": run_id}
    tx.append_event(EventKind.APPROVAL_REQUESTED, item_id=item.id, run_id=run_id, data=data)
    return blocked


def _apply_stored_result(tx: Transaction, settings: Settings, item: Item, run_id: str) -> Item:
    run = tx.get_run(run_id)
    if run is None or run.result is None:
        raise DomainError(f"{item.id}: the result of {run_id} is gone; unblock it instead")
    resolution = resolve_transition(
        item,
        result_from_dict(run.result),
        settings.pipeline(item.pipeline_type),
        settings.guardrails,
        settings.execution.wake,
        tx.now,
    )
    if resolution.outcome is Outcome.DONE:
        return archive(resolution.item, tx.now)
    return resolution.item


def _refuse_uncertain_side_effect(tx: Transaction, item: Item) -> None:
    """An item blocked by an uncertain side effect is decided by `resolve`, not `approve`:
    approving would run the phase again without anyone saying it did not act."""
    if item.status is not ItemStatus.BLOCKED:
        return
    for run in tx.list_runs(item_id=item.id, statuses=[RunStatus.PAUSED_INDETERMINATE]):
        if run.mutation is Mutation.INDETERMINATE and run.id in (item.blocked_reason or ""):
            raise DomainError(
                f"{item.id} waits on side-effect run {run.id}, which may or may not have "
                f"acted: phase-golem resolve {run.id} --happened | --not-happened | --skip"
            )


def approve_item(store: Store, settings: Settings, item_id: str, notes: str | None) -> Item:
    with store.transaction() as tx:
        item = tx.require_item(item_id)
        if not _awaiting_decision(item):
            raise DomainError(f"{item_id} is not waiting for a decision ({item.status.value})")
        _refuse_uncertain_side_effect(tx, item)
        gate = pending_gate(tx, item)
        at_scoping_gate = _at_scoping_gate(item)
        if item.status is ItemStatus.BLOCKED:
            item = unblock(item, tx.now, notes)
        elif notes:
            item = touch(item, tx.now, unblock_context=notes.strip())
        item = touch(item, tx.now, requires_human_review=False)
        if gate is not None and gate.get("gate") == AFTER and gate.get("run_id"):
            item = _apply_stored_result(tx, settings, item, str(gate["run_id"]))
        elif at_scoping_gate and item.status is ItemStatus.SCOPING:
            item = to_ready(item, tx.now)
        data = {"notes": notes or "", **({"phase": gate["phase"]} if gate else {})}
        tx.save_item(item, EventKind.APPROVAL_GRANTED, data)
        return item


def reject_item(store: Store, item_id: str, reason: str) -> Item:
    clean = reason.strip()
    if not clean:
        raise DomainError("--reason must not be empty")
    with store.transaction() as tx:
        item = tx.require_item(item_id)
        if not _awaiting_decision(item):
            raise DomainError(f"{item_id} is not waiting for a decision ({item.status.value})")
        no_live_run(tx, item_id, "reject")
        gate = pending_gate(tx, item)
        if gate is not None and gate.get("gate") == AFTER:
            redo = unblock(
                item, tx.now, f"The output of phase {gate['phase']} was rejected: {clean}"
            )
            tx.save_item(redo, EventKind.APPROVAL_REJECTED, {"reason": clean, **gate})
            return redo
        closed = archive(item, tx.now, closed_reason=f"rejected: {clean}")
        tx.save_item(closed, EventKind.APPROVAL_REJECTED, {"reason": clean})
        return closed
