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
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from phase_golem.domain.items import parse_timestamp
from phase_golem.domain.pipelines import ExecutionConfig
from phase_golem.domain.runs import EndedElsewhere, Run, RunStatus, Step
from phase_golem.faults import StoreFault, StoreUnavailable
from phase_golem.store import Store, StoreError

log = logging.getLogger(__name__)

MIN_HEARTBEAT_SECONDS = 0.05
# Renewals get threads of their own: queued behind the starts, completions and git of
# many runs in the default pool, a renewal came late on a busy machine and another worker
# took over a run that was alive and well.
_RENEWALS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lease")


def heartbeat_seconds(execution: ExecutionConfig) -> float:
    return max(execution.lease_seconds / 3, MIN_HEARTBEAT_SECONDS)


def renew(store: Store, run_id: str, worker_id: str, lease_seconds: float) -> bool:
    """Extend our lease on a run; False when it is no longer ours (or no longer active).

    A busy database must not take the run down (the next beat tries again), nor a
    connection lost mid-renewal (the store reconnects at the next beat, waiting a while
    for its server); a store whose disk or files failed, or whose server stayed away
    (StoreFault), is raised, and stops the run (see `leased`).
    """
    try:
        with store.transaction() as tx:
            until = tx.now + timedelta(seconds=lease_seconds)
            return tx.renew_lease(run_id, worker_id, until)
    except StoreUnavailable as exc:
        log.warning("could not renew the lease of %s: %s", run_id, exc)
        return True
    except StoreFault:
        raise
    except StoreError as exc:
        log.warning("could not renew the lease of %s: %s", run_id, exc)
        return True


def ended_as(store: Store, run_id: str) -> RunStatus | None:
    """How the run ended, or None while it is live (or when the store cannot say now)."""
    try:
        with store.reader() as tx:
            run = tx.get_run(run_id)
    except StoreError:
        return None
    if run is None:
        return RunStatus.CANCELLED
    return None if run.is_active else run.status


async def _heartbeat(
    store: Store,
    run_id: str,
    worker_id: str,
    execution: ExecutionConfig,
    on_fault: Callable[[StoreFault], None],
    on_ended: Callable[[RunStatus], None],
    at_once: bool,
) -> None:
    interval = heartbeat_seconds(execution)
    loop = asyncio.get_running_loop()
    if not at_once:
        await asyncio.sleep(interval)
    while True:
        try:
            renewed = await loop.run_in_executor(
                _RENEWALS, renew, store, run_id, worker_id, execution.lease_seconds
            )
        except StoreFault as fault:
            on_fault(fault)
            return
        if not renewed:
            # Not ours any more. Adopted by a worker on this host: it watches the same
            # agent, which is left alone. Ended (another worker found the lease run out and
            # retried the run elsewhere): the agent's work can never be recorded, and a
            # side effect it is still about to make would be made twice: it is stopped.
            status = await loop.run_in_executor(_RENEWALS, ended_as, store, run_id)
            if status is not None:
                on_ended(status)
            return
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def leased(
    store: Store,
    run_id: str,
    worker_id: str,
    execution: ExecutionConfig,
    *,
    at_once: bool = True,
) -> AsyncIterator[None]:
    """Keep the run's lease fresh for as long as the block runs: renewed at once (unless
    `at_once` is False: the lease was just taken), then every third of the lease.

    When the store fails under a renewal, the block is cancelled (its agent is stopped)
    and the fault is raised in its place, so the whole run stops at once with its cause.
    When another worker ended the run meanwhile, the block is cancelled the same way and
    EndedElsewhere is raised in its place.
    """
    body = asyncio.current_task()
    causes: list[Exception] = []

    def stop_the_run(cause: Exception | None) -> None:
        if cause is not None:
            causes.append(cause)
        if body is not None:
            body.cancel()

    def ended_elsewhere(status: RunStatus) -> None:
        if status is RunStatus.CANCELLED:  # stopped on purpose (its item closed): a cancel
            stop_the_run(None)
            return
        why = f"run {run_id} was ended elsewhere while its agent ran (its lease had run out)"
        stop_the_run(EndedElsewhere(why))

    beat = asyncio.create_task(
        _heartbeat(store, run_id, worker_id, execution, stop_the_run, ended_elsewhere, at_once)
    )
    try:
        yield
    except asyncio.CancelledError:
        if causes:
            raise causes[0] from None
        raise
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
