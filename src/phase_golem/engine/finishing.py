"""What a finished run tells the person watching `run`, its worklog line, and the loop's
counts (the run summary and the circuit breaker)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from phase_golem.clock import utc_now
from phase_golem.engine.completion import Completion
from phase_golem.engine.files import append_worklog
from phase_golem.engine.selection import LoopState


def account_for(
    completion: Completion, state: LoopState, root: Path, emit: Callable[[str], None]
) -> None:
    """Say what the run did, write its worklog lines, and count it."""
    summary = state.summary
    run = completion.run
    emit(f"[{run.item_id}][{run.phase}] {completion.worklog_outcome}: {completion.message}")
    summary.cost_usd += run.cost_usd
    if completion.follow_ups:
        summary.follow_ups_created += len(completion.follow_ups)
        emit(f"Follow-ups: {', '.join(completion.follow_ups)} added to the backlog")
    for title, why in completion.skipped_follow_ups:
        emit(f"Follow-up {title!r} skipped: {why}")
    for source, target in completion.merged:
        summary.items_merged += 1
        emit(f"{source} merged into {target}")
        append_worklog(root, utc_now(), source, "", "triage", "Merged", f"Merged into {target}")
    if completion.completed:
        summary.items_completed.append(completion.item_id)
        emit(f"{completion.item_id} completed and archived")
    if completion.blocked:
        summary.items_blocked.add(completion.item_id)
    _count_toward_breaker(completion, state)
    append_worklog(
        root,
        utc_now(),
        completion.item_id,
        completion.title,
        run.phase,
        completion.worklog_outcome,
        completion.message,
    )


def _count_toward_breaker(completion: Completion, state: LoopState) -> None:
    """Two items in a row that exhausted their retries trip it; any real progress resets it."""
    if completion.completed or (completion.blocked and not completion.exhausted):
        state.breaker = 0
    elif completion.exhausted:
        state.breaker += 1
