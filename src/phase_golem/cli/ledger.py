"""`phase-golem log`: read and follow the ledger, one page at a time from the database.

Declared with click itself, like the other read commands (status, show, runs): importing
typer costs more start-up than such a command spends on its work.

Without a limit the ledger is streamed in batches of `BATCH` events (never loaded whole);
`--limit N` reads only N events: the last N, the N before `--before SEQ`, or, with
`--after SEQ` alone, the N right after it. `--follow` starts at the end (the last
`FOLLOW_HISTORY` events unless --limit or --after say otherwise) and keeps printing.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator

import click

from phase_golem.cli.context import SQL_INT_MAX, state_of
from phase_golem.cli.output import event_line, ndjson_line
from phase_golem.domain.errors import DomainError
from phase_golem.domain.events import LedgerEvent
from phase_golem.domain.listing import EventPage
from phase_golem.store import Store

FOLLOW_POLL_SECONDS = 0.5
FOLLOW_HISTORY = 10
BATCH = 1000


def _stream(store: Store, page: EventPage) -> Iterator[LedgerEvent]:
    """Every event of an unlimited page, a batch per read transaction, in order."""
    after = page.after_seq
    while True:
        batch_page = EventPage(page.item_id, after, page.before_seq, BATCH)
        with store.reader() as tx:
            batch = tx.event_page(batch_page)
        yield from batch
        if len(batch) < BATCH:
            return
        after = batch[-1].seq


def _history(store: Store, page: EventPage) -> Iterator[LedgerEvent]:
    if page.limit is None:
        yield from _stream(store, page)
        return
    with store.reader() as tx:
        yield from tx.event_page(page)


def _follow(
    store: Store, after: int, item_id: str | None, stop: threading.Event
) -> Iterator[LedgerEvent]:
    """New events as they commit; checks the store's change counter, not the table, each poll."""
    seen_version = -1
    while not stop.is_set():
        version = store.data_version()
        if version != seen_version:
            seen_version = version
            for event in _stream(store, EventPage(item_id, after)):
                after = event.seq
                yield event
        stop.wait(FOLLOW_POLL_SECONDS)


@click.command("log")
@click.option("--item", metavar="ID", help="Only this item.")
@click.option("--json", "as_json", is_flag=True, help="One JSON event per line.")
@click.option(
    "--follow",
    "-f",
    is_flag=True,
    help=f"Keep printing new events (starting with the last {FOLLOW_HISTORY}).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1, max=SQL_INT_MAX),
    metavar="N",
    help="Only N events: the last N (before --before), or the first N after --after.",
)
@click.option(
    "--after",
    type=click.IntRange(min=0, max=SQL_INT_MAX),
    metavar="SEQ",
    help="Only events after SEQ.",
)
@click.option(
    "--before",
    type=click.IntRange(min=1, max=SQL_INT_MAX),
    metavar="SEQ",
    help="Only events before SEQ.",
)
@click.pass_context
def log(
    ctx: click.Context,
    item: str | None,
    as_json: bool,
    follow: bool,
    limit: int | None,
    after: int | None,
    before: int | None,
) -> None:
    """The ledger: every state change, in order (paged in the database).

    Each line starts with the event's SEQ, which --after and --before take.
    """
    if follow and before is not None:
        raise DomainError("--follow prints new events; it cannot be used with --before")
    store = state_of(ctx).store()
    if item is not None:
        with store.reader() as tx:
            tx.require_item(item)  # an unknown ID is bad input (exit 2), as for show and runs
    if follow and limit is None and after is None:
        limit = FOLLOW_HISTORY
    emit = _emitter(as_json)
    last = after or 0  # follow on right after the last event printed
    for event in _history(
        store, EventPage.around(before_seq=before, after_seq=after, limit=limit, item_id=item)
    ):
        emit(event)
        last = event.seq
    sys.stdout.flush()
    if not follow:
        return
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        for event in _follow(store, last, item, stop):
            emit(event)
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _emitter(as_json: bool) -> Callable[[LedgerEvent], object]:
    if as_json:
        return lambda event: sys.stdout.write(ndjson_line(event.to_dict()))
    return lambda event: sys.stdout.write(event_line(event) + "\n")
