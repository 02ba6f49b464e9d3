"""Items, runs and events as flat database rows, shared by every SQL dialect."""

from __future__ import annotations

import json
from collections.abc import Mapping
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
RUN_BOOL_COLUMNS = frozenset({"side_effect"})
EVENT_COLUMNS = ("seq", "at", "kind", "item_id", "run_id", "data")
SCHEDULE_COLUMNS = ("source", "kind", "value", "next_run_at", "last_run_at")
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
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


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


def _stored_item(row: Mapping[str, Any]) -> Item:
    return Item(
        id=row["id"],
        title=row["title"],
        status=_STATUSES[row["status"]],
        created=row["created"],
        updated=row["updated"],
        phase=row["phase"],
        size=_choice(_SIZES, row["size"]),
        complexity=_choice(_LEVELS, row["complexity"]),
        risk=_choice(_LEVELS, row["risk"]),
        impact=_choice(_LEVELS, row["impact"]),
        requires_human_review=bool(row["requires_human_review"]),
        origin=row["origin"],
        blocked_from_status=_choice(_STATUSES, row["blocked_from_status"]),
        blocked_reason=row["blocked_reason"],
        blocked_type=_choice(_BLOCKED_TYPES, row["blocked_type"]),
        unblock_context=row["unblock_context"],
        tags=_strings(row["tags"]),
        dependencies=_strings(row["dependencies"]),
        pipeline_type=row["pipeline_type"],
        description=_description(row["description"]),
        phase_pool=_choice(_POOLS, row["phase_pool"]),
        last_phase_commit=row["last_phase_commit"],
        previous_summary=row["previous_summary"],
        phase_entered_at=row["phase_entered_at"],
        wake_at=row["wake_at"],
        triage_attempts=int(row["triage_attempts"]),
        source=row["source"],
        external_id=row["external_id"],
        branch=row["branch"],
        cost_usd=float(row["cost_usd"]),
        tokens_in=int(row["tokens_in"]),
        tokens_out=int(row["tokens_out"]),
        archived=bool(row["archived"]),
        archived_at=row["archived_at"],
        closed_reason=row["closed_reason"],
    )


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
