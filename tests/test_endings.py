"""The one rule for how a run ends (domain/endings.py): a table of outcomes, no store."""

from __future__ import annotations

import pytest

from phase_golem.domain.endings import (
    Decision,
    Ending,
    EndingKind,
    RunFacts,
    Verdict,
    budget_reason,
    decide_ending,
    interrupted_ending,
    over_budget,
    settle,
)
from phase_golem.domain.items import BlockedType
from phase_golem.domain.pipelines import BudgetConfig
from phase_golem.domain.runs import ErrorClass, Mutation, RunStatus, Step

E = ErrorClass
S = RunStatus

# (facts, kind, status, retry attempt, blocks, counts toward the breaker)
TABLE: list[tuple[RunFacts, EndingKind, RunStatus, int | None, bool, bool]] = [
    (RunFacts(None, has_result=True), EndingKind.APPLIED, S.COMMITTED, None, False, False),
    (
        RunFacts(E.REPORTED_BLOCKED, has_result=True),
        EndingKind.APPLIED,
        S.COMMITTED,
        None,
        False,
        False,
    ),
    (
        RunFacts(E.REPORTED_FAILED, attempt=1, max_attempts=3),
        EndingKind.RETRY,
        S.FAILED_LOGIC,
        2,
        False,
        False,
    ),
    (
        RunFacts(E.TIMEOUT, attempt=2, max_attempts=3),
        EndingKind.RETRY,
        S.FAILED_AGENT,
        3,
        False,
        False,
    ),
    (
        RunFacts(E.CRASHED, attempt=3, max_attempts=3),
        EndingKind.EXHAUSTED,
        S.FAILED_AGENT,
        None,
        True,
        True,
    ),
    (
        RunFacts(E.INVALID_RESULT, attempt=1, max_attempts=1),
        EndingKind.EXHAUSTED,
        S.FAILED_AGENT,
        None,
        True,
        True,
    ),
    (
        RunFacts(E.REPORTED_FAILED, attempt=2, max_attempts=2),
        EndingKind.EXHAUSTED,
        S.FAILED_LOGIC,
        None,
        True,
        True,
    ),
    (
        RunFacts(E.RATE_LIMITED, attempt=2, transient_streak=1),
        EndingKind.BACKOFF,
        S.PAUSED_TRANSIENT,
        2,
        False,
        False,
    ),
    (
        RunFacts(E.UNAVAILABLE, attempt=1),
        EndingKind.UNAVAILABLE,
        S.PAUSED_APPROVAL,
        1,
        False,
        False,
    ),
    (RunFacts(E.MISMATCH), EndingKind.BLOCKED_NOW, S.FAILED_AGENT, None, True, True),
    (RunFacts(E.INTERNAL), EndingKind.BLOCKED_NOW, S.FAILED_INTERNAL, None, True, True),
    # A side-effect phase whose outcome is uncertain: its reconcile verdict decides.
    (
        RunFacts(E.CRASHED, side_effect=True, mutation=Mutation.IN_FLIGHT),
        EndingKind.INDETERMINATE,
        S.PAUSED_INDETERMINATE,
        None,
        True,
        False,
    ),
    (
        RunFacts(E.TIMEOUT, side_effect=True, verdict=Verdict.UNKNOWN, max_attempts=3),
        EndingKind.INDETERMINATE,
        S.PAUSED_INDETERMINATE,
        None,
        True,
        False,
    ),
    (
        RunFacts(E.INVALID_RESULT, side_effect=True, verdict=Verdict.HAPPENED),
        EndingKind.APPLIED,
        S.COMMITTED,
        None,
        False,
        False,
    ),
    (
        RunFacts(E.CRASHED, side_effect=True, verdict=Verdict.NOT_HAPPENED, max_attempts=2),
        EndingKind.RETRY,
        S.FAILED_AGENT,
        2,
        False,
        False,
    ),
    # A side-effect phase that failed for a certain reason is no side-effect question.
    (
        RunFacts(E.REPORTED_FAILED, side_effect=True, max_attempts=2),
        EndingKind.RETRY,
        S.FAILED_LOGIC,
        2,
        False,
        False,
    ),
]


@pytest.mark.parametrize(("facts", "kind", "status", "retry", "blocks", "breaker"), TABLE)
def test_every_finished_agent_ends_as_the_table_says(
    facts: RunFacts,
    kind: EndingKind,
    status: RunStatus,
    retry: int | None,
    blocks: bool,
    breaker: bool,
) -> None:
    ending = decide_ending(facts)
    assert (ending.kind, ending.status, ending.retry_attempt) == (kind, status, retry)
    assert (ending.block, ending.exhausted) == (blocks, breaker)
    assert ending.apply_result is (kind is EndingKind.APPLIED)
    # `finish` refuses a committed run below the committed step: the rule never asks it to.
    assert (ending.step is Step.COMMITTED) is (status is RunStatus.COMMITTED)


def test_an_uncertain_side_effect_asks_a_human_for_a_decision() -> None:
    ending = decide_ending(RunFacts(E.CRASHED, side_effect=True, mutation=Mutation.IN_FLIGHT))
    assert ending.blocked_type is BlockedType.DECISION
    assert ending.mutation is Mutation.INDETERMINATE


@pytest.mark.parametrize(
    ("facts", "mutation"),
    [
        (RunFacts(None, has_result=True, side_effect=True), Mutation.APPLIED),
        (RunFacts(E.TIMEOUT, side_effect=True, verdict=Verdict.HAPPENED), Mutation.APPLIED),
        (RunFacts(E.TIMEOUT, side_effect=True, verdict=Verdict.NOT_HAPPENED), Mutation.FAILED),
        (RunFacts(E.MISMATCH, side_effect=True, mutation=Mutation.IN_FLIGHT), Mutation.IN_FLIGHT),
        (RunFacts(None, has_result=True, mutation=Mutation.NONE), Mutation.NONE),
    ],
)
def test_the_mutation_recorded_follows_the_side_effect(facts: RunFacts, mutation: Mutation) -> None:
    assert decide_ending(facts).mutation is mutation


def test_the_step_never_goes_back() -> None:
    assert decide_ending(RunFacts(E.CRASHED, step=Step.APPLIED)).step is Step.APPLIED
    assert decide_ending(RunFacts(E.CRASHED, step=Step.STARTED)).step is Step.AGENT_EXITED


def test_rate_limits_pause_the_agent_only_after_a_streak() -> None:
    assert not decide_ending(RunFacts(E.RATE_LIMITED, transient_streak=4)).pause_agent
    ending = decide_ending(RunFacts(E.RATE_LIMITED, transient_streak=5, max_transient=5))
    assert ending.pause_agent and ending.backoff and ending.retries
    assert not ending.block


def test_over_budget_drops_the_retry_and_blocks_for_a_decision() -> None:
    retried = decide_ending(RunFacts(E.TIMEOUT, attempt=1, max_attempts=3))
    stopped = over_budget(retried)
    assert not stopped.retries and stopped.block
    assert stopped.blocked_type is BlockedType.DECISION
    assert stopped.status is retried.status  # the run itself ended as it did


def test_budget_reason_names_the_limit_that_was_passed() -> None:
    budget = BudgetConfig(max_cost_usd_per_run=1.0, max_cost_usd_per_item=5.0)
    assert budget_reason(budget, "RUN-1", 0.5, "WRK-001", 4.0) is None
    assert budget_reason(budget, "RUN-1", 1.5, "WRK-001", 4.0) == (
        "run RUN-1 cost $1.5000, over the per-run budget $1.0000"
    )
    assert budget_reason(budget, "RUN-1", 0.5, "WRK-001", 6.0) == (
        "WRK-001 has cost $6.0000, over the per-item budget $5.0000"
    )
    assert budget_reason(BudgetConfig(), "RUN-1", 99.0, "WRK-001", 99.0) is None


def _interrupted(kind: EndingKind, facts: RunFacts) -> Ending:
    return interrupted_ending(kind, facts)


def test_a_stopped_run_is_cancelled_and_its_item_stays() -> None:
    ending = _interrupted(EndingKind.CANCELLED, RunFacts(None, step=Step.STARTED))
    assert (ending.status, ending.block, ending.retries) == (S.CANCELLED, False, False)
    assert ending.step is Step.STARTED  # an interrupted run's step stays where it was


def test_a_lost_run_crashes_and_is_retried_with_the_same_attempt() -> None:
    ending = _interrupted(EndingKind.LOST, RunFacts(None, attempt=2))
    assert (ending.status, ending.retry_attempt, ending.block) == (S.CRASHED, 2, False)


@pytest.mark.parametrize("kind", [EndingKind.CANCELLED, EndingKind.LOST])
@pytest.mark.parametrize("verdict", [None, Verdict.UNKNOWN])
def test_an_interrupted_side_effect_that_may_have_acted_waits_for_a_human(
    kind: EndingKind, verdict: Verdict | None
) -> None:
    facts = RunFacts(None, side_effect=True, mutation=Mutation.IN_FLIGHT, verdict=verdict)
    ending = _interrupted(kind, facts)
    assert ending.kind is EndingKind.INDETERMINATE
    assert (ending.status, ending.mutation) == (S.PAUSED_INDETERMINATE, Mutation.INDETERMINATE)
    assert ending.block and ending.blocked_type is BlockedType.DECISION and not ending.retries


def test_an_interrupted_side_effect_its_check_says_did_not_act_is_safe_again() -> None:
    facts = RunFacts(
        None, side_effect=True, mutation=Mutation.IN_FLIGHT, verdict=Verdict.NOT_HAPPENED
    )
    cancelled = _interrupted(EndingKind.CANCELLED, facts)
    assert (cancelled.status, cancelled.mutation) == (S.CANCELLED, Mutation.FAILED)
    lost = _interrupted(EndingKind.LOST, facts)
    assert (lost.status, lost.mutation, lost.retries) == (S.CRASHED, Mutation.FAILED, True)


def test_stale_and_internal_endings_block_the_item() -> None:
    stale = _interrupted(EndingKind.STALE, RunFacts(None))
    assert (stale.status, stale.block, stale.exhausted) == (S.CANCELLED, True, False)
    internal = _interrupted(EndingKind.INTERNAL, RunFacts(None))
    assert (internal.status, internal.block, internal.exhausted) == (
        S.FAILED_INTERNAL,
        True,
        True,
    )


def test_a_finished_agents_kind_is_not_an_interrupted_ending() -> None:
    with pytest.raises(ValueError, match="not an interrupted ending"):
        _interrupted(EndingKind.RETRY, RunFacts(None))


@pytest.mark.parametrize(
    ("decision", "mutation", "retry"),
    [
        (Decision.HAPPENED, Mutation.RESOLVED_HAPPENED, False),
        (Decision.NOT_HAPPENED, Mutation.RESOLVED_NOT_HAPPENED, True),
        (Decision.SKIP, Mutation.RESOLVED_SKIPPED, False),
    ],
)
def test_a_humans_resolve_records_the_decision_and_retries_only_not_happened(
    decision: Decision, mutation: Mutation, retry: bool
) -> None:
    settled = settle(decision, "ship")
    assert (settled.mutation, settled.retry) == (mutation, retry)
    assert settled.summary  # the retry's reason, or the phase's summary when it advances
