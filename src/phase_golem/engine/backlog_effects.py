"""What a result does to the rest of the backlog: new follow-up items, merged duplicates.

Both run inside the complete transaction (engine/completion.py), so they commit with
the run or not at all.
"""

from __future__ import annotations

from phase_golem.domain.descriptions import StructuredDescription
from phase_golem.domain.events import EventKind
from phase_golem.domain.items import Item, archive, new_item
from phase_golem.domain.merges import (
    merge_direction,
    merge_into,
    plan_follow_ups,
    plan_merges,
    without_dependency,
)
from phase_golem.domain.pipelines import Settings
from phase_golem.domain.results import PhaseResult
from phase_golem.store import Transaction


def ingest_follow_ups(
    tx: Transaction, settings: Settings, origin_item: Item, result: PhaseResult
) -> tuple[list[str], list[tuple[str, str]]]:
    """(IDs created, (title, duplicate of) skipped) for the result's follow-ups."""
    if not result.follow_ups:
        return [], []
    plan = plan_follow_ups(result.follow_ups, tx.snapshot().items())
    origin = f"{origin_item.id}/{result.phase}"
    created = []
    for follow_up in plan.create:
        item_id = tx.allocate_item_id(settings.project.prefix)
        description = (
            StructuredDescription(context=follow_up.context) if follow_up.context else None
        )
        item = new_item(
            item_id,
            follow_up.title,
            tx.now,
            origin=origin,
            size=follow_up.suggested_size,
            risk=follow_up.suggested_risk,
            description=description,
        )
        tx.create_item(item, data={"origin": origin})
        created.append(item_id)
    for title, duplicate_of in plan.skipped:
        tx.append_event(
            EventKind.ITEM_UPDATED,
            item_id=origin_item.id,
            data={"follow_up_skipped": title, "duplicate_of": duplicate_of},
        )
    return created, list(plan.skipped)


def merge_duplicates(
    tx: Transaction, triaged: Item, result: PhaseResult
) -> tuple[Item | None, list[tuple[str, str]]]:
    """Merge triage's duplicates; returns the triaged item (None if merged away)."""
    merged: list[tuple[str, str]] = []
    current: Item | None = triaged
    backlog = tx.snapshot()  # the live runs and items as this transaction sees them
    busy = set(backlog.run_of_item.keys()) - {triaged.id}
    present = [i for i in (backlog.get(d) for d in result.duplicates) if i is not None]
    for dup in plan_merges(triaged, result.duplicates, present):
        other = tx.get_item(dup)
        if current is None or other is None:
            continue
        source, target = merge_direction(current, other)
        if source.id in busy:
            continue  # never archive an item under a running agent; the target may run
        target = merge_into(source, target, tx.now)
        tx.save_item(target, EventKind.ITEM_MERGED, {"merged_from": source.id})
        gone = archive(source, tx.now, closed_reason=f"merged into {target.id}")
        tx.save_item(gone, EventKind.ITEM_MERGED, {"merged_into": target.id})
        for remaining in _dependents(tx, source.id):
            cleaned = without_dependency(remaining, source.id, tx.now)
            if cleaned is not None:
                tx.save_item(cleaned, EventKind.ITEM_UPDATED, {"dependency_removed": source.id})
        merged.append((source.id, target.id))
        current = (
            None if source.id == triaged.id else target if target.id == triaged.id else current
        )
    return current, merged


def _dependents(tx: Transaction, item_id: str) -> list[Item]:
    """The active items that depend on `item_id`, oldest first: the reverse dependency
    index of the snapshot knows them, so nothing lists the whole backlog."""
    backlog = tx.snapshot()
    ids = backlog.dependents.get(item_id, frozenset())
    found = [backlog.items_by_id[i] for i in ids if i in backlog.items_by_id]
    return sorted(found, key=lambda i: (backlog.entries[i.id].created, i.id))
