"""What a finished phase or triage does to its item (pure; research §4.7, §4.11 to §4.15).

Phase Golem's `resolve_transition` and triage routing, with its gaps fixed on purpose:
guardrails are re-checked whenever assessments change (not only after the last pre-phase),
the triage fast paths still honour human review and guardrails, and `blocked_type` and
`requires_human_review` come from the result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from phase_golem.domain.guardrails import Guardrails, guardrail_violations
from phase_golem.domain.items import (
    Assessments,
    BlockedType,
    Item,
    ItemStatus,
    Level,
    PhasePool,
    Size,
    block,
    format_timestamp,
    merge_assessments,
    parse_timestamp,
    touch,
    transition,
)
from phase_golem.domain.pipelines import PipelineConfig, WakeConfig
from phase_golem.domain.results import PhaseResult, ResultCode

HUMAN_REVIEW_REASON = "Requires human review before entering pipeline"
GUARDRAIL_REASON = "Exceeds autonomous guardrail thresholds"


class Outcome(StrEnum):
    ADVANCED = "advanced"  # next phase in the same pool
    READY = "ready"  # pre-phases done, waiting for promotion
    SCOPING = "scoping"  # triaged into the pre-phases
    DONE = "done"
    BLOCKED = "blocked"
    REPEAT = "repeat"  # the same phase runs again (subphase, or triage left new)
    SLEEPING = "sleeping"  # come back later (wake_at / retry_after_seconds)


@dataclass(frozen=True, slots=True)
class Resolution:
    item: Item
    outcome: Outcome
    note: str = ""


def _gate(item: Item, guardrails: Guardrails) -> tuple[str, BlockedType] | None:
    """The human-review and guardrail gate, or None when the item may go on alone."""
    if item.requires_human_review:
        return HUMAN_REVIEW_REASON, BlockedType.DECISION
    problems = guardrail_violations(item, guardrails)
    if problems:
        return f"{GUARDRAIL_REASON} ({', '.join(problems)})", BlockedType.DECISION
    return None


def _assessed(
    item: Item, update: Assessments | None, guardrails: Guardrails, now: datetime
) -> tuple[Item, list[str]]:
    """Merge reported assessments, and list the guardrail breaks they newly caused.

    Only a new or worse break counts, so an item a human approved past its guardrails is
    not blocked again by a phase that merely re-reports (or lowers) its assessments.
    """
    if update is None:
        return item, []
    merged = merge_assessments(item, update, now)
    limits = {
        "size": guardrails.max_size,
        "complexity": guardrails.max_complexity,
        "risk": guardrails.max_risk,
    }
    newly_broken = []
    for name, limit in limits.items():
        old, new = getattr(item, name), getattr(merged, name)
        if new is None or new <= limit:
            continue
        if old is None or old <= limit or new > old:
            newly_broken.append(f"{name} {new.value} > {limit.value}")
    return merged, newly_broken


def _take_report(
    item: Item, result: PhaseResult, guardrails: Guardrails, now: datetime
) -> tuple[Item, list[str]]:
    """What every result reports about its item: assessments and a wish for human review."""
    item, newly_broken = _assessed(item, result.assessments, guardrails, now)
    if result.requires_human_review and not item.requires_human_review:
        item = touch(item, now, requires_human_review=True)
    return item, newly_broken


def _asleep(
    item: Item, result: PhaseResult, now: datetime, wake: WakeConfig, **changes: Any
) -> Resolution | None:
    """The item put to sleep when the result asks to come back later, else None."""
    wake_at = wake_time(result, now, wake)
    if wake_at is None:
        return None
    slept = touch(item, now, wake_at=format_timestamp(wake_at), **changes)
    return Resolution(slept, Outcome.SLEEPING, f"until {format_timestamp(wake_at)}")


def to_ready(item: Item, now: datetime) -> Item:
    """Scoped and waiting for promotion: Ready, with no phase and no carried summary."""
    ready = transition(item, ItemStatus.READY, now)
    return ready.replace(phase=None, phase_pool=None, previous_summary=None)


def wake_time(result: PhaseResult, now: datetime, wake: WakeConfig) -> datetime | None:
    """When a "come back later" result asks to be woken, clamped to the configured window."""
    if result.retry_after_seconds is not None:
        seconds = result.retry_after_seconds
    elif result.wake_at is not None:
        try:
            seconds = (parse_timestamp(result.wake_at) - now).total_seconds()
        except ValueError:
            seconds = wake.min_seconds
    else:
        return None
    # Clamp the delay before adding it: an agent asking for 1e12 s must not overflow.
    clamped = min(max(seconds, wake.min_seconds), wake.max_seconds)
    return now + timedelta(seconds=clamped)


def _blocked(item: Item, result: PhaseResult, now: datetime) -> Resolution:
    kind = result.blocked_type or BlockedType.CLARIFICATION
    return Resolution(block(item, result.reason, now, kind), Outcome.BLOCKED, result.reason)


def _enter_phase(item: Item, phase: str, pool: PhasePool, now: datetime) -> Item:
    return touch(item, now, phase=phase, phase_pool=pool, phase_entered_at=format_timestamp(now))


def resolve_transition(
    item: Item,
    result: PhaseResult,
    pipeline: PipelineConfig | None,
    guardrails: Guardrails,
    wake: WakeConfig,
    now: datetime,
) -> Resolution:
    """A phase result → the item after it (Phase Golem's table, gaps fixed)."""
    if result.result is ResultCode.BLOCKED:
        return _blocked(item, result, now)
    item, newly_broken = _take_report(item, result, guardrails, now)
    resolution = _resolve_success(item, result, pipeline, guardrails, wake, now)
    if newly_broken and resolution.outcome in (Outcome.ADVANCED, Outcome.REPEAT, Outcome.SLEEPING):
        # Blocked where it stands after this phase, so approval resumes from there.
        reason = f"{GUARDRAIL_REASON} after {result.phase} ({', '.join(newly_broken)})"
        blocked = block(resolution.item.replace(wake_at=None), reason, now, BlockedType.DECISION)
        return Resolution(blocked, Outcome.BLOCKED, reason)
    return resolution


def _resolve_success(
    item: Item,
    result: PhaseResult,
    pipeline: PipelineConfig | None,
    guardrails: Guardrails,
    wake: WakeConfig,
    now: datetime,
) -> Resolution:
    asleep = _asleep(item, result, now, wake, previous_summary=result.summary)
    if asleep is not None:
        return asleep
    if result.result is ResultCode.SUBPHASE_COMPLETE:
        return Resolution(touch(item, now, previous_summary=result.summary), Outcome.REPEAT)
    if result.result is ResultCode.FAILED:
        reason = f"Phase {result.phase} failed after retries exhausted: {result.reason}"
        return Resolution(block(item, reason, now), Outcome.BLOCKED, reason)

    pool = item.effective_pool
    position = pipeline.locate(result.phase, pool) if pipeline is not None else None
    if pipeline is None or position is None:
        where = f"pipeline {item.effective_pipeline!r}"
        reason = f"Phase {result.phase} not found in the {pool.value} phases of {where}"
        return Resolution(block(item, reason, now), Outcome.BLOCKED, reason)
    anchor = result.based_on_commit or item.last_phase_commit
    following = pipeline.next_phase(pool, result.phase)
    if following is not None:
        advanced = _enter_phase(item, following.name, pool, now).replace(
            last_phase_commit=anchor, previous_summary=result.summary
        )
        return Resolution(advanced, Outcome.ADVANCED, following.name)
    if pool is PhasePool.PRE:
        gate = _gate(item, guardrails)
        if gate is not None:
            reason, kind = gate
            return Resolution(block(item, reason, now, kind), Outcome.BLOCKED, reason)
        return Resolution(to_ready(item, now), Outcome.READY)
    done = transition(item, ItemStatus.DONE, now)
    return Resolution(done.replace(phase_entered_at=None), Outcome.DONE)


def apply_triage_result(
    item: Item,
    result: PhaseResult,
    pipelines: Mapping[str, PipelineConfig],
    guardrails: Guardrails,
    wake: WakeConfig,
    now: datetime,
) -> Resolution:
    """Triage's routing (research §4.11), with human review and guardrails on every path."""
    if result.result is ResultCode.BLOCKED:
        return _blocked(item, result, now)
    item, _ = _take_report(item, result, guardrails, now)
    if result.description is not None and not result.description.is_empty():
        item = touch(item, now, description=result.description)
    if result.pipeline_type:
        if result.pipeline_type not in pipelines:
            available = ", ".join(sorted(pipelines))
            reason = (
                f"Triage assigned invalid pipeline type '{result.pipeline_type}'. "
                f"Available: {available}"
            )
            return Resolution(block(item, reason, now), Outcome.BLOCKED, reason)
        item = touch(item, now, pipeline_type=result.pipeline_type)
    asleep = _asleep(item, result, now, wake)
    if asleep is not None:
        return asleep
    if result.result is not ResultCode.PHASE_COMPLETE:
        # `failed` is retried by the run rules; `subphase_complete` means nothing to triage.
        return Resolution(item, Outcome.REPEAT)

    pipeline = pipelines.get(item.effective_pipeline)
    if pipeline is None:
        reason = f"Triage left {item.id} on unknown pipeline '{item.effective_pipeline}'"
        return Resolution(block(item, reason, now), Outcome.BLOCKED, reason)
    scoping = transition(item, ItemStatus.SCOPING, now)
    small_and_safe = item.size is Size.SMALL and item.risk in (None, Level.LOW)
    if pipeline.pre_phases and not small_and_safe:
        first = pipeline.pre_phases[0].name
        return Resolution(_enter_phase(scoping, first, PhasePool.PRE, now), Outcome.SCOPING, first)
    gate = _gate(item, guardrails)
    if gate is not None:
        if pipeline.pre_phases and not item.requires_human_review:
            # Too big for the fast path: let the pre-phases scope it, then gate again.
            first = pipeline.pre_phases[0].name
            entered = _enter_phase(scoping, first, PhasePool.PRE, now)
            return Resolution(entered, Outcome.SCOPING, first)
        reason, kind = gate
        return Resolution(block(scoping, reason, now, kind), Outcome.BLOCKED, reason)
    return Resolution(to_ready(scoping, now), Outcome.READY)


def attempts_exhausted_reason(phase: str, attempts: int, last_error: str) -> str:
    return f"Phase {phase} failed after {attempts} attempts. Last failure: {last_error}"
