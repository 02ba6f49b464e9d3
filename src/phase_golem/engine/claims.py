"""Which queued runs a worker may claim now, and the claim itself (DESIGN §3, §7, §14).

The claim policy reads the published snapshot: every worker's live runs are in it, so the
tree rule (a destructive run in shared isolation runs alone) holds across workers; the
claim checks it again in its own transaction (`alone`), so two workers cannot both pass.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from phase_golem.clock import utc_now
from phase_golem.domain.items import Item
from phase_golem.domain.pipelines import Isolation, Settings
from phase_golem.domain.runs import Run, RunKind, Step, backing_off
from phase_golem.engine.agent_pauses import Holds
from phase_golem.engine.completion import phase_config
from phase_golem.engine.context import EngineContext
from phase_golem.engine.control import PAUSE_KEY, pause_state
from phase_golem.engine.owed import owed_by_other_clones
from phase_golem.store import BacklogSnapshot, Transaction

Visit = tuple[str, str, int]  # (item, phase, visit): what `--cap` counts, once per visit
Claimed = list[tuple[Run, Item | None]]


class ClaimRequest(NamedTuple):
    free: int  # how many runs to claim (0: none)
    lease: datetime
    item_ids: frozenset[str] | None
    alone: bool = False  # one destructive run, only if nothing runs anywhere


def is_destructive(settings: Settings, run: Run, items: Mapping[str, Item]) -> bool:
    item = items.get(run.item_id)
    if item is None or run.kind is RunKind.TRIAGE:
        return False
    phase = phase_config(settings, item, run)
    return phase is not None and phase.is_destructive


@dataclass
class ClaimPolicy:
    """What this worker may claim: its free slots, its scope, the cap, the tree rule."""

    ctx: EngineContext
    counted: set[Visit]  # the scheduler's: visits already counted toward the cap

    def owed_elsewhere(self, tx: Transaction) -> frozenset[str]:
        """Items whose last commit another clone still owes the shared remote (none when
        there is no remote): their next phase waits for it, here and in decide."""
        if self.ctx.settings.execution.remote is None:
            return frozenset()
        return frozenset(owed_by_other_clones(tx, self.ctx.root))

    def request(
        self,
        tx: Transaction,
        free: int,
        scope: frozenset[str] | None,
        cap_reached: bool,
        owed: frozenset[str] | None = None,
    ) -> ClaimRequest:
        """How many runs to claim (0: none), their lease, of which items, and whether alone.
        `owed`: `owed_elsewhere` as the caller already read it in this transaction."""
        lease = utc_now() + timedelta(seconds=self.ctx.settings.execution.lease_seconds)
        if free <= 0 or pause_state(tx) is not None:  # the flag, read under the claim's lock
            return ClaimRequest(0, lease, None)
        item_ids, alone = self.claimable(tx, scope, cap_reached, owed)
        return ClaimRequest(free, lease, item_ids, alone)

    def claimable(
        self,
        tx: Transaction,
        scope: frozenset[str] | None,
        cap_reached: bool,
        owed: frozenset[str] | None = None,
    ) -> tuple[frozenset[str] | None, bool]:
        """Items whose queued runs may start now: in scope, within the cap, tree rule kept;
        and whether the one run to claim must run alone (a destructive one).

        A run queued by an earlier session counts toward the cap when claimed; once the cap
        is reached only retries of visits already counted may start. In shared isolation a
        destructive run starts only when nothing else runs, and nothing starts beside a
        running destructive one (a retry that became due included), whichever worker runs
        them. With a shared remote, a run whose item another clone still owes a push waits.
        """
        settings = self.ctx.settings
        now = tx.now
        backlog = tx.snapshot()  # the live runs are kept in memory, refreshed by sequence
        running = [r for r in backlog.runs() if r.step is not Step.QUEUED]
        due = [
            r
            for r in backlog.runs()
            if r.step is Step.QUEUED
            and r.idempotency_key  # keyed first (see the scheduler's decide)
            and not backing_off(r, now)
            and (scope is None or r.item_id in scope)
        ]
        items = backlog.items_by_id
        holds = Holds.read(tx, settings)
        due = [r for r in due if not holds.run_held(r, items.get(r.item_id))]
        # The clone that queued it still owes the remote its item's last commit: started
        # here, the run would start without that work (and its push would be refused).
        owed = self.owed_elsewhere(tx) if owed is None else owed
        due = [r for r in due if r.item_id not in owed]
        shared = settings.execution.isolation is Isolation.SHARED

        def destructive(run: Run) -> bool:
            return is_destructive(settings, run, items)

        if any(r.exclusive or (shared and destructive(r)) for r in running):
            return frozenset(), False
        if cap_reached:
            due = [r for r in due if (r.item_id, r.phase, r.visit) in self.counted]
        if not shared:
            return frozenset(r.item_id for r in due), False
        if due and not running and destructive(due[0]):
            return frozenset({due[0].item_id}), True  # its turn: it runs alone
        return frozenset(r.item_id for r in due if not destructive(r)), False


def claim_in(ctx: EngineContext, tx: Transaction, request: ClaimRequest) -> Claimed:
    """Claim in the caller's transaction (with each run's item)."""
    free, lease, item_ids, alone = request
    if free <= 0:
        return []
    claimed = tx.claim_runs(ctx.worker_id, free, lease, item_ids=item_ids, alone=alone)
    return [(run, tx.get_item(run.item_id)) for run in claimed]


def claim_alone(ctx: EngineContext, request: ClaimRequest) -> Claimed | None:
    """Claim in a round trip of its own where the store can (PostgreSQL: the decide lock
    is then not held across the claim's round trips); None where it cannot. The pause
    flag is checked again by the claim itself, so a pause committed after the decision
    that made the request still stops it."""
    claim = getattr(ctx.store, "claim_runs", None)
    free, lease, item_ids, alone = request
    if claim is None:
        return None
    if free <= 0:
        return []
    claimed: list[Run] | None = claim(
        ctx.worker_id, free, lease, item_ids, unless_flag=PAUSE_KEY, alone=alone
    )
    if claimed is None:
        return None
    backlog = ctx.store.snapshot()
    return [(run, backlog.get(run.item_id)) for run in claimed]


def startable_runs(
    ctx: EngineContext, backlog: BacklogSnapshot, in_scope: Callable[[str], bool]
) -> list[Run]:
    """Live runs in scope, but not those waiting for a human to resume their agent."""
    active = [r for r in backlog.runs_by_id.values() if in_scope(r.item_id)]
    if not active:
        return active
    with ctx.store.reader() as tx:
        holds = Holds.read(tx, ctx.settings)
    return holds.startable(backlog, active)


def can_claim_alone(ctx: EngineContext) -> bool:
    return getattr(ctx.store, "claim_runs", None) is not None
