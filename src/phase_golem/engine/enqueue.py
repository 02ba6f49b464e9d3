"""What one decision writes for each action (DESIGN §3 step 1): a promotion, an approval
gate's check, a queued run — a new visit with its key when the tree is known, or the
pick-up of a visit a crash or a cancel cut off."""

from __future__ import annotations

from phase_golem.domain.events import EventKind
from phase_golem.domain.items import (
    Item,
    ItemStatus,
    PhasePool,
    format_timestamp,
    touch,
    transition,
)
from phase_golem.domain.pipelines import ApprovalGate, Settings
from phase_golem.domain.runs import Run, RunKind, interrupted_visit
from phase_golem.domain.scheduling import Promote, RunPhase, Triage
from phase_golem.engine.approvals import phase_approved
from phase_golem.engine.completion import phase_config
from phase_golem.engine.context import EngineContext, known_key
from phase_golem.engine.retries import queue_retry
from phase_golem.store import Transaction


def enqueue(ctx: EngineContext, tx: Transaction, item: Item, action: Triage | RunPhase) -> Run:
    kind = RunKind.TRIAGE if isinstance(action, Triage) else RunKind.PHASE
    phase = "triage" if isinstance(action, Triage) else action.phase
    pool = PhasePool.PRE if isinstance(action, Triage) else action.pool
    earlier = [r for r in tx.list_runs(item_id=item.id) if r.phase == phase]
    resumed = interrupted_visit(earlier)
    if resumed is not None:
        return queue_retry(tx, resumed, attempt=resumed.attempt, not_before=None, reason="resumed")
    visit = 1 + sum(1 for r in earlier if r.retry_of is None)
    run = Run(
        id=tx.allocate_run_id(),
        item_id=item.id,
        phase=phase,
        kind=kind,
        queued_at=format_timestamp(tx.now),
        pool=pool,
        visit=visit,
    )
    phase_cfg = phase_config(ctx.settings, item, run)
    if phase_cfg is not None and phase_cfg.side_effect:
        run = run.replace(side_effect=True)
    # Keyed now when the tree is known without git; otherwise key_new_visits keys it.
    run = run.replace(idempotency_key=known_key(ctx, item, run))
    tx.create_run(run, {"kind": kind.value, "visit": visit})
    return run


def needs_approval(settings: Settings, tx: Transaction, item: Item, phase: str) -> bool:
    pipeline = settings.pipeline(item.pipeline_type)
    position = pipeline.locate(phase, item.effective_pool) if pipeline else None
    if position is None or position.phase.approval is not ApprovalGate.BEFORE:
        return False
    return not phase_approved(tx, item.id, phase)


def promote(tx: Transaction, item: Item, action: Promote) -> Item:
    promoted = transition(item, ItemStatus.IN_PROGRESS, tx.now)
    promoted = touch(
        promoted,
        tx.now,
        phase=action.phase,
        phase_pool=PhasePool.MAIN,
        phase_entered_at=format_timestamp(tx.now),
    )
    tx.save_item(promoted, EventKind.ITEM_TRANSITION, {"promoted": True})
    return promoted
