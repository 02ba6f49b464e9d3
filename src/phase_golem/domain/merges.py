"""Duplicate merges from triage and follow-up ingestion (research §4.12, §4.13, §7.2).

Merge direction is Phase Golem's for numeric IDs (the higher suffix merges into the lower)
and, for any other ID, the newer item merges into the older one, so the rule never depends
on the ID scheme. Follow-ups whose normalized title matches an active item, or an earlier
follow-up of the same batch, are skipped: that is the duplicate flood of research §7.2.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from phase_golem.domain.descriptions import StructuredDescription
from phase_golem.domain.errors import DomainError
from phase_golem.domain.items import Item, ItemStatus, split_item_id, touch
from phase_golem.domain.results import FollowUp


def merge_direction(a: Item, b: Item) -> tuple[Item, Item]:
    """(source, target): which of two duplicates goes away and which one stays."""
    if a.id == b.id:
        raise DomainError(f"cannot merge {a.id} into itself")
    prefix_a, number_a = split_item_id(a.id)
    prefix_b, number_b = split_item_id(b.id)
    if number_a is not None and number_b is not None and prefix_a == prefix_b:
        return (a, b) if number_a > number_b else (b, a)
    newer_first = sorted((a, b), key=lambda i: (i.created_at, i.id), reverse=True)
    return newer_first[0], newer_first[1]


def plan_merges(triaged: Item, duplicates: Sequence[str], items: Iterable[Item]) -> list[str]:
    """The duplicate IDs worth merging with: present, not done, not the item itself."""
    by_id = {item.id: item for item in items if not item.archived}
    seen: list[str] = []
    for dup in duplicates:
        other = by_id.get(dup)
        if other is None or other.status is ItemStatus.DONE or dup == triaged.id or dup in seen:
            continue
        seen.append(dup)
    return seen


def unmergeable(
    triaged: Item, duplicates: Sequence[str], items: Iterable[Item]
) -> list[tuple[str, str]]:
    """(ID, why) for each duplicate `plan_merges` leaves out, so the ledger can say so."""
    by_id = {item.id: item for item in items}
    reasons: list[tuple[str, str]] = []
    for dup in dict.fromkeys(duplicates):
        other = by_id.get(dup)
        if dup == triaged.id:
            reasons.append((dup, "it is the item being triaged"))
        elif other is None:
            reasons.append((dup, "no such item"))
        elif other.archived or other.status is ItemStatus.DONE:
            reasons.append((dup, _finished_reason(other)))
    return reasons


def _finished_reason(other: Item) -> str:
    """Why a finished item takes no merge, in its own words (done, or closed and why)."""
    state = "archived" if other.archived else "done"
    why = other.closed_reason or other.status.value
    return f"it is already done or archived ({state}: {why}); the item stays as it is"


def merge_refusal(source: Item, has_live_run: bool) -> str | None:
    """Why `source` may not be merged away by a triage result without a human, or None.

    Only an item still waiting for triage (`new`) with no run of its own may vanish into
    another: one that is scoping, ready, in progress or blocked carries work or a person's
    decision, and one with a live run has an agent working on it right now.
    """
    if has_live_run:
        return f"{source.id} has a live run; merge it by hand if it is a duplicate"
    if source.status is not ItemStatus.NEW:
        return (
            f"{source.id} is {source.status.value}, past triage; merging it away needs a "
            "human (close it with a reason)"
        )
    return None


def merge_note(source: Item) -> str:
    parts = [f"[Merged from {source.id}] {source.title}"]
    if source.description is not None:
        parts += [p for p in (source.description.context, source.description.problem) if p]
    if source.origin:
        parts.append(f"origin: {source.origin}")
    return ". ".join(parts)


def merge_into(source: Item, target: Item, now: datetime) -> Item:
    """The target after absorbing the source: note in its context, dependencies united."""
    description = target.description or StructuredDescription()
    note = merge_note(source)
    context = f"{description.context}\n{note}" if description.context else note
    deps = list(target.dependencies)
    for dep in source.dependencies:
        if dep not in deps and dep not in (target.id, source.id):
            deps.append(dep)
    deps = [d for d in deps if d != source.id]
    return touch(
        target,
        now,
        description=StructuredDescription(**{**description.to_dict(), "context": context}),
        dependencies=tuple(deps),
    )


def without_dependency(item: Item, removed: str, now: datetime) -> Item | None:
    """The item with `removed` dropped from its dependencies, or None if it had none."""
    if removed not in item.dependencies:
        return None
    return touch(item, now, dependencies=tuple(d for d in item.dependencies if d != removed))


_NOISE = re.compile(r"[^\w\s]")
_SPACE = re.compile(r"\s+")


def normalize_title(title: str) -> str:
    """Case, accents, punctuation and spacing do not make two titles different.

    Accents are dropped as combining marks only, so letters of every script survive.
    """
    folded = _strip_marks(_strip_marks(title).casefold())
    return _SPACE.sub(" ", _NOISE.sub(" ", folded)).strip()


def _strip_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@dataclass(frozen=True, slots=True)
class FollowUpPlan:
    create: tuple[FollowUp, ...]
    skipped: tuple[tuple[str, str], ...]  # (title, the active item it duplicates or "batch")


def plan_follow_ups(follow_ups: Sequence[FollowUp], active: Iterable[Item]) -> FollowUpPlan:
    known = {
        normalize_title(item.title): item.id
        for item in active
        if not item.archived and item.status is not ItemStatus.DONE
    }
    create: list[FollowUp] = []
    skipped: list[tuple[str, str]] = []
    batch: set[str] = set()
    for follow_up in follow_ups:
        key = normalize_title(follow_up.title)
        if not key:
            skipped.append((follow_up.title, "empty title"))
        elif key in known:
            skipped.append((follow_up.title, known[key]))
        elif key in batch:
            skipped.append((follow_up.title, "an earlier follow-up of this result"))
        else:
            batch.add(key)
            create.append(follow_up)
    return FollowUpPlan(tuple(create), tuple(skipped))
