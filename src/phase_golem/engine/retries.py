"""Retries: how many attempts a phase gets, how long a rate limit waits, how a retry is queued.

A retry is a new run linked by `retry_of`, with the attempt it stands for and the
idempotency key copied from the run it retries, never recomputed (DESIGN §6).
"""

from __future__ import annotations

from datetime import datetime

from phase_golem.domain.events import EventKind
from phase_golem.domain.items import format_timestamp
from phase_golem.domain.pipelines import PhaseConfig, Settings
from phase_golem.domain.runs import Run, RunStatus
from phase_golem.store import Transaction


def max_attempts(settings: Settings, phase: PhaseConfig | None) -> int:
    retries = settings.execution.max_retries
    if phase is not None and phase.max_retries is not None:
        retries = phase.max_retries
    return retries + 1


def backoff_seconds(
    tx: Transaction, run: Run, settings: Settings, since: str | None
) -> tuple[float, int]:
    """Delay before the next try after a rate limit, and how many came in a row.

    The streak counts back along the retry chain, but not past the agent's last resume:
    a human let it go again, so the limits it hit before do not count twice.
    """
    streak = 1
    cursor = run.retry_of
    while cursor is not None:
        earlier = tx.get_run(cursor)
        if earlier is None or earlier.status is not RunStatus.PAUSED_TRANSIENT:
            break
        if since is not None and (earlier.ended_at or "") < since:
            break
        streak += 1
        cursor = earlier.retry_of
    backoff = settings.execution.backoff
    delay = min(backoff.base_seconds * backoff.factor ** (streak - 1), backoff.max_seconds)
    return delay, streak


def queue_retry(
    tx: Transaction, run: Run, *, attempt: int, not_before: datetime | None, reason: str
) -> Run:
    retry = Run(
        id=tx.allocate_run_id(),
        item_id=run.item_id,
        phase=run.phase,
        kind=run.kind,
        queued_at=format_timestamp(tx.now),
        pool=run.pool,
        attempt=attempt,
        visit=run.visit,
        retry_of=run.id,
        idempotency_key=run.idempotency_key,  # copied, never recomputed
        side_effect=run.side_effect,
        not_before=format_timestamp(not_before) if not_before else None,
    )
    tx.create_run(retry, {"retry_of": run.id, "reason": reason})
    tx.append_event(
        EventKind.RUN_RETRY_SCHEDULED,
        item_id=run.item_id,
        run_id=retry.id,
        data={"retry_of": run.id, "attempt": attempt, "not_before": retry.not_before},
    )
    return retry
