"""task-golem's JSONL store (`.task-golem/tasks.jsonl`, `archive.jsonl`), Phase Golem's HEAD era.

Each file starts with a schema header line (`{"schema_version":1}`) and holds one task-golem
item per line. Phase Golem keeps its own state in `x-pg-*` extension keys; the mapping below
follows its adapter (research/phase-golem.md §2.3): a `todo` item's `x-pg-status` says New,
Scoping or Ready (missing reads as New), and a blocked-from extension whose native field was
cleared is stale.

task-golem's own YAML-to-JSONL migration (its TG-007) wrote the same fields under plain
names (`x-size`, `x-phase`, `x-pipeline-type`, …) plus `x-legacy-id` and
`x-legacy-updated`, and task-golem added a native `parent`. Both spellings are read, the
`x-pg-*` one winning. No known field is ever dropped: a value we cannot read is an error
naming the line and the key (an in-progress item whose phase was lost would be stuck), and
keys we do not know are named in a warning.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from phase_golem.domain.descriptions import StructuredDescription, parse_freeform_description
from phase_golem.domain.errors import DomainError, ParseError
from phase_golem.domain.items import (
    BlockedType,
    Item,
    ItemStatus,
    normalize_dependencies,
    parse_timestamp,
    split_item_id,
)
from phase_golem.domain.ndjson import JSON_ERRORS, json_error_message, torn_line_warning
from phase_golem.domain.redaction import redact
from phase_golem.domain.serialization import ITEM_FIELD_PARSERS
from phase_golem.interchange.backlog_yaml import BacklogFormatError

SCHEMA_VERSION = 1
ACTIVE_FILE = "tasks.jsonl"
ARCHIVE_FILE = "archive.jsonl"

_NATIVE_STATUS = {
    "doing": ItemStatus.IN_PROGRESS,
    "done": ItemStatus.DONE,
    "blocked": ItemStatus.BLOCKED,
}
_TODO_STATUSES = {ItemStatus.NEW, ItemStatus.SCOPING, ItemStatus.READY}
_NATIVE_FIELDS = (
    "id",
    "title",
    "status",
    "priority",
    "description",
    "tags",
    "dependencies",
    "created_at",
    "updated_at",
    "blocked_reason",
    "blocked_from_status",
    "claimed_by",
    "claimed_at",
    "parent",
)
_EXTENSION_PREFIX = "x-pg-"
_PLAIN_PREFIX = "x-"
# Phase Golem's extension names, read as `x-pg-NAME` or, as task-golem's migration wrote
# them, `x-NAME`.
_EXTENSION_NAMES = (
    "status",
    "phase",
    "phase-pool",
    "size",
    "complexity",
    "risk",
    "impact",
    "requires-human-review",
    "pipeline-type",
    "origin",
    "blocked-type",
    "blocked-from-status",
    "unblock-context",
    "last-phase-commit",
    "description",
)
_LEGACY_KEYS = ("x-legacy-id", "x-legacy-updated")
_KNOWN_KEYS = frozenset(
    {*_NATIVE_FIELDS, *_LEGACY_KEYS}
    | {prefix + name for name in _EXTENSION_NAMES for prefix in (_EXTENSION_PREFIX, _PLAIN_PREFIX)}
)


@dataclass(frozen=True)
class TaskGolemParse:
    items: tuple[Item, ...]
    warnings: tuple[str, ...]


def _header_version(line: str, source: str) -> int:
    try:
        header = json.loads(line)
    except JSON_ERRORS:
        header = None
    if not isinstance(header, dict) or not isinstance(header.get("schema_version"), int):
        raise BacklogFormatError(
            f'{source}: line 1: expected the schema header {{"schema_version":1}}'
        )
    version: int = header["schema_version"]
    if version != SCHEMA_VERSION:
        raise BacklogFormatError(
            f"{source}: unsupported task-golem schema_version {version} "
            f"(supported: {SCHEMA_VERSION})"
        )
    return version


def looks_like_task_golem(text: str) -> bool:
    first = text.lstrip().split("\n", 1)[0].strip()
    try:
        header = json.loads(first)
    except JSON_ERRORS:
        return False
    return isinstance(header, dict) and "schema_version" in header and "items" not in header


class _ItemReader:
    """Turns one decoded task-golem object into an Item, collecting warnings."""

    def __init__(self, raw: dict[str, Any], label: str, warnings: list[str]) -> None:
        self.raw = raw
        self.label = label
        self.warnings = warnings

    def warn(self, message: str) -> None:
        self.warnings.append(f"{self.label}: {message}")

    def text(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise BacklogFormatError(f"{self.label}: {key} must be a string")
        return value or None

    def strings(self, key: str) -> list[str]:
        value = self.raw.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BacklogFormatError(f"{self.label}: {key} must be a list of strings")
        return list(value)

    def extension(self, name: str, parse: Callable[[Any], Any]) -> Any:
        """A Phase Golem extension parsed, `x-pg-NAME` winning over `x-NAME`; None when
        neither is there. A value that does not parse is an error naming its key."""
        ours, plain = _EXTENSION_PREFIX + name, _PLAIN_PREFIX + name
        chosen = ours if self.raw.get(ours) is not None else plain
        value = self.raw.get(chosen)
        if value is None:
            return None
        other = self.raw.get(plain)
        if chosen == ours and other is not None and other != value:
            self.warn(f"{plain} {other!r} differs from {ours} {value!r}; kept {ours}")
        return self.parsed(chosen, value, parse)

    def parsed(self, key: str, value: Any, parse: Callable[[Any], Any]) -> Any:
        try:
            return parse(value)
        except ParseError as exc:
            raise BacklogFormatError(f"{self.label}: {key}: {exc}") from None
        except (ValueError, TypeError, AttributeError) as exc:
            problem = f"{self.label}: {key}: invalid value {value!r} ({exc})"
            raise BacklogFormatError(problem) from None

    def optional(self, key: str, parse: Callable[[Any], Any]) -> Any:
        value = self.raw.get(key)
        return None if value is None else self.parsed(key, value, parse)

    def status(self) -> ItemStatus:
        native = self.text("status")
        if native == "todo":
            extended = self.extension("status", ITEM_FIELD_PARSERS["status"])
            if extended is not None and extended not in _TODO_STATUSES:
                self.warn(f"x-pg-status {extended.value!r} does not fit native todo; read as new")
                extended = None
            return extended or ItemStatus.NEW
        if native in _NATIVE_STATUS:
            return _NATIVE_STATUS[native]
        raise BacklogFormatError(
            f"{self.label}: status must be todo, doing, done or blocked, not {native!r}"
        )

    def blocked_from(self, status: ItemStatus) -> ItemStatus | None:
        native = self.raw.get("blocked_from_status")
        if status is not ItemStatus.BLOCKED or native is None:
            return None  # a cleared native field makes the extension stale (someone ran tg unblock)
        extended = self.extension("blocked-from-status", ITEM_FIELD_PARSERS["status"])
        if extended is not None and extended not in (ItemStatus.DONE, ItemStatus.BLOCKED):
            return ItemStatus(extended)
        return ItemStatus.IN_PROGRESS if native == "doing" else ItemStatus.NEW

    def blocked_type(self) -> BlockedType | None:
        parsed: BlockedType | None = self.extension(
            "blocked-type", ITEM_FIELD_PARSERS["blocked_type"]
        )
        return parsed

    def description(self) -> StructuredDescription | None:
        structured = self.extension("description", ITEM_FIELD_PARSERS["description"])
        if structured is not None:
            return None if structured.is_empty() else structured
        native = self.text("description")
        if native is None or not native.strip():
            return None
        parsed, _ = parse_freeform_description(native)
        return parsed

    def timestamp(self, key: str) -> str:
        value = self.text(key)
        if value is None:
            raise BacklogFormatError(f"{self.label}: missing required field {key!r}")
        try:
            parse_timestamp(value)
        except ParseError as exc:
            raise BacklogFormatError(f"{self.label}: {key}: {exc}") from None
        return value

    def unknown_keys(self) -> list[str]:
        return sorted(key for key in self.raw if key not in _KNOWN_KEYS)

    def parent(self) -> str | None:
        parent: str | None = self.optional("parent", _item_id)
        return parent

    def legacy_updated(self) -> str | None:
        stamp: str | None = self.optional("x-legacy-updated", _timestamp)
        return stamp

    def item(self, *, archived: bool) -> Item:
        item_id = self.text("id")
        title = self.text("title")
        if item_id is None or title is None:
            raise BacklogFormatError(f"{self.label}: an item needs a non-empty id and title")
        phase = self.extension("phase", _nonempty_str)
        if self.raw.get("status") == "doing" and phase is None:
            self.warn(
                "in progress without a phase (x-pg-phase or x-phase): it will not run until "
                f"`phase-golem advance {item_id} --to PHASE` gives it one"
            )
        try:
            split_item_id(item_id)
            dependencies = normalize_dependencies(item_id, self.strings("dependencies"))
        except DomainError as exc:
            raise BacklogFormatError(f"{self.label}: {exc}") from None
        status = self.status()
        created = self.timestamp("created_at")
        updated = self.timestamp("updated_at")
        blocked = status is ItemStatus.BLOCKED
        review = self.extension("requires-human-review", _strict_bool)
        archive_now = archived or status is ItemStatus.DONE
        return Item(
            id=item_id,
            title=title.strip(),
            status=status,
            created=created,
            updated=updated,
            phase=phase,
            size=self.extension("size", ITEM_FIELD_PARSERS["size"]),
            complexity=self.extension("complexity", ITEM_FIELD_PARSERS["complexity"]),
            risk=self.extension("risk", ITEM_FIELD_PARSERS["risk"]),
            impact=self.extension("impact", ITEM_FIELD_PARSERS["impact"]),
            requires_human_review=bool(review),
            origin=self.extension("origin", _nonempty_str),
            blocked_from_status=self.blocked_from(status),
            blocked_reason=self.text("blocked_reason") if blocked else None,
            blocked_type=self.blocked_type() if blocked else None,
            unblock_context=self.extension("unblock-context", _nonempty_str),
            tags=tuple(self.strings("tags")),
            dependencies=dependencies,
            pipeline_type=self.extension("pipeline-type", _nonempty_str),
            description=self.description(),
            phase_pool=self.extension("phase-pool", ITEM_FIELD_PARSERS["phase_pool"]),
            last_phase_commit=self.extension("last-phase-commit", _nonempty_str),
            archived=archive_now,
            archived_at=updated if archive_now else None,
            legacy_id=self.optional("x-legacy-id", _nonempty_str),
            legacy_updated=self.legacy_updated(),
            parent=self.parent(),
        )


def _item_id(value: Any) -> str:
    text = _nonempty_str(value)
    split_item_id(text)
    return text


def _timestamp(value: Any) -> str:
    text = _nonempty_str(value)
    parse_timestamp(text)
    return text


def _strict_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("expected true or false")
    return value


def _nonempty_str(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise TypeError("expected a non-empty string")
    return value


def parse_task_golem_text(text: str, source: str, *, archive: bool = False) -> TaskGolemParse:
    """Parse one JSONL file. A torn final line (a writer killed mid-append) is dropped
    with a warning in either file; elsewhere the active file fails on a malformed line
    (naming it) while the archive skips it with a warning, as task-golem does.
    """
    warnings: list[str] = []
    lines = text.split("\n")
    first = next((n for n, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return TaskGolemParse((), ())
    _header_version(lines[first], source)
    items: list[Item] = []
    unknown: set[str] = set()
    last = max(n for n, line in enumerate(lines, start=1) if line.strip())
    for number, line in enumerate(lines[first + 1 :], start=first + 2):
        if not line.strip():
            continue
        label = f"{source}: line {number}"
        try:
            raw = json.loads(line)
        except JSON_ERRORS as exc:
            why = json_error_message(exc)
            if number == last:
                warnings.append(torn_line_warning(source, number, why))
                continue
            if archive:
                warnings.append(f"{label}: skipped a malformed line ({why})")
                continue
            raise BacklogFormatError(f"{label}: malformed JSON: {why}") from None
        if not isinstance(raw, dict):
            raise BacklogFormatError(f"{label}: expected a JSON object")
        if isinstance(raw.get("id"), str):
            label = f"{label} ({raw['id']})"
        reader = _ItemReader(raw, label, warnings)
        unknown.update(reader.unknown_keys())
        items.append(reader.item(archived=archive))
    if unknown:
        warnings.append(f"{source}: ignored field(s) not used here: {', '.join(sorted(unknown))}")
    return TaskGolemParse(tuple(items), tuple(warnings))


def merge_active_and_archive(
    active: TaskGolemParse, archived: TaskGolemParse, source: str
) -> TaskGolemParse:
    """Active items win over an archived copy of the same ID (an interrupted archive)."""
    warnings = [*active.warnings, *archived.warnings]
    seen: set[str] = set()
    for item in active.items:
        if item.id in seen:
            raise BacklogFormatError(f"{source}: item {item.id} appears twice in {ACTIVE_FILE}")
        seen.add(item.id)
    items = list(active.items)
    for item in archived.items:
        if item.id in seen:
            warnings.append(f"{source}: {item.id} is in both files; kept the active copy")
            continue
        seen.add(item.id)
        items.append(item)
    return TaskGolemParse(tuple(items), tuple(warnings))


_LOSSY_NATIVE = {ItemStatus.IN_PROGRESS: "doing", ItemStatus.DONE: "done"}


def _native_status(status: ItemStatus) -> str:
    if status in _TODO_STATUSES:
        return "todo"
    return _LOSSY_NATIVE.get(status, "blocked")


def item_to_task_golem(item: Item) -> dict[str, Any]:
    """task-golem's 14 native fields (nulls kept, as it writes them), then the extensions
    sorted: `x-pg-*` (what Phase Golem reads) and the legacy keys task-golem's migration set."""
    description = item.description
    record: dict[str, Any] = {
        "id": item.id,
        "title": item.title,
        "status": _native_status(item.status),
        "priority": 0,
        "description": (description.context or None) if description else None,
        "tags": list(item.tags),
        "dependencies": list(item.dependencies),
        "created_at": item.created,
        "updated_at": item.updated,
        "blocked_reason": item.blocked_reason if item.status is ItemStatus.BLOCKED else None,
        "blocked_from_status": None,
        "claimed_by": None,
        "claimed_at": None,
        "parent": item.parent,
    }
    extensions: dict[str, Any] = {}
    if item.status in _TODO_STATUSES:
        extensions["status"] = item.status.value
    if item.status is ItemStatus.BLOCKED and item.blocked_from_status is not None:
        record["blocked_from_status"] = _native_status(item.blocked_from_status)
        extensions["blocked-from-status"] = item.blocked_from_status.value
        if item.blocked_type is not None:
            extensions["blocked-type"] = item.blocked_type.value
    optional: dict[str, Any] = {
        "phase": item.phase,
        "phase-pool": item.phase_pool.value if item.phase_pool else None,
        "size": item.size.value if item.size else None,
        "complexity": item.complexity.value if item.complexity else None,
        "risk": item.risk.value if item.risk else None,
        "impact": item.impact.value if item.impact else None,
        "requires-human-review": True if item.requires_human_review else None,
        "pipeline-type": item.pipeline_type,
        "origin": item.origin,
        "unblock-context": item.unblock_context,
        "last-phase-commit": item.last_phase_commit,
        "description": None if description is None else description.to_dict(),
    }
    extensions.update({k: v for k, v in optional.items() if v is not None})
    named = {_EXTENSION_PREFIX + k: v for k, v in extensions.items()}
    legacy = {"x-legacy-id": item.legacy_id, "x-legacy-updated": item.legacy_updated}
    named.update({k: v for k, v in legacy.items() if v is not None})
    for key in sorted(named):
        record[key] = named[key]
    return record


def dump_task_golem_jsonl(items: Iterable[Item]) -> str:
    """A complete file: header, then one item per line sorted by ID (task-golem's order)."""
    lines = [json.dumps({"schema_version": SCHEMA_VERSION}, separators=(",", ":"))]
    for item in sorted(items, key=lambda i: i.id):
        lines.append(
            json.dumps(redact(item_to_task_golem(item)), separators=(",", ":"), ensure_ascii=False)
        )
    return "\n".join(lines) + "\n"
