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
    merge_refusal,
    plan_follow_ups,
    plan_merges,
    unmergeable,
    without_dependency,
)
from phase_golem.domain.pipelines import Settings
from phase_golem.domain.results import PhaseResult
from phase_golem.store import Transaction


def ingest_follow_ups(
    tx: Transaction, settings: Settings, origin_item: Item, result: PhaseResult
) -> tuple[list[str], list[tuple[str, str]]]:
    """(IDs created, (title, why not) skipped) for the result's follow-ups.

    One result considers at most `[execution] max_follow_ups` of them; the rest are not
    created and are reported in one ledger event (how many, the first titles) and in the
    skipped list, never dropped silently.
    """
    if not result.follow_ups:
        return [], []
    limit = settings.execution.max_follow_ups
    considered, over = result.follow_ups[:limit], result.follow_ups[limit:]
    plan = plan_follow_ups(considered, tx.snapshot().items())
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
    skipped = [(title, _why_skipped(reason)) for title, reason in plan.skipped]
    if over:
        why = f"over the limit of {limit} follow-ups per result ([execution] max_follow_ups)"
        tx.append_event(
            EventKind.ITEM_UPDATED,
            item_id=origin_item.id,
            data={
                "follow_ups_over_limit": len(over),
                "limit": limit,
                "titles": [f.title for f in over[:OVER_LIMIT_TITLES_KEPT]],
            },
        )
        more = f" and {len(over) - 1} more" if len(over) > 1 else ""
        skipped.append((f"{over[0].title}{more}", why))
    return created, skipped


OVER_LIMIT_TITLES_KEPT = 20


def _why_skipped(reason: str) -> str:
    return "its title is empty" if reason == "empty title" else f"duplicates {reason}"


def merge_duplicates(
    tx: Transaction, triaged: Item, result: PhaseResult
) -> tuple[Item | None, list[tuple[str, str]]]:
    """Merge triage's duplicates; returns the triaged item (None if merged away)."""
    merged: list[tuple[str, str]] = []
    current: Item | None = triaged
    backlog = tx.snapshot()  # the live runs and items as this transaction sees them
    busy = set(backlog.run_of_item.keys()) - {triaged.id}
    # Only the named items, archived ones included (so the ledger can say why not).
    named = [i for i in (tx.get_item(d) for d in dict.fromkeys(result.duplicates)) if i]
    for dup, why in unmergeable(triaged, result.duplicates, named):
        _not_merged(tx, triaged, dup, why)
    for dup in plan_merges(triaged, result.duplicates, named):
        other = tx.get_item(dup)
        if current is None or other is None:
            continue
        source, target = merge_direction(current, other)
        refusal = merge_refusal(source, source.id in busy)
        if refusal is not None:  # the target may run; the source is never taken from a human
            _not_merged(tx, triaged, dup, refusal)
            continue
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


def _not_merged(tx: Transaction, triaged: Item, duplicate: str, why: str) -> None:
    tx.append_event(
        EventKind.ITEM_UPDATED,
        item_id=triaged.id,
        data={"duplicate_not_merged": duplicate, "why": why},
    )
