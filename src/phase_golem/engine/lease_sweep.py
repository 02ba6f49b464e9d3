"""The lease sweep of a running worker (DESIGN §3, §14): every half lease, the runs whose
owner stopped renewing their lease are taken over — retried, reconciled, or adopted when
their agent still lives here — and what it did is said once."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from phase_golem.domain.runs import Step
from phase_golem.engine.context import EngineContext
from phase_golem.engine.leases import sweep_due
from phase_golem.engine.offloop import settle_then_cancel
from phase_golem.engine.recovery import Recovered, sweep_expired_leases


class LeaseSweep:
    """When the next sweep is due, the sweep itself, and the lines it says."""

    def __init__(self, ctx: EngineContext, emit: Callable[[str], None]) -> None:
        self.ctx = ctx
        self.emit = emit
        self._last = time.monotonic()
        self._waited_for: set[str] = set()  # runs whose agent elsewhere we said we wait for

    def _due(self) -> bool:
        return sweep_due(self._last, time.monotonic(), self.ctx.settings.execution)

    async def sweep(self, ours: Collection[str]) -> Recovered | None:
        """The runs recovered (None when no sweep is due yet). In a thread (reconcile checks
        and git are slow): a loop held up here would delay our own runs' lease renewals,
        and let other workers take them over."""
        if not self._due():
            return None
        self._last = time.monotonic()
        ctx = self.ctx
        recovered = await settle_then_cancel(
            sweep_expired_leases, ctx.store, ctx.settings, ctx.root, set(ours), ctx.host
        )
        for run_id in recovered.runs:
            self.emit(f"[recovery] {run_id}: its lease expired; retried, reconciled or held")
        for run in recovered.adopt:
            self.emit(f"[recovery] {run.id}: its lease expired but its agent lives; adopting it")
        for run_id in sorted(set(recovered.waiting) - self._waited_for):
            self.emit(
                f"[recovery] {run_id}: its lease expired but its agent still runs in another "
                "clone on this host; waiting for it to exit"
            )
        self._waited_for.update(recovered.waiting)
        return recovered

    def others_to_sweep(self, ours: Collection[str]) -> bool:
        """A sweep is due and claimed runs that are not ours exist (read from the snapshot):
        the wait ends so the sweep runs, instead of waiting on a run nobody renews."""
        if not self._due():
            return False
        live = self.ctx.store.snapshot().runs_by_id.values()
        return any(r.id not in ours and r.step is not Step.QUEUED for r in live)
