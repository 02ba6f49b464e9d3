"""Steering a running scheduler from anywhere (CLI, web): pause, resume, retry (DESIGN §9).

Plain functions over a store, each one transaction with its ledger event, so the CLI and
the dashboard call the same code. The pause is a durable flag in the store's metadata: a
`run` in any process reads it inside its scheduling transaction, so a pause committed
before a decision is always seen by that decision's claims.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from phase_golem.domain.errors import DomainError
from phase_golem.domain.events import EventKind
from phase_golem.domain.items import Item, ItemStatus, format_timestamp, unblock
from phase_golem.domain.runs import RunStatus
from phase_golem.store import Store, Transaction

PAUSE_KEY = "scheduler.paused"
MAX_FAILURE_CHARS = 2000  # the previous failure quoted in the next prompt


@dataclass(frozen=True, slots=True)
class PauseState:
    reason: str | None
    since: str

    def line(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        return f"Scheduler paused since {self.since}{why} (phase-golem resume to go on)"

    def to_dict(self) -> dict[str, str | None]:
        return {"reason": self.reason, "since": self.since}


def pause_state(tx: Transaction) -> PauseState | None:
    """The pause flag as this transaction sees it (None: not paused)."""
    raw = tx.get_meta(PAUSE_KEY)
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return PauseState(reason=None, since="?")
    if not isinstance(value, dict):
        return PauseState(reason=None, since="?")
    reason = value.get("reason")
    return PauseState(
        reason=reason if isinstance(reason, str) else None, since=str(value.get("since", "?"))
    )


def pause_line(state: PauseState, changed: bool) -> str:
    """What `pause` says, in the terminal and on the dashboard alike."""
    return ("" if changed else "Already paused. ") + state.line()


def resume_line(lifted: PauseState | None) -> str:
    return "Scheduler resumed" if lifted is not None else "The scheduler was not paused"


def retry_line(item: Item) -> str:
    where = f" at {item.phase}" if item.phase else ""
    return f"{item.id} → {item.status.value}{where}: a fresh visit, retries reset"


def read_pause(store: Store) -> PauseState | None:
    with store.reader() as tx:
        return pause_state(tx)


def pause(store: Store, reason: str | None = None) -> tuple[PauseState, bool]:
    """Stop every scheduler starting new runs; True when this call paused it (not already)."""
    clean = reason.strip() if reason and reason.strip() else None
    with store.transaction() as tx:
        current = pause_state(tx)
        if current is not None:
            return current, False
        state = PauseState(reason=clean, since=format_timestamp(tx.now))
        tx.set_meta(PAUSE_KEY, json.dumps(state.to_dict()))
        tx.append_event(EventKind.SCHEDULER_PAUSED, data=state.to_dict())
        return state, True


def resume(store: Store) -> PauseState | None:
    """Lift the pause; returns the pause it lifted (None: it was not paused)."""
    with store.transaction() as tx:
        current = pause_state(tx)
        if current is None:
            return None
        tx.set_meta(PAUSE_KEY, "")
        tx.append_event(EventKind.SCHEDULER_RESUMED, data=current.to_dict())
        return current


def previous_failure(tx: Transaction, item: Item) -> str | None:
    """What went wrong last time, quoted for the next prompt."""
    runs = tx.list_runs(item_id=item.id)
    failed = [r for r in runs if r.status is not RunStatus.COMMITTED and r.ended_at]
    if not failed:
        return item.blocked_reason
    last = max(failed, key=lambda r: (r.ended_at or "", r.id))
    error = (last.error or last.status.value).strip()
    if len(error) > MAX_FAILURE_CHARS:
        error = error[:MAX_FAILURE_CHARS] + "…"
    where = f"{last.phase} (attempt {last.attempt}, run {last.id})"
    return f"{where} ended {last.status.value}: {error}"


def retry_item(store: Store, item_id: str, notes: str | None = None) -> Item:
    """A blocked item goes back to its phase for a fresh visit, its last failure in the prompt."""
    with store.transaction() as tx:
        item = tx.require_item(item_id)
        live = tx.list_runs(item_id=item_id, statuses=[RunStatus.ACTIVE], limit=1)
        if live:
            raise DomainError(
                f"cannot retry {item_id}: run {live[0].id} ({live[0].phase}) is still live"
            )
        if item.status is not ItemStatus.BLOCKED:
            raise DomainError(f"cannot retry {item_id}: it is {item.status.value}, not blocked")
        failure = previous_failure(tx, item)
        context = "\n\n".join(
            part
            for part in (
                f"A human asked for a retry. The previous attempt failed: {failure}"
                if failure
                else "A human asked for a retry.",
                notes.strip() if notes else "",
            )
            if part
        )
        updated = unblock(item, tx.now, context)
        tx.save_item(
            updated,
            EventKind.ITEM_RETRIED,
            {"action": "retry", "phase": updated.phase, "previous_failure": failure},
        )
        return updated
