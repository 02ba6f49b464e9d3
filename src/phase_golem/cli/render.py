"""Rendering for people (rich tables) and for scripts (JSON with DESIGN §4 names)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from phase_golem.domain.events import LedgerEvent
from phase_golem.domain.items import Item, status_sort_key
from phase_golem.domain.receipts import ArtifactState, Receipt
from phase_golem.domain.runs import Run
from phase_golem.domain.serialization import item_to_dict, run_to_dict

TITLE_WIDTH = 36


def console() -> Console:
    return Console(soft_wrap=False, highlight=False, width=200 if not sys.stdout.isatty() else None)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def print_ndjson(values: Iterable[Any]) -> None:
    for value in values:
        sys.stdout.write(json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def truncate(text: str, width: int = TITLE_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _dash(value: object) -> str:
    if value is None:
        return "-"
    return str(getattr(value, "value", value))


def status_label(item: Item) -> str:
    if item.closed_reason is not None:
        return "closed"
    return item.status.value


def sorted_for_status(items: Iterable[Item]) -> list[Item]:
    return sorted(items, key=status_sort_key)


def items_table(items: Sequence[Item]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "STATUS", "PHASE", "PIPELINE", "IMPACT", "SIZE", "RISK", "TITLE"):
        table.add_column(column, no_wrap=True)
    for item in items:
        table.add_row(
            item.id,
            status_label(item),
            _dash(item.phase),
            item.effective_pipeline,
            _dash(item.impact),
            _dash(item.size),
            _dash(item.risk),
            Text(truncate(item.title)),
        )
    return table


def item_detail(item: Item) -> Table:
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value")
    for name, value in item_to_dict(item).items():
        if value in (None, [], "", 0, 0.0, False) and name not in ("status", "title"):
            continue
        if name == "description" and isinstance(value, dict):
            for part, text in value.items():
                if text:
                    table.add_row(f"description.{part}", Text(str(text)))
            continue
        shown = ", ".join(value) if isinstance(value, list) else str(value)
        table.add_row(name, Text(shown))
    return table


def runs_table(runs: Sequence[Run]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    columns = ("RUN", "ITEM", "PHASE", "ATTEMPT", "STEP", "STATUS", "QUEUED", "SNAPSHOTS", "ERROR")
    for column in columns:
        table.add_column(column, no_wrap=True)
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
            Text(truncate(run.error or "-", 40)),
        )
    return table


def _short_snapshot(snapshot: str | None) -> str:
    """`ws:` and the first 8 hex digits: enough to see which runs saw the same tree."""
    return snapshot[:11] if snapshot else "-"


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
    return lines


def event_line(event: LedgerEvent) -> str:
    subject = " ".join(part for part in (event.item_id, event.run_id) if part)
    data = json.dumps(dict(event.data), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return f"{event.seq:>6}  {event.at[:23]}  {event.kind.value:<22} {subject:<20} {data}"


def runs_json(runs: Sequence[Run]) -> list[dict[str, Any]]:
    return [run_to_dict(r) for r in runs]


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
