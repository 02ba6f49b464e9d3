"""Phase Golem's inbox drop file (`BACKLOG_INBOX.yaml`): new items by title.

Phase Golem reads a bare list; its old README showed an `items:` mapping, so both work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phase_golem.domain.descriptions import StructuredDescription
from phase_golem.domain.errors import ParseError
from phase_golem.domain.items import Level, Size
from phase_golem.interchange.backlog_yaml import BacklogFormatError, load_yaml, read_import_text


@dataclass(frozen=True)
class InboxEntry:
    title: str
    description: str | None = None
    size: Size | None = None
    risk: Level | None = None
    impact: Level | None = None
    pipeline_type: str | None = None
    dependencies: tuple[str, ...] = ()


@dataclass(frozen=True)
class InboxParse:
    entries: tuple[InboxEntry, ...]
    warnings: tuple[str, ...]


def _optional_str(entry: dict[str, Any], name: str, label: str) -> str | None:
    value = entry.get(name)
    if value is None:
        return None
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise BacklogFormatError(f"{label}: {name} must be text")
    return str(value)


def _entry(raw: Any, index: int, source: str) -> InboxEntry | None:
    label = f"{source}: entry {index + 1}"
    if not isinstance(raw, dict):
        raise BacklogFormatError(f"{label}: expected a mapping with at least a title")
    title = (_optional_str(raw, "title", label) or "").strip()
    if not title:
        return None
    label = f"{label} ({title!r})"
    try:
        size_text = _optional_str(raw, "size", label)
        risk_text = _optional_str(raw, "risk", label)
        impact_text = _optional_str(raw, "impact", label)
        size = Size.parse(size_text, what="size") if size_text else None
        risk = Level.parse(risk_text, what="risk") if risk_text else None
        impact = Level.parse(impact_text, what="impact") if impact_text else None
    except ParseError as exc:
        raise BacklogFormatError(f"{label}: {exc}") from None
    deps = raw.get("dependencies") or []
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise BacklogFormatError(f"{label}: dependencies must be a list of item IDs")
    return InboxEntry(
        title=title,
        description=_optional_str(raw, "description", label),
        size=size,
        risk=risk,
        impact=impact,
        pipeline_type=_optional_str(raw, "pipeline_type", label),
        dependencies=tuple(d.strip() for d in deps),
    )


def parse_inbox_text(text: str, source: str) -> InboxParse:
    if not text.strip():
        return InboxParse((), ())
    data = load_yaml(text, source)
    if isinstance(data, dict) and isinstance(data.get("items"), list):
        data = data["items"]
    if data is None:
        return InboxParse((), ())
    if not isinstance(data, list):
        raise BacklogFormatError(f"{source}: an inbox is a list of entries, each with a title")
    entries: list[InboxEntry] = []
    warnings: list[str] = []
    for index, raw in enumerate(data):
        entry = _entry(raw, index, source)
        if entry is None:
            warnings.append(f"{source}: entry {index + 1} has no title; skipped")
        else:
            entries.append(entry)
    return InboxParse(tuple(entries), tuple(warnings))


def load_inbox_file(path: Path) -> InboxParse:
    return parse_inbox_text(read_import_text(path), path.name)


def inbox_entry_to_fields(entry: InboxEntry) -> dict[str, Any]:
    """Keyword fields for `new_item`: description text becomes the context (WRK-061)."""
    description = (entry.description or "").strip()
    return {
        "size": entry.size,
        "risk": entry.risk,
        "impact": entry.impact,
        "pipeline_type": entry.pipeline_type,
        "dependencies": entry.dependencies,
        "description": StructuredDescription(context=description) if description else None,
        "origin": "inbox",
    }
