"""Files the orchestrator writes into the project: change folders and the worklog."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from phase_golem.domain.items import Item, format_timestamp, split_item_id

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
    """One entry in `_worklog/YYYY-MM.md` (UTC month), appended, never rewritten."""
    folder = root / WORKLOG_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{now:%Y-%m}.md"
    one_line = " ".join(summary.split()) or "-"
    entry = (
        f"## {format_timestamp(now)} — {item_id} ({title})\n\n"
        f"- **Phase:** {phase}\n- **Outcome:** {outcome}\n- **Summary:** {one_line}\n\n---\n\n"
    )
    with path.open("a", encoding="utf-8") as handle:
        handle.write(entry)
    return path
