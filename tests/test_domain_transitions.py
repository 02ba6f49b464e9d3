"""Unit tests for phase outcomes, triage routing, merges, follow-ups and result parsing.

Covers domain/transitions.py, merges.py and results.py (research §4.7, §4.9, §4.11-§4.15).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from phase_golem.config import default_pipelines
from phase_golem.domain.descriptions import StructuredDescription
from phase_golem.domain.guardrails import Guardrails
from phase_golem.domain.items import (
    Assessments,
    BlockedType,
    Item,
    ItemStatus,
    Level,
    PhasePool,
    Size,
    format_timestamp,
    new_item,
)
from phase_golem.domain.pipelines import PhaseConfig, PipelineConfig, WakeConfig
from phase_golem.domain.results import (
    PhaseResult,
    ResultCode,
)
from phase_golem.domain.transitions import (
    GUARDRAIL_REASON,
    HUMAN_REVIEW_REASON,
    Outcome,
    Resolution,
    apply_triage_result,
    resolve_transition,
    wake_time,
)

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
STAMP = format_timestamp(NOW)
S, R, Out = ItemStatus, ResultCode, Outcome
PRE, MAIN = PhasePool.PRE, PhasePool.MAIN
PIPES = default_pipelines()  # feature: research | prd design spec build* review; simple: no pre
FEATURE = PIPES["feature"]
DEEP = PipelineConfig(
    "deep",
    pre_phases=(PhaseConfig("scan", False), PhaseConfig("research", False)),
    phases=(PhaseConfig("draft", False), PhaseConfig("ship", True)),
)
GR, WAKE = Guardrails(), WakeConfig()
risky = Assessments(risk=Level.HIGH)


def make(
    status: ItemStatus = S.IN_PROGRESS,
    phase: str | None = "prd",
    pool: PhasePool | None = MAIN,
    **fields: Any,
) -> Item:
    base = new_item("WRK-001", "Title", NOW - timedelta(days=1))
    return base.replace(status=status, phase=phase, phase_pool=pool, **fields)


def result(phase: str = "prd", code: ResultCode = R.PHASE_COMPLETE, **fields: Any) -> PhaseResult:
    fields.setdefault("summary", "did it")
    return PhaseResult("WRK-001", phase, code, **fields)


def resolve(item: Item, res: PhaseResult, pipeline: PipelineConfig | None = FEATURE) -> Resolution:
    return resolve_transition(item, res, pipeline, GR, WAKE, NOW)


def why(item: Item) -> tuple[Any, ...]:
    return (item.blocked_reason, item.blocked_type)


def after(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


# --- resolve_transition ----------------------------------------------------------------

IP = S.IN_PROGRESS


def state(out: Resolution) -> str:
    """`outcome: status phase pool`, `-` for what is unset."""
    parts = (out.item.status, out.item.phase, out.item.phase_pool)
    return f"{out.outcome}: " + " ".join(str(p) if p else "-" for p in parts)


@pytest.mark.parametrize(
    ("item", "res", "pipeline", "expected"),
    [
        (make(S.SCOPING, "scan", PRE), result("scan"), DEEP, "advanced: scoping research pre"),
        (make(S.SCOPING, "research", PRE), result("research"), FEATURE, "ready: ready - -"),
        (make(), result(), FEATURE, "advanced: in_progress design main"),
        (make(pool=None), result(), FEATURE, "advanced: in_progress design main"),
        (make(phase="spec"), result("spec"), FEATURE, "advanced: in_progress build main"),
        (make(phase="review"), result("review"), FEATURE, "done: done review main"),
        (
            make(phase="build"),
            result("build", R.SUBPHASE_COMPLETE),
            FEATURE,
            "repeat: in_progress build main",
        ),
        (make(), result(retry_after_seconds=60), FEATURE, "sleeping: in_progress prd main"),
        (make(), result(code=R.BLOCKED), FEATURE, "blocked: blocked prd main"),
        (make(), result(code=R.FAILED), FEATURE, "blocked: blocked prd main"),
        (make(phase="nope"), result("nope"), FEATURE, "blocked: blocked nope main"),
        (make(), result(), None, "blocked: blocked prd main"),
        (make(S.SCOPING, "prd", PRE), result("prd"), FEATURE, "blocked: blocked prd pre"),
    ],
)
def test_resolve_transition_matrix(
    item: Item, res: PhaseResult, pipeline: Any, expected: str
) -> None:
    out = resolve(item, res, pipeline)
    assert state(out) == expected
    assert out.item.updated == STAMP


@pytest.mark.parametrize(
    ("item", "pipeline"), [(make(S.SCOPING, "scan", PRE), DEEP), (make(), FEATURE)]
)
def test_advancing_sets_summary_anchor_and_entry_time(item: Item, pipeline: Any) -> None:
    out = resolve(item, result(item.phase or "", based_on_commit="abc"), pipeline)
    assert (out.item.previous_summary, out.item.last_phase_commit) == ("did it", "abc")
    assert out.item.phase_entered_at == STAMP
    kept = resolve(item.replace(last_phase_commit="old"), result(item.phase or ""), pipeline)
    assert kept.item.last_phase_commit == "old"


def test_ready_and_done_clear_the_summary() -> None:
    pre = make(S.SCOPING, "research", PRE, previous_summary="x")
    assert resolve(pre, result("research")).item.previous_summary is None
    last = make(phase="review", previous_summary="x", phase_entered_at=STAMP)
    done = resolve(last, result("review"))
    assert (done.item.previous_summary, done.item.phase_entered_at) == (None, None)


@pytest.mark.parametrize(
    ("item_fields", "result_fields", "reason"),
    [
        ({"requires_human_review": True}, {}, HUMAN_REVIEW_REASON),
        ({}, {"requires_human_review": True}, HUMAN_REVIEW_REASON),
        ({"requires_human_review": True, "size": Size.LARGE}, {}, HUMAN_REVIEW_REASON),
        ({"size": Size.LARGE}, {}, f"{GUARDRAIL_REASON} (size large > medium)"),
        ({}, {"assessments": risky}, f"{GUARDRAIL_REASON} (risk high > low)"),
    ],
)
def test_last_pre_phase_gate_blocks_as_decision(
    item_fields: dict[str, Any], result_fields: dict[str, Any], reason: str
) -> None:
    item = make(S.SCOPING, "research", PRE, **item_fields)
    out = resolve(item, result("research", **result_fields))
    assert out.outcome is Out.BLOCKED and out.item.blocked_from_status is S.SCOPING
    assert why(out.item) == (reason, BlockedType.DECISION)


@pytest.mark.parametrize(
    ("fields", "reason", "kind"),
    [
        ({"context": "need auth choice"}, "need auth choice", BlockedType.CLARIFICATION),
        ({"context": "  ", "summary": "stuck"}, "stuck", BlockedType.CLARIFICATION),
        ({"context": "pick", "blocked_type": BlockedType.DECISION}, "pick", BlockedType.DECISION),
    ],
)
def test_blocked_result_blocks_with_context_and_type(
    fields: dict[str, Any], reason: str, kind: BlockedType
) -> None:
    out = resolve(make(previous_summary="x"), result(code=R.BLOCKED, **fields))
    assert out.note == reason and why(out.item) == (reason, kind)
    assert (out.item.blocked_from_status, out.item.previous_summary) == (IP, None)


def test_blocked_result_wins_over_wake_and_assessments() -> None:
    res = result(code=R.BLOCKED, retry_after_seconds=60, assessments=Assessments(size=Size.LARGE))
    out = resolve(make(), res)
    assert out.outcome is Out.BLOCKED and out.item.size is None and out.item.wake_at is None


@pytest.mark.parametrize(
    ("item", "res", "pipeline", "reason"),
    [
        (make(), result(code=R.FAILED, context="boom"), FEATURE, "Phase prd failed after retries"),
        (make(phase="x"), result("x"), FEATURE, "Phase x not found in the main phases of pipeline"),
        (make(S.SCOPING, "prd", PRE), result("prd"), FEATURE, "Phase prd not found in the pre"),
        (make(), result(), None, "Phase prd not found"),
    ],
)
def test_failure_and_not_found_reasons(
    item: Item, res: PhaseResult, pipeline: Any, reason: str
) -> None:
    assert (resolve(item, res, pipeline).item.blocked_reason or "").startswith(reason)


def test_subphase_keeps_its_summary() -> None:
    out = resolve(make(phase="build"), result("build", R.SUBPHASE_COMPLETE, summary="step 1"))
    assert out.item.previous_summary == "step 1"


def test_guardrails_rechecked_when_a_main_phase_raises_assessments() -> None:
    out = resolve(make(), result(assessments=Assessments(size=Size.LARGE)))
    assert out.outcome is Out.BLOCKED
    assert (out.item.phase, out.item.blocked_from_status) == ("design", IP)
    assert why(out.item) == (
        f"{GUARDRAIL_REASON} after prd (size large > medium)",
        BlockedType.DECISION,
    )


def test_guardrails_rechecked_on_subphase_and_sleep() -> None:
    raise_risk = Assessments(risk=Level.MEDIUM)
    sub = resolve(make(), result(code=R.SUBPHASE_COMPLETE, assessments=raise_risk))
    slept = resolve(make(), result(retry_after_seconds=60, assessments=raise_risk))
    assert sub.outcome is slept.outcome is Out.BLOCKED
    assert slept.item.wake_at is None


@pytest.mark.parametrize(
    ("item_fields", "update", "outcome"),
    [
        ({"size": Size.SMALL}, Assessments(complexity=Level.MEDIUM), Out.ADVANCED),  # within limits
        ({"size": Size.LARGE}, Assessments(impact=Level.HIGH), Out.ADVANCED),  # approved, unrelated
        ({"size": Size.LARGE}, Assessments(size=Size.LARGE), Out.ADVANCED),  # re-reported
        pytest.param(
            {"risk": Level.HIGH},
            Assessments(risk=Level.MEDIUM),  # lowered, still over the limit
            Out.ADVANCED,
        ),
        ({"size": Size.LARGE}, Assessments(risk=Level.HIGH), Out.BLOCKED),  # a new break
    ],
)
def test_only_new_guardrail_breaks_reblock(
    item_fields: dict[str, Any], update: Assessments, outcome: Outcome
) -> None:
    out = resolve(make(**item_fields), result(assessments=update))
    assert out.outcome is outcome
    if outcome is Out.BLOCKED:
        assert out.item.blocked_reason == f"{GUARDRAIL_REASON} after prd (risk high > low)"


def test_last_main_phase_finishes_even_when_assessments_grow() -> None:
    out = resolve(make(phase="review"), result("review", assessments=Assessments(size=Size.LARGE)))
    assert out.outcome is Out.DONE


# --- wake clamps -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, None),
        ({"retry_after_seconds": 120}, after(120)),
        ({"retry_after_seconds": 0}, after(30)),
        ({"retry_after_seconds": 10**6}, after(86400)),
        ({"retry_after_seconds": 1e12}, after(86400)),  # clamped before adding: no overflow
        ({"retry_after_seconds": float("inf")}, after(86400)),
        ({"wake_at": format_timestamp(after(3600))}, after(3600)),
        ({"wake_at": format_timestamp(after(5))}, after(30)),
        ({"wake_at": format_timestamp(NOW - timedelta(hours=2))}, after(30)),
        ({"wake_at": format_timestamp(after(9 * 86400))}, after(86400)),
        ({"wake_at": "9999-12-31T23:59:59Z"}, after(86400)),
        ({"wake_at": "2026-11-22T13:00:00Z"}, after(3600)),
        ({"wake_at": "soon"}, after(30)),
        ({"wake_at": format_timestamp(after(3600)), "retry_after_seconds": 60}, after(60)),
    ],
)
def test_wake_time_is_clamped(fields: dict[str, Any], expected: datetime | None) -> None:
    assert wake_time(result(**fields), NOW, WAKE) == expected


def test_wake_time_uses_the_configured_window() -> None:
    window = WakeConfig(min_seconds=5, max_seconds=100)
    assert wake_time(result(retry_after_seconds=1), NOW, window) == after(5)
    assert wake_time(result(retry_after_seconds=500), NOW, window) == after(100)


def test_come_back_later_sleeps_in_place() -> None:
    out = resolve(make(), result(retry_after_seconds=90, summary="waiting on CI"))
    assert out.note == f"until {format_timestamp(after(90))}"
    assert out.item.wake_at == format_timestamp(after(90))
    assert out.item.previous_summary == "waiting on CI"


# --- triage routing --------------------------------------------------------------------


def triage(
    item: Item | None = None, code: ResultCode = R.PHASE_COMPLETE, **fields: Any
) -> Resolution:
    target = item or make(S.NEW, None, None)
    fields.setdefault("summary", "triaged")
    res = PhaseResult(target.id, "triage", code, **fields)
    return apply_triage_result(target, res, PIPES, GR, WAKE, NOW)


def sized(size: Size, risk: Level | None = None, **more: Any) -> Assessments:
    return Assessments(size=size, risk=risk, **more)


FAST, SCOPED = "ready: ready - -", "scoping: scoping research pre"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"assessments": sized(Size.SMALL, Level.LOW)}, FAST),
        ({"assessments": sized(Size.SMALL)}, FAST),
        ({"assessments": sized(Size.MEDIUM, Level.LOW), "pipeline_type": "simple"}, FAST),
        ({"pipeline_type": "simple"}, FAST),
        ({"assessments": sized(Size.SMALL, Level.MEDIUM)}, SCOPED),
        ({"assessments": sized(Size.MEDIUM, Level.LOW)}, SCOPED),
        ({"assessments": sized(Size.LARGE, Level.HIGH)}, SCOPED),
        ({}, SCOPED),
        # Small and safe but too complex for the fast path: scoped first, gated later.
        ({"assessments": sized(Size.SMALL, complexity=Level.HIGH)}, SCOPED),
    ],
)
def test_triage_routing(fields: dict[str, Any], expected: str) -> None:
    out = triage(**fields)
    assert state(out) == expected
    if out.outcome is Out.SCOPING:
        assert (out.note, out.item.phase_entered_at) == ("research", STAMP)


def test_triage_sets_pipeline_description_and_assessments() -> None:
    description = StructuredDescription(context="c", problem="p")
    update = sized(Size.SMALL, Level.LOW, impact=Level.HIGH)
    out = triage(assessments=update, pipeline_type="simple", description=description)
    assert (out.item.pipeline_type, out.item.impact) == ("simple", Level.HIGH)
    assert out.item.description == description


def test_triage_ignores_an_empty_description() -> None:
    old = StructuredDescription(context="keep")
    out = triage(make(S.NEW, None, None, description=old), description=StructuredDescription())
    assert out.item.description == old


def test_triage_invalid_pipeline_blocks_with_available_list() -> None:
    out = triage(pipeline_type="epic", assessments=sized(Size.SMALL))
    assert out.outcome is Out.BLOCKED and out.item.blocked_from_status is S.NEW
    assert out.item.blocked_reason == (
        "Triage assigned invalid pipeline type 'epic'. Available: feature, simple"
    )


def test_triage_unknown_effective_pipeline_blocks() -> None:
    out = triage(make(S.NEW, None, None, pipeline_type="gone"))
    assert out.outcome is Out.BLOCKED and "gone" in (out.item.blocked_reason or "")


@pytest.mark.parametrize("pipeline_type", [None, "simple"])
@pytest.mark.parametrize("on_item", [True, False])
def test_triage_fast_path_honours_human_review(pipeline_type: str | None, on_item: bool) -> None:
    item = make(S.NEW, None, None, requires_human_review=on_item)
    update = sized(Size.SMALL, Level.LOW)
    review = not on_item
    out = triage(
        item, assessments=update, pipeline_type=pipeline_type, requires_human_review=review
    )
    assert out.outcome is Out.BLOCKED and out.item.requires_human_review
    assert why(out.item) == (HUMAN_REVIEW_REASON, BlockedType.DECISION)


def test_triage_human_review_on_scoping_path_waits_for_the_end_of_scoping() -> None:
    out = triage(assessments=sized(Size.LARGE), requires_human_review=True)
    assert out.outcome is Out.SCOPING and out.item.requires_human_review


def test_triage_no_pre_phases_still_checks_guardrails() -> None:
    out = triage(assessments=sized(Size.LARGE), pipeline_type="simple")
    assert out.outcome is Out.BLOCKED and out.item.blocked_type is BlockedType.DECISION
    assert (out.item.blocked_reason or "").startswith(GUARDRAIL_REASON)


@pytest.mark.parametrize("code", [R.FAILED, R.SUBPHASE_COMPLETE])
def test_triage_failed_or_subphase_repeats_and_stays_new(code: ResultCode) -> None:
    out = triage(code=code, assessments=sized(Size.SMALL))
    assert (out.outcome, out.item.status, out.item.size) == (Out.REPEAT, S.NEW, Size.SMALL)


def test_triage_blocked_result_blocks_with_type() -> None:
    out = triage(code=R.BLOCKED, context="which API?", blocked_type=BlockedType.DECISION)
    assert out.outcome is Out.BLOCKED
    assert why(out.item) == ("which API?", BlockedType.DECISION)


def test_triage_come_back_later_sleeps_as_new() -> None:
    out = triage(retry_after_seconds=300)
    assert (out.outcome, out.item.status) == (Out.SLEEPING, S.NEW)
    assert out.item.wake_at == format_timestamp(after(300))
