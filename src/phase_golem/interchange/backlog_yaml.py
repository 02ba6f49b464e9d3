"""Phase Golem `BACKLOG.yaml` (schema v1, v2, v3): reading with its migrations, writing v3.

Timestamps are kept as the exact strings in the file (Rust writes nanoseconds, which a
datetime would round), so an import followed by an export changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from phase_golem.domain.descriptions import StructuredDescription, parse_freeform_description
from phase_golem.domain.errors import DomainError, ParseError
from phase_golem.domain.items import (
    MAX_ITEM_NUMBER,
    PHASE_GOLEM_FIELDS,
    Item,
    ItemStatus,
    PhasePool,
    normalize_dependencies,
    parse_timestamp,
    split_item_id,
)
from phase_golem.domain.pipelines import PipelineConfig
from phase_golem.domain.redaction import redact
from phase_golem.domain.serialization import item_from_dict
from phase_golem.safe_files import IMPORT_LIMIT, FileRefused, read_text_bounded

SUPPORTED_VERSIONS = (1, 2, 3)
V1_PHASES = frozenset({"prd", "research", "design", "spec", "build", "review"})
V1_STATUS_MAP = {"researching": "scoping", "scoped": "ready"}
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class BacklogFormatError(ValueError):
    """A backlog or inbox file we cannot read; the message names the file and the place."""


class _StringTimestampLoader(yaml.SafeLoader):
    """SafeLoader that leaves timestamps as the strings they were written as."""


_StringTimestampLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_StringTimestampLoader)
    except RecursionError:
        raise BacklogFormatError(f"{source}: invalid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise BacklogFormatError(f"{source}: invalid YAML{where}: {problem}") from None


@dataclass(frozen=True)
class ImportedBacklog:
    items: tuple[Item, ...]
    next_item_id: int
    schema_version: int
    warnings: tuple[str, ...]
    migrated: bool


def _label(index: int, raw: Mapping[str, Any]) -> str:
    item_id = raw.get("id")
    return f"items[{index}] ({item_id})" if isinstance(item_id, str) else f"items[{index}]"


def _migrate_v1(
    raw: dict[str, Any], feature: PipelineConfig, warnings: list[str], label: str
) -> dict[str, Any]:
    """v1 → v2: old statuses renamed, feature pipeline assigned, unknown phases cleared."""
    item = dict(raw)
    changes: list[str] = []
    status = str(item.get("status", "")).lower()
    phase = item.get("phase")
    if phase is not None and phase not in V1_PHASES:
        raise BacklogFormatError(
            f"{label}: invalid v1 phase {phase!r} (expected one of: {', '.join(sorted(V1_PHASES))})"
        )
    if status in V1_STATUS_MAP:
        item["status"] = V1_STATUS_MAP[status]
        changes.append(f"status {status} → {item['status']}")
        if status == "researching" and phase is not None:
            item["phase"] = None
            changes.append("phase cleared")
    saved = item.get("blocked_from_status")
    if isinstance(saved, str) and saved.lower() in V1_STATUS_MAP:
        item["blocked_from_status"] = V1_STATUS_MAP[saved.lower()]
        changes.append(f"blocked_from_status {saved} → {item['blocked_from_status']}")
    item["pipeline_type"] = "feature"
    phase = item.get("phase")
    if phase is not None and item["status"] != "done":
        position = feature.locate(phase)
        if position is None:
            item["phase"] = None
            warnings.append(f"{label}: phase {phase!r} is not in the feature pipeline; cleared")
            changes.append("phase cleared (not in pipeline)")
        elif item["status"] == "in_progress":
            item["phase_pool"] = PhasePool.MAIN.value
    elif phase is not None and item["status"] == "in_progress":
        item["phase_pool"] = PhasePool.MAIN.value
    if changes:
        warnings.append(f"{label}: migrated v1 → v2: {', '.join(changes)}")
    return item


def _migrate_description(raw: dict[str, Any], warnings: list[str], label: str) -> dict[str, Any]:
    """v2 → v3: a free-text description is split on its section headers."""
    text = raw.get("description")
    if not isinstance(text, str):
        return raw
    structured, conforming = parse_freeform_description(text)
    if not conforming and text.strip():
        warnings.append(f"{label}: non-conforming description moved whole into context")
    return {**raw, "description": structured.to_dict() if not structured.is_empty() else None}


def _checked_string_list(value: Any, label: str, name: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BacklogFormatError(f"{label}: {name} must be a list of strings")
    return list(value)


def _to_item(raw: Any, index: int, source: str) -> Item:
    if not isinstance(raw, dict):
        raise BacklogFormatError(f"{source}: items[{index}]: expected a mapping")
    label = f"{source}: {_label(index, raw)}"
    for required in ("id", "title", "status", "created"):
        if raw.get(required) in (None, ""):
            raise BacklogFormatError(f"{label}: missing required field {required!r}")
    data = {k: v for k, v in raw.items() if k in PHASE_GOLEM_FIELDS and v is not None}
    for name in ("id", "title", "created", "updated", "phase", "origin", "blocked_reason"):
        if name in data and not isinstance(data[name], str):
            data[name] = str(data[name])
    data.setdefault("updated", data["created"])
    for name in ("created", "updated"):
        try:
            parse_timestamp(data[name])
        except ParseError as exc:
            raise BacklogFormatError(f"{label}: {name}: {exc}") from None
    data["tags"] = _checked_string_list(data.get("tags"), label, "tags")
    data["dependencies"] = _checked_string_list(data.get("dependencies"), label, "dependencies")
    review = data.get("requires_human_review", False)
    if not isinstance(review, bool):
        raise BacklogFormatError(f"{label}: requires_human_review must be true or false")
    description = data.get("description")
    if description is not None and not isinstance(description, dict):
        raise BacklogFormatError(f"{label}: description must be a mapping in schema v3")
    try:
        split_item_id(data["id"])
        data["dependencies"] = list(normalize_dependencies(data["id"], data["dependencies"]))
        item = item_from_dict(data)
    except DomainError as exc:
        raise BacklogFormatError(f"{label}: {exc}") from None
    if item.description is not None and item.description.is_empty():
        item = item.replace(description=None)
    if item.status is ItemStatus.DONE:
        item = item.replace(archived=True, archived_at=item.updated)
    return item


def parse_backlog_text(
    text: str, source: str, feature_pipeline: PipelineConfig | None
) -> ImportedBacklog:
    data = load_yaml(text, source)
    if not isinstance(data, dict):
        raise BacklogFormatError(f"{source}: expected a mapping with schema_version and items")
    version = data.get("schema_version", 1)
    if isinstance(version, bool) or version not in SUPPORTED_VERSIONS:
        raise BacklogFormatError(
            f"{source}: unsupported schema_version {version} (supported: 1, 2, 3)"
        )
    raw_items = data.get("items")
    if raw_items is None:
        raw_items = []
    if not isinstance(raw_items, list):
        raise BacklogFormatError(f"{source}: items must be a list")
    next_item_id = data.get("next_item_id", 0) or 0
    if (
        isinstance(next_item_id, bool)
        or not isinstance(next_item_id, int)
        or not 0 <= next_item_id <= MAX_ITEM_NUMBER
    ):
        raise BacklogFormatError(
            f"{source}: next_item_id must be a whole number from 0 to {MAX_ITEM_NUMBER}"
        )

    warnings: list[str] = []
    prepared: list[Any] = []
    for index, original in enumerate(raw_items):
        if not isinstance(original, dict):
            raise BacklogFormatError(f"{source}: items[{index}]: expected a mapping")
        label = _label(index, original)
        entry = original
        if version == 1:
            if feature_pipeline is None:
                raise BacklogFormatError(
                    f"{source}: a schema v1 backlog needs a `feature` pipeline to migrate into"
                )
            entry = _migrate_v1(entry, feature_pipeline, warnings, label)
        if version <= 2:
            entry = _migrate_description(entry, warnings, label)
        prepared.append(entry)
    if version == 1 and prepared:
        changed = sum(1 for w in warnings if "migrated v1" in w)
        warnings.append(
            f"migrated {len(prepared)} item(s) from schema v1: {changed} changed, "
            f"{len(prepared) - changed} unchanged"
        )

    items = tuple(_to_item(raw, index, source) for index, raw in enumerate(prepared))
    seen: set[str] = set()
    for index, item in enumerate(items):
        if item.id in seen:
            raise BacklogFormatError(f"{source}: items[{index}] ({item.id}): duplicate ID")
        seen.add(item.id)
    warnings.extend(_high_water_warnings(items, next_item_id))
    return ImportedBacklog(items, next_item_id, version, tuple(warnings), version < 3)


def _high_water_warnings(items: Iterable[Item], next_item_id: int) -> list[str]:
    highest: dict[str, int] = {}
    for item in items:
        prefix, number = split_item_id(item.id)
        if number is not None:
            highest[prefix] = max(highest.get(prefix, 0), number)
    return [
        f"next_item_id {next_item_id} is behind the highest {prefix} ID ({number}); "
        "new IDs continue above the highest"
        for prefix, number in sorted(highest.items())
        if number > next_item_id
    ]


def load_backlog_file(path: Path, feature_pipeline: PipelineConfig | None) -> ImportedBacklog:
    return parse_backlog_text(read_import_text(path), path.name, feature_pipeline)


def read_import_text(path: Path) -> str:
    """A file given to `import` (or an inbox): regular, bounded, UTF-8, else one line."""
    try:
        return read_text_bounded(path, IMPORT_LIMIT, what=str(path))
    except FileNotFoundError:
        raise BacklogFormatError(f"{path}: no such file") from None
    except FileRefused as exc:
        raise BacklogFormatError(str(exc)) from None


# --- writing ---------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def _export_value(item: Item, name: str) -> Any:
    value = getattr(item, name)
    if isinstance(value, StructuredDescription):
        return None if value.is_empty() else value.to_dict()
    if isinstance(value, tuple):
        return list(value) or None
    if hasattr(value, "value"):
        return value.value
    return value


def item_to_backlog_entry(item: Item) -> dict[str, Any]:
    """Phase Golem's 22 fields in its order; absent optionals and empty lists left out."""
    entry: dict[str, Any] = {}
    for name in PHASE_GOLEM_FIELDS:
        value = _export_value(item, name)
        if name == "requires_human_review":
            entry[name] = bool(value)
        elif value is not None:
            entry[name] = value
    return entry


def dump_backlog_v3(
    items: Iterable[Item], next_item_id: int, *, include_closed: bool = True
) -> str:
    """Schema v3 that Phase Golem reads; closed-not-done items keep their last status."""
    chosen = [i for i in items if include_closed or i.closed_reason is None]
    document = {
        "schema_version": 3,
        "items": [redact(item_to_backlog_entry(i)) for i in chosen],
        "next_item_id": next_item_id,
    }
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
