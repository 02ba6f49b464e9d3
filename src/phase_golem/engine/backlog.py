"""Human-driven backlog operations: add, edit, advance, unblock, close.

Each operation is one store transaction: it reads what it needs, applies a pure
domain rule, saves, and the store writes the ledger event alongside.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from phase_golem.domain.dependencies import cycle_with
from phase_golem.domain.descriptions import StructuredDescription, parse_freeform_description
from phase_golem.domain.errors import DomainError, InvalidTransition
from phase_golem.domain.events import EventKind
from phase_golem.domain.items import (
    Item,
    ItemStatus,
    Level,
    PhasePool,
    Size,
    archive,
    format_timestamp,
    new_item,
    normalize_dependencies,
    normalize_tags,
    touch,
    unblock,
)
from phase_golem.domain.pipelines import Settings
from phase_golem.domain.runs import RunStatus
from phase_golem.store import Store, Transaction


class Unset:
    """Marks an edit field the user did not give (None means "clear it")."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = Unset()


@dataclass(frozen=True)
class NewItemRequest:
    title: str
    size: Size | None = None
    complexity: Level | None = None
    risk: Level | None = None
    impact: Level | None = None
    pipeline_type: str | None = None
    tags: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()
    description: str | None = None
    origin: str | None = None


@dataclass(frozen=True)
class EditRequest:
    title: str | Unset = UNSET
    size: Size | Unset | None = UNSET
    complexity: Level | Unset | None = UNSET
    risk: Level | Unset | None = UNSET
    impact: Level | Unset | None = UNSET
    pipeline_type: str | Unset | None = UNSET
    tags: tuple[str, ...] | Unset = UNSET
    add_tags: tuple[str, ...] = ()
    remove_tags: tuple[str, ...] = ()
    dependencies: tuple[str, ...] | Unset = UNSET
    add_dependencies: tuple[str, ...] = ()
    remove_dependencies: tuple[str, ...] = ()
    description: str | Unset | None = UNSET
    requires_human_review: bool | Unset = UNSET


def describe(text: str | None) -> StructuredDescription | None:
    """Free text → the 5-field description; `Context:`/`Problem:` headers are honoured."""
    if text is None or not text.strip():
        return None
    structured, _ = parse_freeform_description(text)
    return structured


def _check_pipeline(settings: Settings, name: str | None) -> None:
    if name is not None and name not in settings.pipelines:
        known = ", ".join(sorted(settings.pipelines))
        raise DomainError(f"unknown pipeline {name!r} (configured: {known})")


def _check_dependencies(tx: Transaction, item_id: str, deps: Sequence[str]) -> tuple[str, ...]:
    clean = normalize_dependencies(item_id, deps)
    everything = tx.list_items(include_archived=True)
    known = {i.id for i in everything}
    missing = [d for d in clean if d not in known]
    if missing:
        raise DomainError(f"unknown dependency: {', '.join(missing)}")
    cycle = cycle_with(everything, item_id, clean)
    if cycle:
        raise DomainError(f"dependency cycle: {' -> '.join(cycle)}")
    return clean


def no_live_run(tx: Transaction, item_id: str, action: str) -> None:
    live = tx.list_runs(item_id=item_id, statuses=[RunStatus.ACTIVE], limit=1)
    if live:
        raise DomainError(
            f"cannot {action} {item_id} while run {live[0].id} ({live[0].phase}) is active"
        )


def add_item(store: Store, settings: Settings, request: NewItemRequest) -> Item:
    _check_pipeline(settings, request.pipeline_type)
    with store.transaction() as tx:
        item_id = tx.allocate_item_id(settings.project.prefix)
        item = new_item(
            item_id,
            request.title,
            tx.now,
            size=request.size,
            complexity=request.complexity,
            risk=request.risk,
            impact=request.impact,
            pipeline_type=request.pipeline_type,
            tags=normalize_tags(request.tags),
            description=describe(request.description),
            origin=request.origin,
        )
        if request.dependencies:
            item = item.replace(dependencies=_check_dependencies(tx, item_id, request.dependencies))
        tx.create_item(item)
        return item


def _edited(item: Item, tx: Transaction, settings: Settings, req: EditRequest) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if not isinstance(req.title, Unset):
        if not req.title.strip():
            raise DomainError("title must not be empty")
        changes["title"] = req.title.strip()
    for name in ("size", "complexity", "risk", "impact"):
        value = getattr(req, name)
        if not isinstance(value, Unset):
            changes[name] = value
    if not isinstance(req.pipeline_type, Unset):
        _check_pipeline(settings, req.pipeline_type)
        pipeline = settings.pipeline(req.pipeline_type)
        if item.phase is not None and (
            pipeline is None or pipeline.locate(item.phase, item.effective_pool) is None
        ):
            raise DomainError(
                f"{item.id} is at phase {item.phase!r}, which pipeline "
                f"{req.pipeline_type or 'feature'!r} does not have"
            )
        changes["pipeline_type"] = req.pipeline_type
    if not isinstance(req.tags, Unset) or req.add_tags or req.remove_tags:
        tags = list(item.tags if isinstance(req.tags, Unset) else req.tags)
        tags += [t for t in req.add_tags if t not in tags]
        tags = [t for t in tags if t not in set(req.remove_tags)]
        changes["tags"] = normalize_tags(tags)
    if not isinstance(req.dependencies, Unset) or req.add_dependencies or req.remove_dependencies:
        base = item.dependencies if isinstance(req.dependencies, Unset) else req.dependencies
        deps = list(base) + [d for d in req.add_dependencies if d not in base]
        deps = [d for d in deps if d not in set(req.remove_dependencies)]
        changes["dependencies"] = _check_dependencies(tx, item.id, deps)
    if not isinstance(req.description, Unset):
        changes["description"] = describe(req.description)
    if not isinstance(req.requires_human_review, Unset):
        changes["requires_human_review"] = req.requires_human_review
    return {k: v for k, v in changes.items() if getattr(item, k) != v}


def edit_item(store: Store, settings: Settings, item_id: str, request: EditRequest) -> Item:
    with store.transaction() as tx:
        item = tx.require_item(item_id)
        if item.archived:
            raise DomainError(f"{item_id} is archived and cannot be edited")
        changes = _edited(item, tx, settings, request)
        if not changes:
            return item
        updated = touch(item, tx.now, **changes)
        tx.save_item(updated, EventKind.ITEM_UPDATED, {"action": "edit", "fields": sorted(changes)})
        return updated


def advance_item(store: Store, settings: Settings, item_id: str, to_phase: str | None) -> Item:
    """Move an in-progress item to the next main phase, or to the named one."""
    with store.transaction() as tx:
        item = tx.require_item(item_id)
        if item.status is not ItemStatus.IN_PROGRESS:
            raise InvalidTransition(
                f"{item_id} is {item.status.value}; only in_progress items can be advanced"
            )
        no_live_run(tx, item_id, "advance")
        pipeline = settings.pipeline(item.pipeline_type)
        if pipeline is None:
            raise DomainError(f"{item_id} uses unknown pipeline {item.effective_pipeline!r}")
        if to_phase is not None:
            if pipeline.locate(to_phase, PhasePool.MAIN) is None:
                names = ", ".join(p.name for p in pipeline.phases)
                raise DomainError(
                    f"{to_phase!r} is not a main phase of pipeline {pipeline.name!r} "
                    f"(main phases: {names})"
                )
            target = to_phase
        elif item.phase is None:
            target = pipeline.phases[0].name
        else:
            following = pipeline.next_phase(item.effective_pool, item.phase)
            if following is None:
                raise DomainError(
                    f"{item_id} is at the final phase {item.phase!r}; nothing to advance to"
                )
            target = following.name
        updated = touch(
            item,
            tx.now,
            phase=target,
            phase_pool=PhasePool.MAIN,
            phase_entered_at=format_timestamp(tx.now),
        )
        tx.save_item(
            updated,
            EventKind.ITEM_UPDATED,
            {"action": "advance", "from_phase": item.phase, "to_phase": target},
        )
        return updated


def unblock_item(store: Store, item_id: str, notes: str | None) -> Item:
    with store.transaction() as tx:
        item = tx.require_item(item_id)
        updated = unblock(item, tx.now, notes)
        tx.save_item(
            updated,
            EventKind.ITEM_TRANSITION,
            {"action": "unblock", "notes": updated.unblock_context},
        )
        return updated


def close_item(store: Store, item_id: str, reason: str) -> Item:
    """Take an item off the active backlog without doing it; kept, flagged, hidden."""
    if not reason.strip():
        raise DomainError("--reason must not be empty")
    with store.transaction() as tx:
        item = tx.require_item(item_id)
        if item.archived:
            raise DomainError(f"{item_id} is already archived")
        no_live_run(tx, item_id, "close")
        updated = archive(item, tx.now, closed_reason=reason.strip())
        tx.save_item(updated, EventKind.ITEM_ARCHIVED, {"action": "close", "reason": reason})
        return updated
