"""Server-sent events from the ledger's `seq`: the same stream as `log --follow`.

The stream polls the store's change counter (SQLite `PRAGMA data_version`, one cheap
query) about twice a second and reads only the events after the last one sent; the
browser resumes from `Last-Event-ID` when the connection drops, so no change is missed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from phase_golem.domain.events import LedgerEvent
from phase_golem.domain.listing import EventPage
from phase_golem.store import Store
from phase_golem.web.context import web_of
from phase_golem.web.pages import refuse

POLL_SECONDS = 0.5
KEEPALIVE_SECONDS = 15.0
BATCH = 200


def _start(request: Request) -> int:
    raw = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    return int(raw) if raw.isdigit() else 0


def _events_after(store: Store, seq: int) -> list[LedgerEvent]:
    with store.reader() as tx:
        return tx.event_page(EventPage(None, seq, None, BATCH))


def sse_message(event: LedgerEvent) -> str:
    # Only what a page needs to know that it is stale; the page reads the details itself.
    data = json.dumps({"seq": event.seq, "kind": str(event.kind), "item": event.item_id})
    return f"id: {event.seq}\nevent: ledger\ndata: {data}\n\n"


async def _stream(request: Request, store: Store, after: int) -> AsyncIterator[str]:
    seen_version = -1
    quiet = 0.0
    yield "retry: 2000\n\n"
    while not await request.is_disconnected():
        version = await run_in_threadpool(store.data_version)
        if version != seen_version:
            seen_version = version
            for event in await run_in_threadpool(_events_after, store, after):
                after = event.seq
                quiet = 0.0
                yield sse_message(event)
        if quiet >= KEEPALIVE_SECONDS:
            quiet = 0.0
            yield ": keep-alive\n\n"
        await asyncio.sleep(POLL_SECONDS)
        quiet += POLL_SECONDS


async def events(request: Request) -> Response:
    web = web_of(request)
    if not web.signed_in(request):
        return refuse(request, "refused: sign in first", 401)
    return StreamingResponse(
        _stream(request, web.store, _start(request)),
        media_type="text/event-stream",
        headers={"x-accel-buffering": "no"},
    )
