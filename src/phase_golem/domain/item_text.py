"""What of an item may be stored: text git, an environment and UTF-8 can hold, no secret.

Every store calls both before it writes an item, so no entry point (add, edit, import,
follow-ups, notes, merges) can bypass them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from phase_golem.domain.descriptions import StructuredDescription
from phase_golem.domain.items import Item
from phase_golem.domain.redaction import redact_text
from phase_golem.domain.text import text_problem

_TEXT_FIELDS = (
    "id",
    "title",
    "created",
    "updated",
    "phase",
    "origin",
    "blocked_reason",
    "unblock_context",
    "pipeline_type",
    "last_phase_commit",
    "previous_summary",
    "phase_entered_at",
    "wake_at",
    "source",
    "external_id",
    "branch",
    "archived_at",
    "closed_reason",
)


def item_text_problem(item: Item) -> str | None:
    """Which text of the item cannot be stored (a NUL, a lone surrogate), or None."""
    values: list[tuple[str, str]] = [(name, getattr(item, name)) for name in _TEXT_FIELDS]
    values += [(f"tags[{i}]", tag) for i, tag in enumerate(item.tags)]
    values += [(f"dependencies[{i}]", dep) for i, dep in enumerate(item.dependencies)]
    if item.description is not None:
        values += [(f"description.{k}", v) for k, v in item.description.to_dict().items()]
    for name, value in values:
        if isinstance(value, str):
            problem = text_problem(value)
            if problem is not None:
                label = item.id if text_problem(item.id) is None else "an item"
                return f"{label}: {name} {problem}"
    return None


_FREE_TEXT_FIELDS = (
    "title",
    "blocked_reason",
    "unblock_context",
    "previous_summary",
    "closed_reason",
)


def redact_item(item: Item) -> Item:
    """The item with secrets removed from its free text (the same item if it had none)."""
    changes: dict[str, Any] = {}
    for name in _FREE_TEXT_FIELDS:
        value = getattr(item, name)
        if isinstance(value, str) and (clean := redact_text(value)) != value:
            changes[name] = clean
    if item.description is not None:
        parts = item.description.to_dict()
        clean_parts = {k: redact_text(v) for k, v in parts.items()}
        if clean_parts != parts:
            changes["description"] = StructuredDescription(**clean_parts)
    return dataclasses.replace(item, **changes) if changes else item
