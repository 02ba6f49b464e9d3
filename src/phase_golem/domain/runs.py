"""Runs: one attempt to execute one phase (or triage) for one item.

A run's `step` only moves forward; its `status` changes once, away from `active`,
and never again. A retry is a new run linked by `retry_of`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from phase_golem.domain.errors import DomainError
from phase_golem.domain.items import PhasePool, parse_timestamp


class RunKind(StrEnum):
    TRIAGE = "triage"
    PHASE = "phase"


class Step(StrEnum):
    QUEUED = "queued"
    CLAIMED = "claimed"
    STARTED = "started"
    AGENT_EXITED = "agent_exited"
    APPLIED = "applied"
    COMMITTED = "committed"

    @property
    def order(self) -> int:
        return list(Step).index(self)


class RunStatus(StrEnum):
    ACTIVE = "active"
    COMMITTED = "committed"
    PAUSED_TRANSIENT = "paused:transient"
    PAUSED_APPROVAL = "paused:approval"
    PAUSED_INDETERMINATE = "paused:indeterminate"
    FAILED_LOGIC = "failed:logic"
    FAILED_AGENT = "failed:agent"
    FAILED_INTERNAL = "failed:internal"
    CRASHED = "crashed"
    CANCELLED = "cancelled"


class Mutation(StrEnum):
    NONE = "none"
    IN_FLIGHT = "in_flight"
    APPLIED = "applied"
    FAILED = "failed"
    INDETERMINATE = "indeterminate"
    RESOLVED_HAPPENED = "resolved_happened"
    RESOLVED_NOT_HAPPENED = "resolved_not_happened"
    RESOLVED_SKIPPED = "resolved_skipped"


class ErrorClass(StrEnum):
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    CRASHED = "crashed"
    INVALID_RESULT = "invalid_result"
    MISMATCH = "mismatch"
    REPORTED_FAILED = "reported_failed"
    REPORTED_BLOCKED = "reported_blocked"
    INTERNAL = "internal"


class RunRuleError(DomainError):
    pass


class EndedElsewhere(RunRuleError):
    """The run was ended, or taken over, by another worker meanwhile: it is not ours to
    end. Not a fault of anyone's (a lease ran out, two workers raced): nothing is done."""


@dataclass(frozen=True, slots=True)
class Run:
    id: str
    item_id: str
    phase: str
    kind: RunKind
    queued_at: str
    pool: PhasePool | None = None
    attempt: int = 1
    visit: int = 1
    retry_of: str | None = None
    step: Step = Step.QUEUED
    status: RunStatus = RunStatus.ACTIVE
    error: str | None = None
    error_class: ErrorClass | None = None
    idempotency_key: str | None = None
    snapshot_before: str | None = None
    snapshot_after: str | None = None
    agent: str | None = None
    model: str | None = None
    session_id: str | None = None
    worker_id: str | None = None
    lease_until: str | None = None
    not_before: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    exit_code: int | None = None
    pid: int | None = None
    cost_usd: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    result: dict[str, Any] | None = None
    side_effect: bool = False
    mutation: Mutation = Mutation.NONE
    # Where the agent runs, recorded with its pid (DESIGN §14): a pid means something only
    # on its own host (`host_id`) and only until that host reboots (`boot_id`).
    host_id: str | None = None
    boot_id: str | None = None
    # Claimed to run alone (a destructive phase in shared isolation): while it is live no
    # other run is claimed, by any worker (the claim checks it; DESIGN §7, §14).
    exclusive: bool = False

    def replace(self, **changes: Any) -> Run:
        return dataclasses.replace(self, **changes)

    @property
    def is_active(self) -> bool:
        return self.status is RunStatus.ACTIVE


RUN_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Run))


@dataclass(frozen=True, slots=True)
class Holder:
    """Who may end an active run: the worker holding it (whatever its lease says now), or a
    sweeper that saw its lease run out — and then only while nobody has taken it over, so
    a run is ended once however many workers race for it (DESIGN §14)."""

    worker_id: str | None
    lapsed: tuple[Step, str | None] | None = None  # (step, lease_until) the sweeper saw

    @classmethod
    def of_lapsed(cls, run: Run) -> Holder:
        return cls(run.worker_id, (run.step, run.lease_until))

    def holds(self, run: Run) -> bool:
        if not run.is_active or run.worker_id != self.worker_id:
            return False
        return self.lapsed is None or (run.step, run.lease_until) == self.lapsed

    def check(self, run: Run) -> None:
        """Raise EndedElsewhere unless this holder may still end `run`."""
        if not self.holds(run):
            raise EndedElsewhere(f"run {run.id} was ended or taken over elsewhere meanwhile")


def advance_step(run: Run, step: Step) -> Run:
    """Move a run forward; moving back or standing still on a finished run raises."""
    if not run.is_active:
        raise RunRuleError(f"run {run.id} is {run.status.value}; its step cannot change")
    if step.order <= run.step.order:
        raise RunRuleError(f"run {run.id}: step cannot go from {run.step.value} to {step.value}")
    return run.replace(step=step)


def finish(run: Run, status: RunStatus, ended_at: str, **changes: Any) -> Run:
    """Leave `active` exactly once."""
    if not run.is_active:
        raise RunRuleError(f"run {run.id} already ended as {run.status.value}")
    if status is RunStatus.ACTIVE:
        raise RunRuleError("a run cannot finish as active")
    if status is RunStatus.COMMITTED and changes.get("step", run.step) is not Step.COMMITTED:
        raise RunRuleError("a run reaches committed status only at the committed step")
    return run.replace(status=status, ended_at=ended_at, **changes)


def ensure_valid_transition(before: Run, after: Run) -> None:
    """The store calls this on every run update so no adapter can break the rules."""
    if before.id != after.id:
        raise RunRuleError("a run update must keep its id")
    if after.step.order < before.step.order:
        raise RunRuleError(
            f"run {before.id}: step cannot go from {before.step.value} to {after.step.value}"
        )
    if not before.is_active and after.status is not before.status:
        raise RunRuleError(
            f"run {before.id} ended as {before.status.value}; its status cannot change"
        )
    if not before.is_active and after.step is not before.step:
        raise RunRuleError(f"run {before.id} ended; its step cannot change")
    if after.status is RunStatus.COMMITTED and after.step is not Step.COMMITTED:
        raise RunRuleError("a run reaches committed status only at the committed step")


def interrupted_visit(earlier: list[Run]) -> Run | None:
    """The last run of a phase when it was cut off (cancelled or crashed) and never followed.

    Picking it up as a retry keeps its attempt number and its idempotency key, so a
    Ctrl-C or a crash does not make the same visit look new to the agent.
    """
    followed = {r.retry_of for r in earlier if r.retry_of is not None}
    open_ends = [r for r in earlier if r.id not in followed]
    if not open_ends:
        return None
    last = max(open_ends, key=lambda r: (r.queued_at, r.id))
    if last.status in (RunStatus.CANCELLED, RunStatus.CRASHED):
        return last
    return None


def backing_off(run: Run, now: datetime) -> bool:
    """A queued run whose `not_before` (a rate-limit backoff) is still ahead."""
    return run.not_before is not None and parse_timestamp(run.not_before) > now
