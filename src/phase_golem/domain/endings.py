"""How a run ends: one pure rule for every way a run can finish (DESIGN §6).

`decide_ending` takes what is known about a finished agent (its failure class, whether it
left a result, the side-effect state and reconcile verdict, attempts, the rate-limit
streak) and says how the run ends: its status and mutation, whether it retries (and with
which attempt number), whether its item blocks, whether the agent is paused, whether it
counts toward the circuit breaker. The other endings — a stop request, a lost run found by
recovery, a stale item, a bug of ours — have their own small rules here, so
`engine/completion.py` only carries out what these decide.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from phase_golem.domain.items import BlockedType
from phase_golem.domain.pipelines import BudgetConfig
from phase_golem.domain.runs import ErrorClass, Mutation, RunStatus, Step

RETRYABLE = frozenset(
    {ErrorClass.TIMEOUT, ErrorClass.CRASHED, ErrorClass.INVALID_RESULT, ErrorClass.REPORTED_FAILED}
)
# A side-effect phase that ended like this may or may not have acted (DESIGN §6).
UNCERTAIN = frozenset({ErrorClass.TIMEOUT, ErrorClass.CRASHED, ErrorClass.INVALID_RESULT})


class Verdict(StrEnum):
    """What a side-effect phase's reconcile check (exit 0 / 1 / other) says."""

    HAPPENED = "happened"
    NOT_HAPPENED = "not_happened"
    UNKNOWN = "unknown"


class EndingKind(StrEnum):
    APPLIED = "applied"  # the result moves the item (a reconciled side effect included)
    INDETERMINATE = "indeterminate"  # a side effect may have acted: a human decides
    RETRY = "retry"  # an attempt failed and another is left
    EXHAUSTED = "exhausted"  # the last attempt failed: the item blocks
    BACKOFF = "backoff"  # rate limited: retried after a delay, no attempt used
    UNAVAILABLE = "unavailable"  # the agent is paused; the item keeps its place
    BLOCKED_NOW = "blocked_now"  # mismatch, a bug of ours: block at once
    CANCELLED = "cancelled"  # stopped: the item stays where it was
    LOST = "lost"  # recovery found its agent gone: crashed, retried as it was
    STALE = "stale"  # its item moved under it: cancelled, the item blocks
    INTERNAL = "internal"  # a bug of ours outside the agent: failed, the item blocks


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What is known about a run whose agent has finished (or was lost)."""

    error_class: ErrorClass | None
    has_result: bool = False
    side_effect: bool = False
    mutation: Mutation = Mutation.NONE
    verdict: Verdict | None = None  # the reconcile check's, when it ran
    attempt: int = 1
    max_attempts: int = 1
    transient_streak: int = 0  # rate limits in a row, this one included
    max_transient: int = 5
    step: Step = Step.STARTED


@dataclass(frozen=True, slots=True)
class Ending:
    kind: EndingKind
    status: RunStatus
    mutation: Mutation
    step: Step
    worklog: str  # the worklog's outcome word
    retry_attempt: int | None = None  # None: no retry
    backoff: bool = False  # the retry waits out a rate-limit delay
    block: bool = False  # the item blocks (unless it already is, or is done)
    blocked_type: BlockedType | None = None
    pause_agent: bool = False
    exhausted: bool = False  # counts toward the circuit breaker
    apply_result: bool = False

    @property
    def retries(self) -> bool:
        return self.retry_attempt is not None


def decide_ending(facts: RunFacts) -> Ending:
    """How a run whose agent finished ends, from its failure class and its settings."""
    kind = _kind_of(facts)
    status = _STATUS.get(kind) or _failed_status(facts.error_class)
    mutation = _mutation(facts, status)
    step = Step.COMMITTED if status is RunStatus.COMMITTED else Step.AGENT_EXITED
    step = max(step, facts.step, key=lambda s: s.order)
    base = Ending(kind, status, mutation, step, _WORKLOG[kind])
    if kind is EndingKind.APPLIED:
        return replace(base, apply_result=True)
    if kind is EndingKind.INDETERMINATE:
        return replace(base, block=True, blocked_type=BlockedType.DECISION)
    if kind is EndingKind.RETRY:
        return replace(base, retry_attempt=facts.attempt + 1)
    if kind is EndingKind.BACKOFF:
        paused = facts.transient_streak >= facts.max_transient
        return replace(base, retry_attempt=facts.attempt, backoff=True, pause_agent=paused)
    if kind is EndingKind.UNAVAILABLE:
        return replace(base, retry_attempt=facts.attempt, pause_agent=True)
    return replace(base, block=True, exhausted=True)  # exhausted, blocked at once


def _kind_of(facts: RunFacts) -> EndingKind:
    error = facts.error_class
    uncertain = facts.side_effect and error in UNCERTAIN
    if uncertain and facts.verdict is Verdict.HAPPENED:
        return EndingKind.APPLIED
    if facts.has_result and error in (None, ErrorClass.REPORTED_BLOCKED):
        return EndingKind.APPLIED
    if uncertain and facts.verdict is not Verdict.NOT_HAPPENED:
        return EndingKind.INDETERMINATE
    if error in RETRYABLE:
        return EndingKind.RETRY if facts.attempt < facts.max_attempts else EndingKind.EXHAUSTED
    if error is ErrorClass.RATE_LIMITED:
        return EndingKind.BACKOFF
    if error is ErrorClass.UNAVAILABLE:
        return EndingKind.UNAVAILABLE
    return EndingKind.BLOCKED_NOW


_STATUS = {
    EndingKind.APPLIED: RunStatus.COMMITTED,
    EndingKind.INDETERMINATE: RunStatus.PAUSED_INDETERMINATE,
    EndingKind.BACKOFF: RunStatus.PAUSED_TRANSIENT,
    EndingKind.UNAVAILABLE: RunStatus.PAUSED_APPROVAL,
}
_WORKLOG = {
    EndingKind.APPLIED: "Complete",  # the transition says more
    EndingKind.INDETERMINATE: "Blocked",
    EndingKind.RETRY: "Failed",
    EndingKind.EXHAUSTED: "Blocked",
    EndingKind.BACKOFF: "Waiting",
    EndingKind.UNAVAILABLE: "Waiting",
    EndingKind.BLOCKED_NOW: "Blocked",
    EndingKind.CANCELLED: "Cancelled",
    EndingKind.LOST: "Crashed",
    EndingKind.STALE: "Blocked",
    EndingKind.INTERNAL: "Failed",
}


def _failed_status(error: ErrorClass | None) -> RunStatus:
    if error is ErrorClass.REPORTED_FAILED:
        return RunStatus.FAILED_LOGIC
    if error is ErrorClass.INTERNAL:
        return RunStatus.FAILED_INTERNAL
    return RunStatus.FAILED_AGENT


def _mutation(facts: RunFacts, status: RunStatus) -> Mutation:
    if status is RunStatus.PAUSED_INDETERMINATE:
        return Mutation.INDETERMINATE
    if not facts.side_effect:
        return facts.mutation
    if facts.verdict is Verdict.NOT_HAPPENED:
        return Mutation.FAILED
    return Mutation.APPLIED if status is RunStatus.COMMITTED else facts.mutation


def over_budget(ending: Ending) -> Ending:
    """Over a `[budget]` limit the item stops for a human before it spends more: whatever
    retry was planned is dropped and the item blocks for a decision."""
    return replace(
        ending, retry_attempt=None, backoff=False, block=True, blocked_type=BlockedType.DECISION
    )


def budget_reason(
    budget: BudgetConfig, run_id: str, run_cost: float, item_id: str, item_cost: float
) -> str | None:
    """Why a run's or an item's spend is over its `[budget]` limit, or None."""
    per_run, per_item = budget.max_cost_usd_per_run, budget.max_cost_usd_per_item
    if per_run is not None and run_cost > per_run:
        return f"run {run_id} cost ${run_cost:.4f}, over the per-run budget ${per_run:.4f}"
    if per_item is not None and item_cost > per_item:
        return f"{item_id} has cost ${item_cost:.4f}, over the per-item budget ${per_item:.4f}"
    return None


def may_have_acted(side_effect: bool, mutation: Mutation) -> bool:
    """A side-effect phase whose agent had started acting may or may not have acted."""
    return side_effect and mutation is Mutation.IN_FLIGHT


def interrupted_ending(kind: EndingKind, facts: RunFacts) -> Ending:
    """A run that did not finish on its own: stopped (`CANCELLED`), its agent lost
    (`LOST`), its item moved under it (`STALE`) or a bug of ours (`INTERNAL`). Its step
    stays where it was.

    A side effect that may have acted, with no check or one that cannot tell, waits for a
    human (`paused:indeterminate`); a check that says it did not act makes it safe again.
    """
    acted = may_have_acted(facts.side_effect, facts.mutation)
    step, worklog = facts.step, _WORKLOG[kind]
    if acted and kind in (EndingKind.CANCELLED, EndingKind.LOST):
        if facts.verdict is None or facts.verdict is Verdict.UNKNOWN:
            return Ending(
                EndingKind.INDETERMINATE,
                RunStatus.PAUSED_INDETERMINATE,
                Mutation.INDETERMINATE,
                step,
                _WORKLOG[EndingKind.INDETERMINATE],
                block=True,
                blocked_type=BlockedType.DECISION,
            )
        safe = Mutation.FAILED  # its check says it did not act: safe to run again
    else:
        safe = facts.mutation
    if kind is EndingKind.CANCELLED:
        return Ending(kind, RunStatus.CANCELLED, safe, step, worklog)
    if kind is EndingKind.LOST:  # retried as it was: a lost agent uses no attempt
        return Ending(kind, RunStatus.CRASHED, safe, step, worklog, retry_attempt=facts.attempt)
    if kind is EndingKind.STALE:
        return Ending(kind, RunStatus.CANCELLED, safe, step, worklog, block=True)
    if kind is EndingKind.INTERNAL:
        status = RunStatus.FAILED_INTERNAL
        return Ending(kind, status, safe, step, worklog, block=True, exhausted=True)
    raise ValueError(f"{kind} is not an interrupted ending")


class Decision(StrEnum):
    """A human's word on a side effect that may or may not have acted (`resolve`)."""

    HAPPENED = "happened"
    NOT_HAPPENED = "not_happened"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Settlement:
    """What `resolve` does to a `paused:indeterminate` run, which itself never changes
    status again: the mutation it records, and whether the phase is run again (a retry
    with the same key) or counts as complete (the item advances)."""

    mutation: Mutation
    retry: bool
    summary: str


def settle(decision: Decision, phase: str) -> Settlement:
    if decision is Decision.NOT_HAPPENED:
        return Settlement(Mutation.RESOLVED_NOT_HAPPENED, True, "resolved: not happened")
    if decision is Decision.HAPPENED:
        what = f"{phase}: the side effect happened (a human said so)"
        return Settlement(Mutation.RESOLVED_HAPPENED, False, what)
    what = f"{phase}: skipped by a human after an uncertain side effect"
    return Settlement(Mutation.RESOLVED_SKIPPED, False, what)
