"""`phase-golem show ID`: one item, its runs, receipts, git history and ledger events.

Everything is read in one transaction and only for that item (by index), so `show` costs
the same in a project of ten items or ten thousand.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from phase_golem.cli.context import state_of
from phase_golem.cli.output import print_json, safe
from phase_golem.domain.events import LedgerEvent
from phase_golem.domain.items import Item
from phase_golem.domain.listing import RunPage
from phase_golem.domain.runs import Run, RunStatus
from phase_golem.domain.serialization import item_to_dict, run_to_dict
from phase_golem.domain.sources import external_link
from phase_golem.engine.git_view import git_view_of, leftovers_in


@click.command("show")
@click.argument("item_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def show(ctx: click.Context, item_id: str, as_json: bool) -> None:
    """One item with its runs and its ledger events."""
    store = state_of(ctx).store()
    with store.reader() as tx:
        item = tx.require_item(item_id)
        runs = tx.run_page(RunPage(item_id=item_id))
        events = tx.events(item_id=item_id)
        receipts = tx.list_receipts(item_id=item_id)
        git = git_view_of(events, leftovers_in(tx, item_id))
    if as_json:
        print_json(
            {
                "item": item_to_dict(item),
                "source": _source_of(item),
                "runs": [run_to_dict(run) for run in runs],
                "events": [e.to_dict() for e in events],
                "receipts": [r.to_dict() for r in receipts],
                "git": git,
            }
        )
        return
    from phase_golem.cli.render import git_lines, print_item_detail, receipts_summary, runs_table

    print_item_detail(item)
    source = _source_of(item)
    if source is not None:  # where it came from, and its page there (DESIGN §11)
        link = source["link"]
        text = f"Source: {source['name']} ({source['external_id']})" + (f"  {link}" if link else "")
        sys.stdout.write(f"{safe(text)}\n")
    sys.stdout.write("\n")
    if runs:
        runs_table(runs).print()
    else:
        sys.stdout.write("No runs yet.\n")
    lines = ["", *_failure_lines(runs), *_duplicate_lines(events)]
    lines += [*git_lines(git), receipts_summary(item_id, receipts)]
    lines.append(f"{len(events)} ledger event(s); `phase-golem log --item {item_id}` lists them")
    sys.stdout.write("".join(f"{safe(line)}\n" for line in lines))


def _source_of(item: Item) -> dict[str, str | None] | None:
    """The source an item came from, its ID there and its page there (None: by hand)."""
    if item.source is None:
        return None
    return {
        "name": item.source,
        "external_id": item.external_id,
        "link": external_link(item.origin),
    }


SHOWN_FAILURES = 3
QUIET = frozenset({RunStatus.ACTIVE, RunStatus.COMMITTED, RunStatus.CANCELLED})


def _failure_lines(runs: Sequence[Run]) -> list[str]:
    """The table cuts errors short; the last few failures are given whole (they hold the
    tail of the agent's stderr, e.g. "API key missing")."""
    failed = [run for run in runs if run.error and run.status not in QUIET]
    failed.sort(key=lambda run: (run.ended_at or "", run.id))
    return [
        f"{run.id} {run.phase} {run.status.value}: {run.error}" for run in failed[-SHOWN_FAILURES:]
    ]


def _duplicate_lines(events: Sequence[LedgerEvent]) -> list[str]:
    """Duplicates triage named that were not merged, each with why (an archived one, say)."""
    return [
        f"duplicate {e.data['duplicate_not_merged']} not merged: {e.data.get('why', '-')}"
        for e in events
        if "duplicate_not_merged" in e.data
    ]
