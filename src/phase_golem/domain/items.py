"""Backlog items: the record, its enums and the status machine (guardrails: guardrails.py).

Everything here is pure. Items are frozen values; every change returns a new item.
Time is always passed in, never read.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Self

from phase_golem.domain.descriptions import StructuredDescription
from phase_golem.domain.errors import DomainError, InvalidTransition, ParseError

_RANKS: dict[object, int] = {}  # member → declaration rank, filled as ranks are asked for


class _OrderedChoice(StrEnum):
    """A lowercase string enum whose members compare by declaration order."""

    @property
    def rank(self) -> int:
        rank = _RANKS.get(self)
        if rank is None:
            rank = _RANKS[self] = list(type(self)).index(self) + 1
        return rank

    @classmethod
    def abbreviations(cls) -> Mapping[str, str]:
        return {}

    @classmethod
    def parse(cls, raw: str, *, what: str | None = None) -> Self:
        """Case-insensitive parse accepting the Phase Golem one-letter abbreviations."""
        text = str(raw).strip().lower()
        text = cls.abbreviations().get(text, text)
        for member in cls:
            if member.value == text:
                return member
        allowed = ", ".join(m.value for m in cls)
        label = what or cls.__name__.lower()
        raise ParseError(f"invalid {label} {raw!r} (expected one of: {allowed})")

    def _rank_difference(self, other: object) -> int | None:
        return self.rank - other.rank if isinstance(other, type(self)) else None

    def __lt__(self, other: object) -> bool:
        difference = self._rank_difference(other)
        return NotImplemented if difference is None else difference < 0

    def __le__(self, other: object) -> bool:
        difference = self._rank_difference(other)
        return NotImplemented if difference is None else difference <= 0

    def __gt__(self, other: object) -> bool:
        difference = self._rank_difference(other)
        return NotImplemented if difference is None else difference > 0

    def __ge__(self, other: object) -> bool:
        difference = self._rank_difference(other)
        return NotImplemented if difference is None else difference >= 0


class Size(_OrderedChoice):
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"

    @classmethod
    def abbreviations(cls) -> Mapping[str, str]:
        return {"s": "small", "m": "medium", "l": "large"}


class Level(_OrderedChoice):
    """Complexity, risk and impact share one scale; note `l` means low here, large for Size."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @classmethod
    def abbreviations(cls) -> Mapping[str, str]:
        return {"l": "low", "m": "medium", "h": "high"}


class ItemStatus(StrEnum):
    NEW = "new"
    SCOPING = "scoping"
    READY = "ready"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    BLOCKED = "blocked"

    @classmethod
    def parse(cls, raw: str) -> ItemStatus:
        text = str(raw).strip().lower()
        for member in cls:
            if member.value == text:
                return member
        allowed = ", ".join(m.value for m in cls)
        raise ParseError(f"invalid status {raw!r} (expected one of: {allowed})")


_FORWARD = {
    ItemStatus.NEW: ItemStatus.SCOPING,
    ItemStatus.SCOPING: ItemStatus.READY,
    ItemStatus.READY: ItemStatus.IN_PROGRESS,
    ItemStatus.IN_PROGRESS: ItemStatus.DONE,
}
_BLOCKABLE = frozenset(
    {ItemStatus.NEW, ItemStatus.SCOPING, ItemStatus.READY, ItemStatus.IN_PROGRESS}
)


def is_valid_transition(current: ItemStatus, target: ItemStatus) -> bool:
    """Phase Golem's matrix: forward one step, anything live to Blocked, Blocked back to live."""
    if current is ItemStatus.DONE:
        return False
    if _FORWARD.get(current) is target:
        return True
    if target is ItemStatus.BLOCKED:
        return current in _BLOCKABLE
    if current is ItemStatus.BLOCKED:
        return target in _BLOCKABLE
    return False


# Status-group order of `phase-golem status` (Phase Golem's table).
STATUS_DISPLAY_ORDER: tuple[ItemStatus, ...] = (
    ItemStatus.IN_PROGRESS,
    ItemStatus.BLOCKED,
    ItemStatus.READY,
    ItemStatus.SCOPING,
    ItemStatus.NEW,
    ItemStatus.DONE,
)


class PhasePool(StrEnum):
    PRE = "pre"
    MAIN = "main"

    @classmethod
    def parse(cls, raw: str) -> PhasePool:
        text = str(raw).strip().lower()
        for member in cls:
            if member.value == text:
                return member
        raise ParseError(f"invalid phase_pool {raw!r} (expected one of: pre, main)")


class BlockedType(StrEnum):
    CLARIFICATION = "clarification"
    DECISION = "decision"

    @classmethod
    def parse(cls, raw: str) -> BlockedType:
        text = str(raw).strip().lower()
        for member in cls:
            if member.value == text:
                return member
        raise ParseError(f"invalid blocked_type {raw!r} (expected one of: clarification, decision)")


_ID_PATTERN = re.compile(r"([A-Za-z0-9_]+(?:-[A-Za-z0-9_]+)*)-([0-9A-Za-z]+)")
_PREFIX_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,32}")
MAX_ID_LENGTH = 100
# Item numbers are counted in SQLite's 64-bit integers; a trillion items is plenty.
MAX_ITEM_NUMBER = 10**12 - 1


def validate_prefix(prefix: str) -> str:
    if not prefix or not _PREFIX_PATTERN.fullmatch(prefix):
        raise ParseError(
            f"invalid ID prefix {prefix!r} (use up to 32 letters, digits, '_' and '-', e.g. WRK)"
        )
    return prefix


def format_item_id(prefix: str, number: int) -> str:
    return f"{prefix}-{number:03d}"


def split_item_id(item_id: str) -> tuple[str, int | None]:
    """`WRK-042` → (`WRK`, 42); a non-numeric suffix (task-golem's hex) → (prefix, None)."""
    match = _ID_PATTERN.fullmatch(item_id) if len(item_id) <= MAX_ID_LENGTH else None
    if not match:
        shown = item_id if len(item_id) <= MAX_ID_LENGTH else item_id[:MAX_ID_LENGTH] + "…"
        raise ParseError(f"invalid item ID {shown!r} (expected PREFIX-NNN, e.g. WRK-001)")
    prefix, suffix = match.group(1), match.group(2)
    if not suffix.isdigit():
        return prefix, None
    if len(suffix) > len(str(MAX_ITEM_NUMBER)) or int(suffix) > MAX_ITEM_NUMBER:
        raise ParseError(f"invalid item ID {item_id!r}: the number is too large")
    return prefix, int(suffix)


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds, the form every timestamp we write takes."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def parse_timestamp(text: str) -> datetime:
    """Parse RFC 3339, tolerating nanosecond fractions (Rust chrono writes nine digits)."""
    if len(text) == 32 and text[10] == "T" and text[19] == "." and text.endswith("+00:00"):
        return datetime.fromisoformat(text)  # exactly the form `format_timestamp` writes
    raw = text.strip()
    match = re.match(r"^(.*?T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$", raw)
    if not match:
        raise ParseError(f"invalid timestamp {text!r} (expected RFC 3339)")
    base, fraction, zone = match.groups()
    fraction = (fraction or "")[:7]
    zone = "+00:00" if zone in (None, "Z") else zone
    try:
        parsed = datetime.fromisoformat(f"{base}{fraction}{zone}")
    except ValueError as exc:
        raise ParseError(f"invalid timestamp {text!r}: {exc}") from None
    return parsed


@dataclass(frozen=True, slots=True)
class Assessments:
    size: Size | None = None
    complexity: Level | None = None
    risk: Level | None = None
    impact: Level | None = None


@dataclass(frozen=True, slots=True)
class Item:
    """One backlog item: Phase Golem's 22 `BacklogItem` fields, then ours (DESIGN §4)."""

    id: str
    title: str
    status: ItemStatus
    created: str
    updated: str
    phase: str | None = None
    size: Size | None = None
    complexity: Level | None = None
    risk: Level | None = None
    impact: Level | None = None
    requires_human_review: bool = False
    origin: str | None = None
    blocked_from_status: ItemStatus | None = None
    blocked_reason: str | None = None
    blocked_type: BlockedType | None = None
    unblock_context: str | None = None
    tags: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()
    pipeline_type: str | None = None
    description: StructuredDescription | None = None
    phase_pool: PhasePool | None = None
    last_phase_commit: str | None = None
    # Ours.
    previous_summary: str | None = None
    phase_entered_at: str | None = None
    wake_at: str | None = None
    triage_attempts: int = 0
    source: str | None = None
    external_id: str | None = None
    branch: str | None = None
    cost_usd: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    archived: bool = False
    archived_at: str | None = None
    closed_reason: str | None = None
    # Kept from a task-golem store: the ID the item had before task-golem's own migration
    # (`x-legacy-id`) and its updated time then (`x-legacy-updated`), and its parent task.
    legacy_id: str | None = None
    legacy_updated: str | None = None
    parent: str | None = None

    def replace(self, **changes: Any) -> Item:
        return dataclasses.replace(self, **changes)

    @property
    def assessments(self) -> Assessments:
        return Assessments(self.size, self.complexity, self.risk, self.impact)

    @property
    def created_at(self) -> datetime:
        return parse_timestamp(self.created)

    @property
    def effective_pipeline(self) -> str:
        """An absent pipeline type means `feature` everywhere (Phase Golem)."""
        return self.pipeline_type or "feature"

    @property
    def effective_pool(self) -> PhasePool:
        return self.phase_pool or PhasePool.MAIN


# Phase Golem's 22 BacklogItem fields, in its declaration order.
PHASE_GOLEM_FIELDS: tuple[str, ...] = (
    "id",
    "title",
    "status",
    "phase",
    "size",
    "complexity",
    "risk",
    "impact",
    "requires_human_review",
    "origin",
    "blocked_from_status",
    "blocked_reason",
    "blocked_type",
    "unblock_context",
    "tags",
    "dependencies",
    "created",
    "updated",
    "pipeline_type",
    "description",
    "phase_pool",
    "last_phase_commit",
)
OUR_FIELDS: tuple[str, ...] = (
    "previous_summary",
    "phase_entered_at",
    "wake_at",
    "triage_attempts",
    "source",
    "external_id",
    "branch",
    "cost_usd",
    "tokens_in",
    "tokens_out",
    "archived",
    "archived_at",
    "closed_reason",
    "legacy_id",
    "legacy_updated",
    "parent",
)
ITEM_FIELDS: tuple[str, ...] = PHASE_GOLEM_FIELDS + OUR_FIELDS


def new_item(
    item_id: str,
    title: str,
    now: datetime,
    **fields: Any,
) -> Item:
    """A fresh `new` item; raises DomainError on an empty title or a malformed ID."""
    clean_title = title.strip()
    if not clean_title:
        raise DomainError("title must not be empty")
    split_item_id(item_id)
    stamp = format_timestamp(now)
    return Item(
        id=item_id,
        title=clean_title,
        status=ItemStatus.NEW,
        created=stamp,
        updated=stamp,
        **fields,
    )


def touch(item: Item, now: datetime, **changes: Any) -> Item:
    return dataclasses.replace(item, updated=format_timestamp(now), **changes)


def transition(item: Item, target: ItemStatus, now: datetime) -> Item:
    """Move to `target` under Phase Golem's matrix, with its side effects on block fields.

    Entering Blocked saves the prior status; leaving it clears every block field.
    Entering Done or Blocked drops the carried `previous_summary` (WRK-022).
    """
    if not is_valid_transition(item.status, target):
        raise InvalidTransition(
            f"{item.id}: cannot move from {item.status.value} to {target.value}"
        )
    changes: dict[str, Any] = {"status": target}
    if target is ItemStatus.BLOCKED:
        changes["blocked_from_status"] = item.status
        changes["previous_summary"] = None
    elif item.status is ItemStatus.BLOCKED:
        changes.update(
            blocked_from_status=None,
            blocked_reason=None,
            blocked_type=None,
            unblock_context=None,
        )
    if target is ItemStatus.DONE:
        changes["previous_summary"] = None
    return touch(item, now, **changes)


def block(
    item: Item,
    reason: str,
    now: datetime,
    blocked_type: BlockedType | None = None,
) -> Item:
    blocked = transition(item, ItemStatus.BLOCKED, now)
    return blocked.replace(blocked_reason=reason, blocked_type=blocked_type)


def unblock(item: Item, now: datetime, notes: str | None = None) -> Item:
    """Restore the saved status (New if none was saved), keep phase and pool.

    The notes become `unblock_context` for the next prompt, and the staleness
    anchor is dropped because a human has looked at the item since.
    """
    if item.status is not ItemStatus.BLOCKED:
        raise InvalidTransition(f"{item.id} is {item.status.value}, not blocked")
    restored = item.blocked_from_status or ItemStatus.NEW
    if restored not in _BLOCKABLE:
        restored = ItemStatus.NEW
    released = transition(item, restored, now)
    clean_notes = notes.strip() if notes else None
    return released.replace(unblock_context=clean_notes or None, last_phase_commit=None)


def archive(item: Item, now: datetime, closed_reason: str | None = None) -> Item:
    if item.archived:
        raise DomainError(f"{item.id} is already archived")
    stamp = format_timestamp(now)
    return item.replace(
        archived=True,
        archived_at=stamp,
        updated=stamp,
        closed_reason=closed_reason,
        previous_summary=None,
    )


def merge_assessments(item: Item, update: Assessments, now: datetime) -> Item:
    """Only the dimensions present in `update` change (Phase Golem's partial merge)."""
    changes = {
        name: value
        for name in ("size", "complexity", "risk", "impact")
        if (value := getattr(update, name)) is not None
    }
    if not changes:
        return item
    return touch(item, now, **changes)


def impact_priority(item: Item) -> int:
    """Sort value used for promotions: high=3, medium=2, low=1, none=0."""
    return item.impact.rank if item.impact is not None else 0


def status_sort_key(item: Item) -> tuple[int, int, str]:
    """`phase-golem status` order: status group, then impact high first, then ID."""
    return (STATUS_DISPLAY_ORDER.index(item.status), -impact_priority(item), item.id)


def normalize_tags(tags: Iterable[str]) -> tuple[str, ...]:
    seen: list[str] = []
    for tag in tags:
        clean = tag.strip()
        if not clean:
            raise DomainError("tags must not be empty")
        if clean not in seen:
            seen.append(clean)
    return tuple(seen)


def normalize_dependencies(item_id: str, deps: Iterable[str]) -> tuple[str, ...]:
    seen: list[str] = []
    for dep in deps:
        clean = dep.strip()
        split_item_id(clean)
        if clean == item_id:
            raise DomainError(f"{item_id} cannot depend on itself")
        if clean not in seen:
            seen.append(clean)
    return tuple(seen)
