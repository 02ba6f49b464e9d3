"""`phase-golem runs`: every attempt, newest first, one page at a time from the database.

A page is cut next to a run ID (the IDs the table shows): `--before RUN` lists the runs
older than RUN (the next page down), `--after RUN` the runs newer than it. The table
shows `DEFAULT_TABLE_ROWS` runs unless `--limit` says otherwise and ends with the command
for the next page; `--json` prints every matching run unless `--limit` is given.
"""

from __future__ import annotations

import sys

import click

from phase_golem.cli.context import SQL_INT_MAX, state_of
from phase_golem.cli.output import print_json
from phase_golem.domain.errors import DomainError
from phase_golem.domain.listing import RunCursor, RunPage
from phase_golem.domain.runs import Run, RunStatus
from phase_golem.domain.serialization import run_to_dict
from phase_golem.store import Transaction

DEFAULT_TABLE_ROWS = 50


def _statuses(status: str | None) -> tuple[RunStatus, ...]:
    if status is None:
        return ()
    try:
        return (RunStatus(status.strip().lower()),)
    except ValueError:
        valid = ", ".join(s.value for s in RunStatus)
        raise DomainError(f"--status {status!r} is not one of: {valid}") from None


def _cursor(tx: Transaction, run_id: str | None, option: str) -> RunCursor | None:
    if run_id is None:
        return None
    run = tx.get_run(run_id)
    if run is None:
        raise DomainError(f"{option} {run_id}: no such run")
    return RunCursor.of(run)


@click.command("runs")
@click.option("--item", help="Only this item's runs.")
@click.option("--status", help="Only runs with this status.")
@click.option(
    "--limit",
    type=click.IntRange(min=0, max=SQL_INT_MAX),
    metavar="N",
    help=f"At most N runs (table default {DEFAULT_TABLE_ROWS}, JSON default all; 0 means all).",
)
@click.option("--before", metavar="RUN", help="Only runs older than RUN (the next page).")
@click.option("--after", metavar="RUN", help="Only runs newer than RUN.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def runs(
    ctx: click.Context,
    item: str | None,
    status: str | None,
    limit: int | None,
    before: str | None,
    after: str | None,
    as_json: bool,
) -> None:
    """Every attempt, newest first (paged in the database).

    Runs are ordered by the time they were queued, then by ID. With --before and/or
    --after a page is cut next to those runs; with --after alone it holds the N runs right
    after RUN, otherwise the newest N.
    """
    statuses = _statuses(status)
    wanted = (None if as_json else DEFAULT_TABLE_ROWS) if limit is None else (limit or None)
    with state_of(ctx).store().reader() as tx:
        if item is not None:
            tx.require_item(item)
        page = RunPage.around(
            before=_cursor(tx, before, "--before"),
            after=_cursor(tx, after, "--after"),
            # One more than shown tells the table whether another page follows.
            limit=None if wanted is None else wanted + 1,
            item_id=item,
            statuses=statuses,
        )
        found = tx.run_page(page)
    more = wanted is not None and len(found) > wanted
    if more:
        found = found[1:] if page.oldest else found[:-1]
    if as_json:
        print_json([run_to_dict(run) for run in found])
        return
    filters = [
        *(("--item", item) if item else ()),
        *(("--status", statuses[0].value) if statuses else ()),
        *(("--limit", str(limit)) if limit else ()),
    ]
    _print_table(found, page, more, filters)


def _print_table(found: list[Run], page: RunPage, more: bool, filters: list[str]) -> None:
    from phase_golem.cli.render import runs_table

    if not found:
        sys.stdout.write("No runs.\n")
        return
    runs_table(found).print()
    if more:
        option = ["--after", found[0].id] if page.oldest else ["--before", found[-1].id]
        direction = "newer" if page.oldest else "older"
        command = " ".join(["phase-golem", "runs", *filters, *option])
        sys.stdout.write(f"… more {direction} runs: {command}\n")
