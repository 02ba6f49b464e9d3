"""Import and export of Phase Golem backlogs (BACKLOG.yaml, inbox, task-golem JSONL);
an import is applied to the store in one transaction."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from phase_golem.domain.errors import DomainError
from phase_golem.domain.events import EventKind
from phase_golem.domain.items import Item, new_item
from phase_golem.domain.pipelines import Settings
from phase_golem.fsutil import write_atomically
from phase_golem.interchange.backlog_yaml import (
    BacklogFormatError,
    dump_backlog_v3,
    parse_backlog_text,
    read_import_text,
)
from phase_golem.interchange.inbox import inbox_entry_to_fields, parse_inbox_text
from phase_golem.interchange.task_golem import (
    ACTIVE_FILE,
    ARCHIVE_FILE,
    TaskGolemParse,
    dump_task_golem_jsonl,
    looks_like_task_golem,
    merge_active_and_archive,
    parse_task_golem_text,
)
from phase_golem.safe_files import kind_of
from phase_golem.store import NotFoundError, Store


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
    except (yaml.YAMLError, RecursionError):
        return "backlog"  # let the backlog parser report the problem with its line
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
        if "items" in data:
            return "backlog"
        keys = ", ".join(repr(str(k)) for k in list(data)[:5]) or "no keys"
        raise BacklogFormatError(
            f"{source}: found a mapping with {keys}, which is neither a backlog "
            "(schema_version, items) nor an inbox (a list of entries with a title)"
        )
    raise BacklogFormatError(
        f"{source}: found a {type(data).__name__} at the top level, not a backlog mapping "
        "or an inbox list"
    )


def import_file(store: Store, settings: Settings, path: Path, fmt: str = "auto") -> ImportReport:
    """Import `path`: a BACKLOG.yaml, an inbox file, a task-golem JSONL file or a
    `.task-golem/` directory. All or nothing: an error leaves the store untouched."""
    if path.is_dir():
        if fmt not in ("auto", "task-golem"):
            raise BacklogFormatError(f"{path}: is a directory; only task-golem imports read one")
        return _import_task_golem_dir(store, settings, path)
    text = read_import_text(path)
    source = path.name
    if not text.strip():
        raise BacklogFormatError(
            f"{path}: is empty; there is no backlog or inbox entry in it to import"
        )
    kind = fmt
    if fmt == "auto":
        kind = "task-golem" if looks_like_task_golem(text) else detect_format(text, source)
    if kind == "task-golem":
        parsed = parse_task_golem_text(text, source, archive=path.name == ARCHIVE_FILE)
        return _create_all(store, settings, parsed.items, parsed.warnings, source, "task-golem")
    if kind == "inbox":
        return _import_inbox(store, settings, text, source)
    return _import_backlog(store, settings, text, source)


def _import_task_golem_dir(store: Store, settings: Settings, directory: Path) -> ImportReport:
    active_path = directory / ACTIVE_FILE
    if not active_path.is_file():
        raise BacklogFormatError(f"{directory}: no {ACTIVE_FILE} here (is it a .task-golem/?)")
    active = parse_task_golem_text(read_import_text(active_path), ACTIVE_FILE)
    archive_path = directory / ARCHIVE_FILE
    archived = (
        parse_task_golem_text(read_import_text(archive_path), ARCHIVE_FILE, archive=True)
        if archive_path.is_file()
        else TaskGolemParse((), ())
    )
    merged = merge_active_and_archive(active, archived, directory.name)
    return _create_all(store, settings, merged.items, merged.warnings, directory.name, "task-golem")


def _import_backlog(store: Store, settings: Settings, text: str, source: str) -> ImportReport:
    parsed = parse_backlog_text(text, source, settings.pipelines.get("feature"))
    return _create_all(
        store,
        settings,
        parsed.items,
        parsed.warnings,
        source,
        "backlog",
        schema_version=parsed.schema_version,
        next_item_id=parsed.next_item_id,
    )


def _create_all(
    store: Store,
    settings: Settings,
    items: Sequence[Item],
    parse_warnings: Iterable[str],
    source: str,
    fmt: str,
    *,
    schema_version: int | None = None,
    next_item_id: int | None = None,
) -> ImportReport:
    warnings = list(parse_warnings)
    for item in items:
        if item.pipeline_type is not None and item.pipeline_type not in settings.pipelines:
            warnings.append(
                f"{item.id}: pipeline {item.pipeline_type!r} is not configured here; "
                "the item keeps it and preflight will report it"
            )
    with store.transaction() as tx:
        existing = {i.id for i in tx.list_items(include_archived=True)}
        clashes = [i.id for i in items if i.id in existing]
        if clashes:
            shown = ", ".join(clashes[:10]) + (" …" if len(clashes) > 10 else "")
            raise DomainError(
                f"{source}: {len(clashes)} item ID(s) already exist in this project: {shown}; "
                "nothing was imported"
            )
        for item in items:
            tx.create_item(item, kind=EventKind.ITEM_IMPORTED, data={"source": source})
        if next_item_id is not None:
            tx.raise_high_water(settings.project.prefix, next_item_id)
        tx.append_event(
            EventKind.BACKLOG_IMPORTED,
            data={
                "source": source,
                "format": fmt,
                "schema_version": schema_version,
                "items": len(items),
                "next_item_id": next_item_id,
            },
        )
    return ImportReport(fmt, tuple(i.id for i in items), tuple(warnings), schema_version)


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


def export_task_golem(store: Store, directory: Path) -> tuple[Path, Path]:
    """Write `tasks.jsonl` (active items) and `archive.jsonl` (archived) into `directory`."""
    with store.reader() as tx:
        items = tx.list_items(include_archived=True)
    directory.mkdir(parents=True, exist_ok=True)
    active_path, archive_path = directory / ACTIVE_FILE, directory / ARCHIVE_FILE
    write_atomically(active_path, dump_task_golem_jsonl(i for i in items if not i.archived))
    write_atomically(archive_path, dump_task_golem_jsonl(i for i in items if i.archived))
    return active_path, archive_path


def ledger_ndjson(store: Store, *, item_id: str | None = None, after: int = 0) -> list[str]:
    """The ledger as NDJSON lines, the fields of `log --json` (an unknown item is an error)."""
    with store.reader() as tx:
        if item_id is not None and tx.get_item(item_id) is None:
            raise NotFoundError(f"no item {item_id}")
        events = tx.events(after_seq=after, item_id=item_id)
    return [
        json.dumps(e.to_dict(), ensure_ascii=False, separators=(",", ":")) + "\n" for e in events
    ]


def export_ledger(path: Path, lines: Sequence[str]) -> None:
    """Atomically, so a reader never sees half a ledger (check_export_target first)."""
    write_atomically(path, lines)


class ExportTargetError(DomainError):
    """A place `export` will not write to; the message says why (exit code 2)."""


def _refuse_protected(target: Path, shown: Path, root: Path, config_file: Path | None) -> None:
    real_root = root.resolve()
    state = real_root / ".phase-golem"
    if ".git" in target.parts:
        raise ExportTargetError(f"{shown}: is inside a .git directory; choose another place")
    if target == state or target.is_relative_to(state):
        raise ExportTargetError(
            f"{shown}: is inside .phase-golem/, which holds phase-golem's own state; "
            "choose another place"
        )
    configs = {real_root / "phase-golem.toml"}
    if config_file is not None:
        configs.add(config_file.resolve())
    if target in configs:
        raise ExportTargetError(f"{shown}: is the project's config file; choose another place")


def check_export_target(path: Path, *, root: Path, config_file: Path | None) -> Path:
    """Where an export may go: an ordinary file (replaced atomically) or a new name in an
    existing directory, outside `.phase-golem/` and `.git/` and not the config file.

    What is not a regular file (a directory, a device such as `/dev/full`, a FIFO, a
    symbolic link) is refused in one line rather than replaced.
    """
    parent = path.parent
    if not parent.exists():
        raise ExportTargetError(f"{path}: the directory {parent} does not exist")
    if not parent.is_dir():
        raise ExportTargetError(f"{path}: {parent} is not a directory")
    target = parent.resolve() / path.name
    try:
        mode: int | None = os.lstat(target).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        raise ExportTargetError(
            f"{path}: is {kind_of(mode)}; export replaces only an ordinary file"
        )
    _refuse_protected(target, path, root, config_file)
    return path


def check_export_directory(path: Path, *, root: Path, config_file: Path | None) -> Path:
    """A directory `export --format task-golem` writes its two files into (made if new)."""
    if os.path.lexists(path):
        mode = os.lstat(path).st_mode
        if not stat.S_ISDIR(mode):
            raise ExportTargetError(f"{path}: is {kind_of(mode)}, not a directory")
    elif not path.parent.is_dir():
        raise ExportTargetError(f"{path}: the directory {path.parent} does not exist")
    _refuse_protected(path.parent.resolve() / path.name, path, root, config_file)
    if path.is_dir():
        for name in (ACTIVE_FILE, ARCHIVE_FILE):
            check_export_target(path / name, root=root, config_file=config_file)
    return path
