"""Runs left active by an orchestrator that died: end them and queue their retry.

The process lock guarantees no other orchestrator owns them. A run that never started
stays queued; one that was claimed or running ends `crashed` and is retried as a new run
(same attempt number: the crash was ours, not the agent's), keeping its idempotency key.
"""

from __future__ import annotations

from phase_golem.domain.events import EventKind
from phase_golem.domain.items import format_timestamp
from phase_golem.domain.runs import ErrorClass, RunStatus, Step, finish
from phase_golem.engine.completion import queue_retry
from phase_golem.store import Store


def recover_interrupted_runs(store: Store) -> list[str]:
    recovered: list[str] = []
    with store.transaction() as tx:
        for run in tx.list_runs(statuses=[RunStatus.ACTIVE]):
            if run.step is Step.QUEUED:
                continue
            crashed = finish(
                run,
                RunStatus.CRASHED,
                format_timestamp(tx.now),
                error="the orchestrator stopped before this run finished",
                error_class=ErrorClass.CRASHED,
            )
            tx.save_run(crashed, EventKind.RUN_FINISHED, {"recovered": True})
            queue_retry(tx, crashed, attempt=run.attempt, not_before=None, reason="recovered")
            recovered.append(run.id)
    return recovered
