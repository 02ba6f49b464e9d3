"""A source run's effect on the backlog, inside ONE transaction (DESIGN §11).

The caller opens the transaction and writes the schedule row and the `source.fired`
event in it too, so a run's new, updated and closed items commit together with its
record, or nothing does. Items are found by `(source, external_id)` over active and
archived items, so an entry seen again (after a crash, in the next run) is never made
twice.
"""

from __future__ import annotations

from typing import Any

from phase_golem.domain.descriptions import StructuredDescription
from phase_golem.domain.endings import EndingKind
from phase_golem.domain.events import EventKind
from phase_golem.domain.items import (
    Item,
    archive,
    new_item,
    normalize_tags,
    touch,
)
from phase_golem.domain.pipelines import Settings
from phase_golem.domain.runs import Mutation, RunStatus
from phase_golem.domain.source_entries import (
    CLOSED_REASON,
    Action,
    SourceEntry,
    plan_entry,
)
from phase_golem.domain.sources import RunCounts, SourceConfig
from phase_golem.engine.interruptions import end_interrupted
from phase_golem.engine.source_fetch import SourceFailure
from phase_golem.store import Transaction


def entry_description(text: str | None) -> StructuredDescription | None:
    """An external description as the item holds it (compared to tell a change)."""
    clean = (text or "").strip()
    return StructuredDescription(context=clean) if clean else None


def _create(tx: Transaction, settings: Settings, source: SourceConfig, entry: SourceEntry) -> None:
    pipeline = entry.pipeline_type or source.pipeline_type
    if pipeline is not None and pipeline not in settings.pipelines:
        known = ", ".join(sorted(settings.pipelines))
        raise SourceFailure(
            f"entry {entry.external_id}: unknown pipeline {pipeline!r} (configured: {known}); "
            "nothing was applied",
            bad_output=True,
        )
    item = new_item(
        tx.allocate_item_id(settings.project.prefix),
        entry.title or entry.external_id,
        tx.now,
        source=source.name,
        external_id=entry.external_id,
        origin=entry.url or f"source {source.name}",
        size=entry.size or source.size,
        pipeline_type=pipeline,
        tags=normalize_tags((*source.tags, *entry.tags)),
        description=entry_description(entry.description),
    )
    tx.create_item(item, data={"source": source.name, "external_id": entry.external_id})


def close_at_source(tx: Transaction, source: SourceConfig, item: Item) -> bool:
    """Close an item its source closed, cancelling its active run; False when a side
    effect of that run is in flight: it settles first (DESIGN §6), and the next run of
    the source, still seeing the entry closed, closes the item then."""
    live = tx.list_runs(item_id=item.id, statuses=[RunStatus.ACTIVE], limit=1)
    if live:
        run = live[0]
        if run.side_effect and run.mutation is Mutation.IN_FLIGHT:
            return False
        why = f"its item was {CLOSED_REASON} ({source.name})"
        end_interrupted(tx, run, EndingKind.CANCELLED, why, data={"source": source.name})
    tx.save_item(
        archive(item, tx.now, closed_reason=CLOSED_REASON),
        EventKind.ITEM_ARCHIVED,
        {"action": "close", "reason": CLOSED_REASON, "source": source.name},
    )
    return True


def apply_entries(
    tx: Transaction,
    settings: Settings,
    source: SourceConfig,
    entries: tuple[SourceEntry, ...],
) -> RunCounts:
    counts: dict[str, int] = {"created": 0, "updated": 0, "closed": 0, "unchanged": 0}
    deferred = 0
    for entry in entries:
        existing = tx.item_by_external_id(source.name, entry.external_id)
        description = entry_description(entry.description)
        plan = plan_entry(entry, existing, description)
        if plan.action is Action.CREATE:
            _create(tx, settings, source, entry)
            counts["created"] += 1
        elif plan.action is Action.UPDATE and existing is not None:
            changes: dict[str, Any] = dict(plan.changes)
            tx.save_item(
                touch(existing, tx.now, **changes),
                EventKind.ITEM_UPDATED,
                {"action": "source", "source": source.name, "fields": sorted(changes)},
            )
            counts["updated"] += 1
        elif plan.action is Action.CLOSE and existing is not None:
            if close_at_source(tx, source, existing):
                counts["closed"] += 1
            else:
                deferred += 1
        else:
            counts["unchanged"] += 1
    return RunCounts(deferred=deferred, **counts)
