"""Rendering for people: tables that never cut an ID (`tables.py`), detail and lines.

rich is imported only by what needs its layout (the item detail, a table too wide for the
terminal), so a command whose output fits pays nothing for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from phase_golem.cli.output import event_line, print_json, print_ndjson, safe, safe_block
from phase_golem.cli.tables import IdTable, terminal_width
from phase_golem.domain.items import Item
from phase_golem.domain.listing import CLOSED, section_of
from phase_golem.domain.receipts import ArtifactState, Receipt
from phase_golem.domain.runs import Run
from phase_golem.domain.serialization import item_to_dict

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "ITEM_COLUMNS",
    "RUN_COLUMNS",
    "IdTable",
    "add_item_row",
    "add_more_row",
    "console",
    "event_line",  # re-exported: output.py holds the rich-free output now
    "git_lines",
    "items_table",
    "print_item_detail",
    "print_json",
    "print_ndjson",
    "receipts_summary",
    "runs_table",
    "safe",
    "safe_block",
    "truncate",
]

TITLE_WIDTH = 36


def console() -> Console:
    """A rich console as wide as `terminal_width` says (COLUMNS, the terminal, or wide)."""
    from rich.console import Console

    return Console(soft_wrap=False, highlight=False, width=terminal_width())


def truncate(text: str, width: int = TITLE_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _dash(value: object) -> str:
    if value is None:
        return "-"
    return safe(getattr(value, "value", value))


ITEM_COLUMNS = ("ID", "STATUS", "PHASE", "PIPELINE", "IMPACT", "SIZE", "RISK", "TITLE")


def items_table() -> IdTable:
    return IdTable(
        ITEM_COLUMNS, ids={"ID"}, droppable=("PIPELINE", "RISK", "SIZE", "IMPACT", "PHASE")
    )


def add_item_row(table: IdTable, item: Item) -> None:
    table.add_row(
        item.id,
        CLOSED if section_of(item) == CLOSED else item.status.value,
        _dash(item.phase),
        item.effective_pipeline,
        _dash(item.impact),
        _dash(item.size),
        _dash(item.risk),
        truncate(safe(item.title)),
    )


def add_more_row(table: IdTable, section: str, hidden: int, option: str) -> None:
    """The row that stands for a section's rows not shown, and the option that shows them."""
    blanks = [""] * (len(ITEM_COLUMNS) - 3)
    table.add_row("…", section, *blanks, f"{hidden} more ({option} shows them)", dim=True)


def print_item_detail(item: Item) -> None:
    """`show`'s fields, one per row; long values fold, but never inside an ID.

    The table is given at least the width of its field names plus the longest ID it holds
    (the item's own, its dependencies), even when that is wider than the terminal.
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    names: list[str] = []
    for name, value in item_to_dict(item).items():
        if value in (None, [], "", 0, 0.0, False) and name not in ("status", "title"):
            continue
        if name == "description" and isinstance(value, dict):
            for part, text in value.items():
                if text:
                    names.append(f"description.{part}")
                    table.add_row(names[-1], Text(safe_block(text)))
            continue
        shown = ", ".join(map(safe, value)) if isinstance(value, list) else safe_block(value)
        names.append(name)
        table.add_row(name, Text(shown))
    longest_id = max(len(i) for i in (item.id, *item.dependencies))
    floor = max(map(len, names)) + 2 + longest_id
    Console(soft_wrap=False, highlight=False, width=max(terminal_width(), floor)).print(table)


RUN_COLUMNS = ("RUN", "ITEM", "PHASE", "ATTEMPT", "STEP", "STATUS", "QUEUED", "SNAPSHOTS", "ERROR")


def runs_table(runs: Sequence[Run]) -> IdTable:
    table = IdTable(
        RUN_COLUMNS,
        ids={"RUN", "ITEM"},
        droppable=("SNAPSHOTS", "ATTEMPT", "STEP", "QUEUED", "PHASE"),
    )
    for run in runs:
        table.add_row(
            run.id,
            run.item_id,
            run.phase,
            str(run.attempt),
            run.step.value,
            run.status.value,
            run.queued_at[:19],
            f"{_short_snapshot(run.snapshot_before)}→{_short_snapshot(run.snapshot_after)}",
            truncate(safe(run.error or "-"), 40),
        )
    return table


def _short_snapshot(snapshot: str | None) -> str:
    """`ws:` and the first 8 hex digits: enough to see which runs saw the same tree."""
    return safe(snapshot[:11]) if snapshot else "-"


def git_lines(view: Mapping[str, Any]) -> list[str]:
    """`show`'s git part: the item's commits, what each run touched, what was left over."""
    lines: list[str] = []
    commits = view.get("commits") or []
    lines.append(f"Commits ({len(commits)}):" if commits else "Commits: none yet.")
    for commit in commits:
        subject = str(commit.get("message") or "").splitlines()[0]
        lines.append(f"  {commit['commit'][:12]}  {subject}")
        for path in commit.get("paths") or []:
            lines.append(f"      {path}")
        shared = commit.get("shared_with_overlapping_runs")
        if shared:
            lines.append(f"      (shared with overlapping runs: {', '.join(shared)})")
    touched = view.get("touched") or {}
    if touched:
        lines.append("Files touched, by run:")
        for run_id, paths in touched.items():
            lines.append(f"  {run_id}: {', '.join(paths) if paths else '(nothing)'}")
    leftovers = view.get("leftovers") or {}
    if leftovers:
        lines.append("Left in the working tree by runs that did not succeed (not committed):")
        for path, owner in leftovers.items():
            lines.append(f"  {path}  (runs {', '.join(owner.get('runs') or [])})")
    return [safe(line) for line in lines]


def receipts_summary(item_id: str, receipts: Sequence[Receipt]) -> str:
    """One line about an item's receipts, for `show`; `verify ID` gives the details."""
    if not receipts:
        return "No receipts yet (a committed run leaves one)."
    artifacts = [a for r in receipts for a in r.artifacts]
    counts = {state: sum(1 for a in artifacts if a.state is state) for state in ArtifactState}
    noted = ", ".join(
        f"{n} {state.value}"
        for state, n in counts.items()
        if n and state is not ArtifactState.PRESENT
    )
    committed = sum(1 for r in receipts if r.commit)
    return (
        f"{len(receipts)} receipt(s), {committed} with a commit; {len(artifacts)} artifact(s) "
        f"recorded{f' ({noted})' if noted else ''}; `phase-golem verify {item_id}` re-checks them"
    )
