"""Import and export of Phase Golem backlog files, applied to the store in one transaction."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from phase_golem.domain.events import EventKind
from phase_golem.domain.items import DomainError, new_item
from phase_golem.domain.pipelines import Settings
from phase_golem.interchange.backlog_yaml import (
    BacklogFormatError,
    dump_backlog_v3,
    parse_backlog_text,
)
from phase_golem.interchange.inbox import inbox_entry_to_fields, parse_inbox_text
from phase_golem.store import Store


@dataclass(frozen=True)
class ImportReport:
    format: str
    created: tuple[str, ...]
    warnings: tuple[str, ...]
    schema_version: int | None = None


def detect_format(text: str, source: str) -> str:
    """`backlog` for BACKLOG.yaml (a mapping of items with IDs), `inbox` for drop files."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return "backlog"  # let the backlog parser report the syntax error with its line
    if data is None or isinstance(data, list):
        return "inbox"
    if isinstance(data, dict):
        if "schema_version" in data or "next_item_id" in data:
            return "backlog"
        entries = data.get("items")
        if (
            isinstance(entries, list)
            and entries
            and all(isinstance(e, dict) and "id" not in e for e in entries)
        ):
            return "inbox"
        return "backlog"
    raise BacklogFormatError(f"{source}: expected a YAML mapping or list at the top level")


def import_file(store: Store, settings: Settings, path: Path, fmt: str = "auto") -> ImportReport:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BacklogFormatError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise BacklogFormatError(f"{path}: not UTF-8 text") from None
    source = path.name
    kind = detect_format(text, source) if fmt == "auto" else fmt
    if kind == "inbox":
        return _import_inbox(store, settings, text, source)
    return _import_backlog(store, settings, text, source)


def _import_backlog(store: Store, settings: Settings, text: str, source: str) -> ImportReport:
    parsed = parse_backlog_text(text, source, settings.pipelines.get("feature"))
    warnings = list(parsed.warnings)
    for item in parsed.items:
        if item.pipeline_type is not None and item.pipeline_type not in settings.pipelines:
            warnings.append(
                f"{item.id}: pipeline {item.pipeline_type!r} is not configured here; "
                "the item keeps it and preflight will report it"
            )
    with store.transaction() as tx:
        existing = {i.id for i in tx.list_items(include_archived=True)}
        clashes = [i.id for i in parsed.items if i.id in existing]
        if clashes:
            shown = ", ".join(clashes[:10]) + (" …" if len(clashes) > 10 else "")
            raise DomainError(
                f"{source}: {len(clashes)} item ID(s) already exist in this project: {shown}; "
                "nothing was imported"
            )
        for item in parsed.items:
            tx.create_item(item, kind=EventKind.ITEM_IMPORTED, data={"source": source})
        tx.raise_high_water(settings.project.prefix, parsed.next_item_id)
        tx.append_event(
            EventKind.BACKLOG_IMPORTED,
            data={
                "source": source,
                "schema_version": parsed.schema_version,
                "items": len(parsed.items),
                "next_item_id": parsed.next_item_id,
            },
        )
    return ImportReport(
        "backlog",
        tuple(i.id for i in parsed.items),
        tuple(warnings),
        parsed.schema_version,
    )


def _import_inbox(store: Store, settings: Settings, text: str, source: str) -> ImportReport:
    parsed = parse_inbox_text(text, source)
    created: list[str] = []
    with store.transaction() as tx:
        for entry in parsed.entries:
            fields = inbox_entry_to_fields(entry)
            pipeline = fields.get("pipeline_type")
            if pipeline is not None and pipeline not in settings.pipelines:
                raise DomainError(f"{source}: {entry.title!r}: unknown pipeline {pipeline!r}")
            item_id = tx.allocate_item_id(settings.project.prefix)
            item = new_item(item_id, entry.title, tx.now, **fields)
            tx.create_item(item, data={"source": source, "origin": "inbox"})
            created.append(item_id)
    return ImportReport("inbox", tuple(created), tuple(parsed.warnings))


def export_text(store: Store, settings: Settings) -> str:
    with store.reader() as tx:
        items = tx.list_items(include_archived=True)
        high_water = tx.high_water(settings.project.prefix)
    return dump_backlog_v3(items, high_water)


def write_atomically(path: Path, text: str) -> None:
    """Temp file in the same directory, fsync, rename: readers never see half a file."""
    directory = path.parent
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
