"""Files the orchestrator writes into the project: change folders and the worklog."""

from __future__ import annotations

import logging
import os
import re
import stat
from datetime import datetime
from pathlib import Path

from phase_golem.domain.items import Item, format_timestamp, split_item_id
from phase_golem.domain.redaction import redact_text
from phase_golem.domain.text import printable
from phase_golem.faults import MACHINE_ERRNOS
from phase_golem.safe_files import FileRefused

log = logging.getLogger(__name__)

CHANGES_DIR = "changes"
WORKLOG_DIR = "_worklog"


def slugify(title: str) -> str:
    """Lowercase, runs of non-alphanumerics become one `-`, trimmed (Phase Golem)."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60].rstrip("-") or "item"


def change_folder(root: Path, item: Item, *, create: bool = True) -> Path:
    """`changes/<ID>_<slug>/`: an existing folder starting with `<ID>_` wins."""
    split_item_id(item.id)  # an ID with path characters never reaches the filesystem
    base = root / CHANGES_DIR
    if base.is_dir():
        for candidate in sorted(base.iterdir()):
            if candidate.is_dir() and candidate.name.startswith(f"{item.id}_"):
                return candidate
    folder = base / f"{item.id}_{slugify(item.title)}"
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def append_worklog(
    root: Path,
    now: datetime,
    item_id: str,
    title: str,
    phase: str,
    outcome: str,
    summary: str,
) -> Path:
    """One entry in `_worklog/YYYY-MM.md` (UTC month), appended, never rewritten.

    No secret and no terminal escape is written; a worklog an agent replaced with a link
    (or anything but a file) is not written through: the entry is skipped with a warning
    (the ledger holds the same facts).
    """
    folder = root / WORKLOG_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{now:%Y-%m}.md"
    flat = " ".join(summary.split()) or "-"
    entry = (
        f"## {format_timestamp(now)} — {item_id} ({title})\n\n"
        f"- **Phase:** {phase}\n- **Outcome:** {outcome}\n- **Summary:** {flat}\n\n---\n\n"
    )
    clean = printable(redact_text(entry))
    try:
        if os.path.islink(folder):
            raise FileRefused(f"{folder}: is a symbolic link; the worklog is not written there")
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno in MACHINE_ERRNOS and not isinstance(exc, FileRefused):
            raise  # a full or read-only disk is the caller's to report
        log.warning("worklog entry for %s not written: %s", item_id, exc)
        return path
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            log.warning("worklog entry for %s not written: %s is not a file", item_id, path)
            return path
        handle.write(clean)
    return path
