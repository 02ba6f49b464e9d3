"""`phase-golem resolve RUN --happened | --not-happened | --skip` (DESIGN §6).

A side-effect run that ended `paused:indeterminate` may or may not have acted; a human
looks and says which. What each decision does is `settle`'s (domain/endings.py) and is
carried out by `settle_indeterminate` (engine/completion.py); this checks the run may be
resolved and words the answer. The paused run keeps its status for good (a run never changes
after it ends); the decision is recorded in its `mutation` and, for a retry, in a new
run. Each decision is one transaction with its ledger event:

- happened: the phase counts as complete and the item advances (or is done);
- not happened: a fresh retry with `retry_of` and the same idempotency key;
- skip: the phase is skipped (it did not, and will not, run) and the item advances.
"""

from __future__ import annotations

from dataclasses import dataclass

from phase_golem.domain.endings import Decision
from phase_golem.domain.errors import DomainError
from phase_golem.domain.items import Item, ItemStatus, unblock
from phase_golem.domain.pipelines import Settings
from phase_golem.domain.runs import Mutation, Run, RunStatus
from phase_golem.engine.backlog import no_live_run
from phase_golem.engine.interruptions import settle_indeterminate
from phase_golem.store import NotFoundError, Store, Transaction


@dataclass(frozen=True)
class Resolved:
    run: Run
    item: Item
    retry: Run | None = None

    def line(self, decision: Decision) -> str:
        if self.retry is not None:
            return f"{self.run.id} resolved as not happened; {self.retry.id} will run it again"
        where = "done" if self.item.archived else f"{self.item.status.value} at {self.item.phase}"
        said = "happened" if decision is Decision.HAPPENED else "skipped"
        return f"{self.run.id} resolved as {said}; {self.item.id} → {where}"


def pick_decision(happened: bool, not_happened: bool, skip: bool) -> Decision:
    chosen = [
        d
        for d, flag in (
            (Decision.HAPPENED, happened),
            (Decision.NOT_HAPPENED, not_happened),
            (Decision.SKIP, skip),
        )
        if flag
    ]
    if len(chosen) != 1:
        raise DomainError("give exactly one of --happened, --not-happened or --skip")
    return chosen[0]


def _awaiting(tx: Transaction, run_id: str) -> tuple[Run, Item]:
    run = tx.get_run(run_id.strip())
    if run is None:
        raise NotFoundError(f"no run {run_id}")
    if run.status is not RunStatus.PAUSED_INDETERMINATE:
        raise DomainError(
            f"run {run.id} is {run.status.value}; only a paused:indeterminate run is resolved"
        )
    if run.mutation is not Mutation.INDETERMINATE:
        raise DomainError(f"run {run.id} was resolved already ({run.mutation.value})")
    item = tx.require_item(run.item_id)
    if item.archived:
        raise DomainError(f"{item.id} is closed; there is nothing left to resolve")
    no_live_run(tx, item.id, "resolve a run of")
    if item.status is ItemStatus.BLOCKED:
        item = unblock(item, tx.now)
    if item.phase != run.phase:
        raise DomainError(
            f"{item.id} has moved on to {item.phase or 'no phase'} since run {run.id} "
            f"({run.phase}); nothing to resolve"
        )
    return run, item


def resolve_run(store: Store, settings: Settings, run_id: str, decision: Decision) -> Resolved:
    with store.transaction() as tx:
        run, item = _awaiting(tx, run_id)
        resolved, after, retry = settle_indeterminate(tx, settings, run, item, decision)
    return Resolved(resolved, after, retry)
