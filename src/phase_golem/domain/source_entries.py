"""What a source's output says (DESIGN §11), and what it does to the backlog. Pure.

A command prints JSON Lines; the inbox file and `gh` give mappings of their own, turned
into the same `SourceEntry`. Every line is checked before anything is applied, so a
malformed one fails the whole run with an error that names it, and nothing changes.
Identity is `(source, external_id)`: given, or for id-less entries a hash of their
canonical JSON (so the same entry seen again is the same item, never a second one).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from phase_golem.domain.errors import DomainError
from phase_golem.domain.items import Item, ItemStatus, Size
from phase_golem.domain.text import text_problem

MAX_LINE_BYTES = 1024 * 1024
MAX_ENTRIES = 100_000
MAX_EXTERNAL_ID_CHARS = 500
MAX_TITLE_CHARS = 2000
CLOSED_REASON = "closed at its source"
KNOWN_KEYS = frozenset(
    {
        "external_id",
        "title",
        "description",
        "state",
        "url",
        "size",
        "tags",
        "pipeline",
        "pipeline_type",
    }
)


class SourceOutputError(DomainError):
    """The source's output is malformed; the message names the line (or entry)."""


class EntryState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class SourceEntry:
    external_id: str
    title: str | None
    description: str | None = None
    state: EntryState = EntryState.OPEN
    url: str | None = None
    size: Size | None = None
    tags: tuple[str, ...] = ()
    pipeline_type: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedOutput:
    entries: tuple[SourceEntry, ...]
    warnings: tuple[str, ...] = ()


def canonical_id(value: Mapping[str, Any]) -> str:
    """The identity of an id-less entry: sha256 of its canonical JSON (sorted, compact)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def github_id(repo: str, number: int) -> str:
    return f"github:{repo}#{number}"


def _text(raw: Mapping[str, Any], name: str, where: str, *, limit: int | None = None) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SourceOutputError(f"{where}: {name} must be a string, not {type(value).__name__}")
    problem = text_problem(value)
    if problem is not None:
        raise SourceOutputError(f"{where}: {name} {problem}")
    if limit is not None and len(value) > limit:
        raise SourceOutputError(f"{where}: {name} is longer than {limit} characters")
    return value


def _external_id(raw: Mapping[str, Any], where: str) -> str:
    value = raw.get("external_id")
    if value is None:
        return canonical_id(raw)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise SourceOutputError(f"{where}: external_id must be a string or an integer")
    text = str(value).strip()
    if not text:
        raise SourceOutputError(f"{where}: external_id must not be empty")
    problem = text_problem(text)
    if problem is not None:
        raise SourceOutputError(f"{where}: external_id {problem}")
    if len(text) > MAX_EXTERNAL_ID_CHARS:
        raise SourceOutputError(
            f"{where}: external_id is longer than {MAX_EXTERNAL_ID_CHARS} characters"
        )
    return text


def _tags(raw: Mapping[str, Any], where: str) -> tuple[str, ...]:
    value = raw.get("tags")
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise SourceOutputError(f"{where}: tags must be a list of strings")
    for tag in value:
        problem = text_problem(tag)
        if problem is not None:
            raise SourceOutputError(f"{where}: a tag {problem}")
    return tuple(t.strip() for t in value if t.strip())


def entry_from_mapping(raw: Mapping[str, Any], where: str) -> SourceEntry:
    """One entry, every field checked; SourceOutputError naming `where` otherwise."""
    external_id = _external_id(raw, where)
    title = _text(raw, "title", where, limit=MAX_TITLE_CHARS)
    title = title.strip() if title is not None else None
    state_text = _text(raw, "state", where) or "open"
    try:
        state = EntryState(state_text.strip().lower())
    except ValueError:
        raise SourceOutputError(
            f'{where}: state must be "open" or "closed", not {state_text!r}'
        ) from None
    if not title and state is EntryState.OPEN:
        raise SourceOutputError(f"{where}: an open entry needs a non-empty title")
    size_text = _text(raw, "size", where)
    size = None
    if size_text:
        try:
            size = Size(size_text.strip().lower())
        except ValueError:
            raise SourceOutputError(
                f"{where}: size must be small, medium or large, not {size_text!r}"
            ) from None
    pipeline = _text(raw, "pipeline_type", where) or _text(raw, "pipeline", where)
    return SourceEntry(
        external_id=external_id,
        title=title or None,
        description=_text(raw, "description", where),
        state=state,
        url=_text(raw, "url", where),
        size=size,
        tags=_tags(raw, where),
        pipeline_type=pipeline.strip() if pipeline and pipeline.strip() else None,
    )


def _decode_line(raw: bytes, number: int) -> Mapping[str, Any] | None:
    where = f"line {number}"
    if len(raw) > MAX_LINE_BYTES:
        raise SourceOutputError(f"{where}: longer than {MAX_LINE_BYTES} bytes")
    if b"\x00" in raw:
        raise SourceOutputError(f"{where}: contains a NUL byte")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SourceOutputError(f"{where}: not valid UTF-8 (byte {exc.start + 1})") from None
    if not text.strip():
        return None
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise SourceOutputError(f"{where}: not valid JSON ({reason})") from None
    if not isinstance(value, dict):
        raise SourceOutputError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def parse_json_lines(output: bytes) -> ParsedOutput:
    """A command's stdout → entries; unknown keys warn once each; any bad line fails all."""
    entries: list[SourceEntry] = []
    unknown: dict[str, int] = {}
    for number, raw in enumerate(output.split(b"\n"), start=1):
        value = _decode_line(raw.rstrip(b"\r"), number)
        if value is None:
            continue
        for key in value:
            if key not in KNOWN_KEYS and key not in unknown:
                unknown[key] = number
        entries.append(entry_from_mapping(value, f"line {number}"))
        if len(entries) > MAX_ENTRIES:
            raise SourceOutputError(f"line {number}: more than {MAX_ENTRIES} entries in one run")
    warnings = tuple(
        f"unknown key {key!r} ignored (first on line {number})" for key, number in unknown.items()
    )
    return ParsedOutput(deduplicated(entries), warnings)


def deduplicated(entries: Iterable[SourceEntry]) -> tuple[SourceEntry, ...]:
    """One entry per external id: a later line about the same one is the newer word."""
    latest: dict[str, SourceEntry] = {}
    for entry in entries:
        latest.pop(entry.external_id, None)
        latest[entry.external_id] = entry
    return tuple(latest.values())


# ---- keeping in step ---------------------------------------------------------------------
class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    CLOSE = "close"
    NOTHING = "nothing"


@dataclass(frozen=True, slots=True)
class EntryPlan:
    action: Action
    changes: Mapping[str, Any] = field(default_factory=dict)


def plan_entry(entry: SourceEntry, existing: Item | None, description: Any) -> EntryPlan:
    """What one entry does to its item. `description` is the entry's text as the item
    would hold it (the caller structures it), to compare with what the item has.

    A new entry makes an item (a closed one does not); an archived item is never made
    again; an external terminal state closes the item; while the item is still `new` it
    follows its external title and description, and after that it is the agents' own.
    """
    if existing is None:
        return EntryPlan(Action.NOTHING if entry.state is EntryState.CLOSED else Action.CREATE)
    if existing.archived:
        return EntryPlan(Action.NOTHING)
    if entry.state is EntryState.CLOSED:
        return EntryPlan(Action.CLOSE)
    if existing.status is not ItemStatus.NEW:
        return EntryPlan(Action.NOTHING)
    changes: dict[str, Any] = {}
    if entry.title and entry.title != existing.title:
        changes["title"] = entry.title
    if description != existing.description:
        changes["description"] = description
    return EntryPlan(Action.UPDATE, changes) if changes else EntryPlan(Action.NOTHING)
