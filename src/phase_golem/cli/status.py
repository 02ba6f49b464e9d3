"""`phase-golem status`: the backlog at a glance, costing what it prints.

On a large backlog a table of every item is neither readable nor cheap, so the table shows
the counts of every section and the first rows of each (`--limit` per section, 0 for
all), each section cut with a line saying how many more it holds. `--json` prints the
array of every active item (scripts rely on it), streamed from the store in `status`
order; with an explicit `--limit` it holds the first rows of each section instead.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import click

from phase_golem.cli.context import SQL_INT_MAX, state_of
from phase_golem.cli.output import print_json_array, safe
from phase_golem.domain.items import Item
from phase_golem.domain.listing import ACTIVE_SECTIONS, SECTIONS, ItemCounts
from phase_golem.domain.serialization import item_to_dict
from phase_golem.store import Store, Transaction

DEFAULT_ROWS_PER_SECTION = 10


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--all", "show_all", is_flag=True, help="Include archived (done and closed) items.")
@click.option(
    "--limit",
    type=click.IntRange(min=0, max=SQL_INT_MAX),
    metavar="N",
    help=f"Rows per section (table default {DEFAULT_ROWS_PER_SECTION}; 0 shows every row). "
    "With --json: the first N of each section instead of every item.",
)
@click.pass_context
def status(ctx: click.Context, as_json: bool, show_all: bool, limit: int | None) -> None:
    """The backlog at a glance: counts by status and the first rows of each (in progress,
    blocked, ready, scoping, new; done and closed with --all).

    Within a section, items are ordered impact high first, then by ID. `--json` prints
    every active item (with --all, archived ones too), all fields, in that order.
    """
    store = state_of(ctx).store()
    sections = SECTIONS if show_all else ACTIVE_SECTIONS
    if as_json:
        with store.reader() as tx:
            if limit is None or limit == 0:
                items = tx.items_in_status_order(include_archived=show_all)
            else:
                items = _first_of_each(tx, sections, show_all, limit)
            print_json_array(item_to_dict(item) for item in items)
        return
    _print_table(store, sections, show_all, DEFAULT_ROWS_PER_SECTION if limit is None else limit)


def _first_of_each(
    tx: Transaction, sections: tuple[str, ...], show_all: bool, limit: int
) -> Iterator[Item]:
    for section in sections:
        yield from tx.items_in_section(section, include_archived=show_all, limit=limit)


def _print_table(store: Store, sections: tuple[str, ...], show_all: bool, limit: int) -> None:
    from phase_golem.cli.render import add_item_row, add_more_row, items_table
    from phase_golem.engine.control import pause_state
    from phase_golem.engine.pause_records import paused_agents

    with store.reader() as tx:
        counts = tx.item_counts(include_archived=show_all)
        shown = {
            section: tx.items_in_section(section, include_archived=show_all, limit=limit or None)
            for section in sections
            if counts.by_section.get(section)
        }
        pauses = paused_agents(tx)
        scheduler_pause = pause_state(tx)
    lines: list[str] = []
    if not shown:
        lines.append("No items in backlog." + _archived_hint(counts, show_all))
    else:
        table = items_table()
        for section, items in shown.items():
            for item in items:
                add_item_row(table, item)
            hidden = counts.by_section[section] - len(items)
            if hidden > 0:
                add_more_row(table, section, hidden, f"--limit {counts.by_section[section]}")
        table.print()
        lines.append(_summary(counts, sections) + _archived_hint(counts, show_all))
    lines += [pause.line() for pause in pauses.values()]
    if scheduler_pause is not None:
        lines.append(scheduler_pause.line())
    sys.stdout.write("".join(f"{safe(line)}\n" for line in lines))


def _summary(counts: ItemCounts, sections: tuple[str, ...]) -> str:
    parts = [f"{counts.by_section[s]} {s}" for s in sections if counts.by_section.get(s)]
    return f"{counts.total} item(s) total: {', '.join(parts)}"


def _archived_hint(counts: ItemCounts, show_all: bool) -> str:
    if not counts.archived or show_all:
        return ""
    return f" ({counts.archived} archived: --all shows them)"
