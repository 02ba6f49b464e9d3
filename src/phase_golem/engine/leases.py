"""Run leases (DESIGN §3): a claim is good for `lease_seconds` and renewed while we work.

A claim writes `lease_until`; while the run's agent lives (ours or adopted) a heartbeat
renews it every third of the lease. A run whose lease ran out belongs to a worker that
stopped renewing it — it died, or lost the machine — and the recovery sweep takes it
over (engine/recovery.py). Renewing is liveness, not a state change, so it writes no
ledger event (one per heartbeat would drown the history).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from phase_golem.domain.items import parse_timestamp
from phase_golem.domain.pipelines import ExecutionConfig
from phase_golem.domain.runs import Run, Step
from phase_golem.store import Store, StoreError

log = logging.getLogger(__name__)

MIN_HEARTBEAT_SECONDS = 0.05


def heartbeat_seconds(execution: ExecutionConfig) -> float:
    return max(execution.lease_seconds / 3, MIN_HEARTBEAT_SECONDS)


def renew(store: Store, run_id: str, worker_id: str, lease_seconds: float) -> bool:
    """Extend our lease on a run; False when it is no longer ours (or no longer active)."""
    try:
        with store.transaction() as tx:
            until = tx.now + timedelta(seconds=lease_seconds)
            return tx.renew_lease(run_id, worker_id, until)
    except StoreError as exc:  # a busy database must not take the run down; try again
        log.warning("could not renew the lease of %s: %s", run_id, exc)
        return True


async def _heartbeat(store: Store, run_id: str, worker_id: str, execution: ExecutionConfig) -> None:
    interval = heartbeat_seconds(execution)
    while True:
        if not await asyncio.to_thread(renew, store, run_id, worker_id, execution.lease_seconds):
            return
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def leased(
    store: Store, run_id: str, worker_id: str, execution: ExecutionConfig
) -> AsyncIterator[None]:
    """Keep the run's lease fresh for as long as the block runs."""
    beat = asyncio.create_task(_heartbeat(store, run_id, worker_id, execution))
    try:
        yield
    finally:
        beat.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beat


def lease_expired(run: Run, now: datetime) -> bool:
    """A claimed or started run whose owner stopped renewing its lease."""
    if not run.is_active or run.step is Step.QUEUED:
        return False
    if run.lease_until is None:
        return True
    return parse_timestamp(run.lease_until) <= now


def sweep_due(last: float, now: float, execution: ExecutionConfig) -> bool:
    return now - last >= max(execution.lease_seconds / 2, 1.0)
