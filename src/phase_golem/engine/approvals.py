"""The human decision gate: `approve ID [--notes]` and `reject ID --reason`.

An item waits for a human when it is blocked with `blocked_type = decision` (the
human-review and guardrail gate, an unavailable agent, a rate-limit pause) or carries
`requires_human_review`. Approving at the end-of-scoping gate sends it to Ready with the
gate lifted; anywhere else it resumes where it stopped. Rejecting closes it.
"""

from __future__ import annotations

from phase_golem.domain.errors import DomainError
from phase_golem.domain.events import EventKind
from phase_golem.domain.items import (
    BlockedType,
    Item,
    ItemStatus,
    archive,
    touch,
    transition,
    unblock,
)
from phase_golem.domain.transitions import GUARDRAIL_REASON, HUMAN_REVIEW_REASON
from phase_golem.store import Store


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


def approve_item(store: Store, item_id: str, notes: str | None) -> Item:
    with store.transaction() as tx:
        item = tx.require_item(item_id)
        if not _awaiting_decision(item):
            raise DomainError(f"{item_id} is not waiting for a decision ({item.status.value})")
        gate = _at_scoping_gate(item)
        if item.status is ItemStatus.BLOCKED:
            item = unblock(item, tx.now, notes)
        elif notes:
            item = touch(item, tx.now, unblock_context=notes.strip())
        item = touch(item, tx.now, requires_human_review=False)
        if gate and item.status is ItemStatus.SCOPING:
            item = transition(item, ItemStatus.READY, tx.now).replace(phase=None, phase_pool=None)
        tx.save_item(item, EventKind.APPROVAL_GRANTED, {"notes": notes or ""})
        return item


def reject_item(store: Store, item_id: str, reason: str) -> Item:
    clean = reason.strip()
    if not clean:
        raise DomainError("--reason must not be empty")
    with store.transaction() as tx:
        item = tx.require_item(item_id)
        if not _awaiting_decision(item):
            raise DomainError(f"{item_id} is not waiting for a decision ({item.status.value})")
        live = tx.list_runs(item_id=item_id, statuses=None, limit=None)
        if any(r.is_active for r in live):
            raise DomainError(f"{item_id} has an active run; wait for it or stop the run first")
        closed = archive(item, tx.now, closed_reason=f"rejected: {clean}")
        tx.save_item(closed, EventKind.APPROVAL_REJECTED, {"reason": clean})
        return closed
