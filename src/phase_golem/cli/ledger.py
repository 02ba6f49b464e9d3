"""`phase-golem log`: read and follow the ledger."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from typing import Annotated

import typer

from phase_golem.cli.context import state_of
from phase_golem.cli.render import event_line, print_ndjson
from phase_golem.domain.events import LedgerEvent
from phase_golem.store import Store

FOLLOW_POLL_SECONDS = 0.5


def _follow(
    store: Store, after: int, item_id: str | None, stop: threading.Event
) -> Iterator[LedgerEvent]:
    """New events as they commit; checks the store's change counter, not the table, each poll."""
    seen_version = -1
    while not stop.is_set():
        version = store.data_version()
        if version != seen_version:
            seen_version = version
            with store.reader() as tx:
                fresh = tx.events(after_seq=after, item_id=item_id)
            for event in fresh:
                after = event.seq
                yield event
        stop.wait(FOLLOW_POLL_SECONDS)


def log(
    ctx: typer.Context,
    item: Annotated[
        str | None, typer.Option("--item", metavar="ID", help="Only this item.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON event per line.")] = False,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events.")
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the last N events.")
    ] = None,
) -> None:
    """The ledger: every state change, in order."""
    store = state_of(ctx).store()
    with store.reader() as tx:
        events = tx.events(item_id=item)
    if limit is not None:
        events = events[-limit:]

    def emit(batch: list[LedgerEvent]) -> None:
        if as_json:
            print_ndjson(e.to_dict() for e in batch)
        else:
            for event in batch:
                sys.stdout.write(event_line(event) + "\n")
            sys.stdout.flush()

    emit(events)
    if not follow:
        return
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    last = events[-1].seq if events else 0
    try:
        for event in _follow(store, last, item, stop):
            emit([event])
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def register(app: typer.Typer) -> None:
    app.command()(log)
