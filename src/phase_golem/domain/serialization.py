"""Items and runs as plain JSON-ready dicts (the field names of DESIGN §4), and back."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

from phase_golem.domain.descriptions import StructuredDescription
from phase_golem.domain.errors import ParseError
from phase_golem.domain.items import (
    ITEM_FIELDS,
    BlockedType,
    Item,
    ItemStatus,
    Level,
    PhasePool,
    Size,
)
from phase_golem.domain.runs import RUN_FIELDS, ErrorClass, Mutation, Run, RunKind, RunStatus, Step

ITEM_FIELD_PARSERS: dict[str, Callable[[Any], Any]] = {
    "status": ItemStatus.parse,
    "blocked_from_status": ItemStatus.parse,
    "size": lambda v: Size.parse(v, what="size"),
    "complexity": lambda v: Level.parse(v, what="complexity"),
    "risk": lambda v: Level.parse(v, what="risk"),
    "impact": lambda v: Level.parse(v, what="impact"),
    "blocked_type": BlockedType.parse,
    "phase_pool": PhasePool.parse,
    "description": StructuredDescription.from_mapping,
    "tags": tuple,
    "dependencies": tuple,
}


def _plain(value: Any) -> Any:
    if isinstance(value, StructuredDescription):
        return value.to_dict()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return list(value)
    return value


def item_to_dict(item: Item) -> dict[str, Any]:
    return {name: _plain(getattr(item, name)) for name in ITEM_FIELDS}


def item_from_dict(data: Mapping[str, Any]) -> Item:
    """Rebuild an item from `item_to_dict` output; unknown keys are ignored."""
    values: dict[str, Any] = {}
    for name in ITEM_FIELDS:
        if name not in data or data[name] is None:
            continue
        raw = data[name]
        parser = ITEM_FIELD_PARSERS.get(name)
        try:
            values[name] = parser(raw) if parser else raw
        except ParseError as exc:
            raise ParseError(f"field {name}: {exc}") from None
    return Item(**values)


_RUN_PARSERS: dict[str, Callable[[Any], Any]] = {
    "kind": RunKind,
    "step": Step,
    "status": RunStatus,
    "error_class": ErrorClass,
    "mutation": Mutation,
    "pool": PhasePool,
}


def run_to_dict(run: Run) -> dict[str, Any]:
    return {name: _plain(getattr(run, name)) for name in RUN_FIELDS}


def run_from_dict(data: Mapping[str, Any]) -> Run:
    values: dict[str, Any] = {}
    for name in RUN_FIELDS:
        if name not in data or data[name] is None:
            continue
        raw = data[name]
        parser = _RUN_PARSERS.get(name)
        values[name] = parser(raw) if parser else raw
    return Run(**values)
