"""Items, runs and events as flat database rows, shared by every SQL dialect."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from phase_golem.domain.descriptions import StructuredDescription
from phase_golem.domain.events import EventKind, LedgerEvent, Schedule
from phase_golem.domain.items import (
    ITEM_FIELDS,
    BlockedType,
    Item,
    ItemStatus,
    Level,
    PhasePool,
    Size,
)
from phase_golem.domain.receipts import Receipt, receipt_from_dict
from phase_golem.domain.runs import RUN_FIELDS, Run
from phase_golem.domain.serialization import (
    item_from_dict,
    item_to_dict,
    run_from_dict,
    run_to_dict,
)

ITEM_JSON_COLUMNS = frozenset({"tags", "dependencies", "description"})
ITEM_BOOL_COLUMNS = frozenset({"requires_human_review", "archived"})
_STATUSES = {s.value: s for s in ItemStatus}
_SIZES = {s.value: s for s in Size}
_LEVELS = {s.value: s for s in Level}
_POOLS = {p.value: p for p in PhasePool}
_BLOCKED_TYPES = {b.value: b for b in BlockedType}
RUN_JSON_COLUMNS = frozenset({"result"})
RUN_BOOL_COLUMNS = frozenset({"side_effect", "exclusive"})
EVENT_COLUMNS = ("seq", "at", "kind", "item_id", "run_id", "data")
SCHEDULE_COLUMNS = (
    "source",
    "kind",
    "value",
    "next_run_at",
    "last_run_at",
    "last_error",
    "failures",
    "claimed_by",
    "claimed_until",
    "runs",
    "items_created",
    "items_updated",
    "items_closed",
)
RECEIPT_COLUMNS = (
    "run_id",
    "item_id",
    "phase",
    "created_at",
    "idempotency_key",
    "snapshot_before",
    "snapshot_after",
    "git_commit",
    "workdir",
    "artifacts",
)


def _dumps(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if _SURROGATE.search(text):  # evidence from an agent: stored escaped, never refused
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text


_SURROGATE = re.compile("[\ud800-\udfff]")


def item_to_row(item: Item) -> dict[str, Any]:
    row = item_to_dict(item)
    for name in ITEM_JSON_COLUMNS:
        row[name] = None if row[name] is None else _dumps(row[name])
    for name in ITEM_BOOL_COLUMNS:
        row[name] = int(bool(row[name]))
    return row


def item_from_row(row: Mapping[str, Any]) -> Item:
    """Decode a stored row: the direct path for rows we wrote ourselves (canonical values,
    the common case, paid once per item at open), the tolerant parser for anything else."""
    try:
        return _stored_item(row)
    except (KeyError, TypeError, ValueError):
        return _parsed_item(row)


def _parsed_item(row: Mapping[str, Any]) -> Item:
    data = {name: row[name] for name in ITEM_FIELDS}
    for name in ITEM_JSON_COLUMNS:
        if isinstance(data[name], str):
            data[name] = json.loads(data[name])
    for name in ITEM_BOOL_COLUMNS:
        data[name] = bool(data[name])
    return item_from_dict(data)


def _choice(table: Mapping[str, Any], value: str | None) -> Any:
    return None if value is None else table[value]


def _strings(text: str) -> tuple[str, ...]:
    if text == "[]":
        return ()
    values = json.loads(text)
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise TypeError("not a list of strings")
    return tuple(values)


def _description(text: str | None) -> StructuredDescription | None:
    if text is None:
        return None
    data = json.loads(text)
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise TypeError("not a description")
    return StructuredDescription(**data)


# The columns of an item row in the order of the Item dataclass's fields, so a stored
# row decodes positionally; and, per position, what turns its column into the field.
ITEM_ROW_ORDER: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Item))
_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "status": _STATUSES.__getitem__,
    "size": lambda v: _choice(_SIZES, v),
    "complexity": lambda v: _choice(_LEVELS, v),
    "risk": lambda v: _choice(_LEVELS, v),
    "impact": lambda v: _choice(_LEVELS, v),
    "requires_human_review": bool,
    "blocked_from_status": lambda v: _choice(_STATUSES, v),
    "blocked_type": lambda v: _choice(_BLOCKED_TYPES, v),
    "tags": _strings,
    "dependencies": _strings,
    "description": _description,
    "phase_pool": lambda v: _choice(_POOLS, v),
    "cost_usd": float,
    "archived": bool,
}
_CONVERSIONS = tuple(
    (index, _CONVERTERS[name]) for index, name in enumerate(ITEM_ROW_ORDER) if name in _CONVERTERS
)


def _stored_item(row: Mapping[str, Any]) -> Item:
    return item_from_values([row[name] for name in ITEM_ROW_ORDER])


def item_from_values(values: list[Any]) -> Item:
    """A stored row's columns in `ITEM_ROW_ORDER` → the item (raises on anything odd)."""
    for index, convert in _CONVERSIONS:
        values[index] = convert(values[index])
    return Item(*values)


def items_from_value_rows(rows: Iterable[Sequence[Any]]) -> list[Item]:
    """Whole rows in `ITEM_ROW_ORDER` (the full load at open): positional, no dict per row;
    a row that is not canonical goes through the tolerant parser instead."""
    items = []
    for row in rows:
        try:
            items.append(item_from_values(list(row)))
        except (KeyError, TypeError, ValueError):
            items.append(_parsed_item(dict(zip(ITEM_ROW_ORDER, row, strict=True))))
    return items


def run_to_row(run: Run) -> dict[str, Any]:
    row = run_to_dict(run)
    for name in RUN_JSON_COLUMNS:
        row[name] = None if row[name] is None else _dumps(row[name])
    for name in RUN_BOOL_COLUMNS:
        row[name] = int(bool(row[name]))
    return row


def run_from_row(row: Mapping[str, Any]) -> Run:
    data = {name: row[name] for name in RUN_FIELDS}
    for name in RUN_JSON_COLUMNS:
        if isinstance(data[name], str):
            data[name] = json.loads(data[name])
    for name in RUN_BOOL_COLUMNS:
        data[name] = bool(data[name])
    return run_from_dict(data)


def event_data_to_column(data: Mapping[str, Any]) -> str:
    return _dumps(dict(data))


def event_from_row(row: Mapping[str, Any]) -> LedgerEvent:
    raw = row["data"]
    return LedgerEvent(
        seq=int(row["seq"]),
        at=row["at"],
        kind=EventKind(row["kind"]),
        item_id=row["item_id"],
        run_id=row["run_id"],
        data=json.loads(raw) if isinstance(raw, str) else dict(raw or {}),
    )


def schedule_from_row(row: Mapping[str, Any]) -> Schedule:
    return Schedule(**{name: row[name] for name in SCHEDULE_COLUMNS})


def receipt_to_row(receipt: Receipt) -> dict[str, Any]:
    data = receipt.to_dict()
    data["git_commit"] = data.pop("commit")
    data["artifacts"] = _dumps(data["artifacts"])
    return {name: data[name] for name in RECEIPT_COLUMNS}


def receipt_from_row(row: Mapping[str, Any]) -> Receipt:
    data = {name: row[name] for name in RECEIPT_COLUMNS}
    data["commit"] = data.pop("git_commit")
    raw = data["artifacts"]
    data["artifacts"] = json.loads(raw) if isinstance(raw, str) else list(raw or [])
    return receipt_from_dict(data)
