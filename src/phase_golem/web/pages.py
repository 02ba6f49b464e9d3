"""The dashboard's pages (GET only, never a change): each reads one page of the store."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from phase_golem.domain.listing import ACTIVE_SECTIONS, EventPage, RunCursor, RunPage
from phase_golem.domain.runs import Mutation, Run, RunStatus
from phase_golem.engine.pause_records import paused_agents
from phase_golem.store import Transaction
from phase_golem.web.context import Web, web_of

BOARD_CARDS = 50  # per column; the column says how many more it holds
NEEDS_ROWS = 100
RUNS_PAGE = 50
ITEM_EVENTS = 200  # the newest of an item's ledger events
ITEM_RUNS = 100
LIVE_RUNS = 200


def last_seq(tx: Transaction) -> int:
    newest = tx.event_page(EventPage(limit=1, newest=True))
    return newest[-1].seq if newest else 0


def awaits_resolve(run: Run) -> bool:
    """Paused as indeterminate and not decided yet (a decided run keeps its status)."""
    return run.status is RunStatus.PAUSED_INDETERMINATE and run.mutation is Mutation.INDETERMINATE


def _running(tx: Transaction) -> dict[str, Run]:
    """The live run of each item (queued, claimed or started), by item."""
    runs = tx.run_page(RunPage(statuses=(RunStatus.ACTIVE,), limit=LIVE_RUNS))
    return {run.item_id: run for run in reversed(runs)}


def _board(web: Web) -> dict[str, Any]:
    with web.store.reader() as tx:
        counts = tx.item_counts()
        columns = [
            (section, tx.items_in_section(section, limit=BOARD_CARDS), total)
            for section in ACTIVE_SECTIONS
            for total in (counts.by_section.get(section, 0),)
        ]
        return {
            "columns": columns,
            "running": _running(tx),
            "seq": last_seq(tx),
            "archived": counts.archived,
        }


def board(request: Request) -> Response:
    web = web_of(request)
    values = _board(web)
    if request.query_params.get("fragment"):
        return web.page("_board.html", **values)
    return web.page("board.html", title="Board", request=request, **values)


def _needs(web: Web) -> dict[str, Any]:
    with web.store.reader() as tx:
        return {
            "blocked": tx.items_in_section("blocked", limit=NEEDS_ROWS),
            "uncertain": [
                run
                for run in tx.run_page(
                    RunPage(statuses=(RunStatus.PAUSED_INDETERMINATE,), limit=NEEDS_ROWS)
                )
                if awaits_resolve(run)
            ],
            "pauses": list(paused_agents(tx).values()),
            "seq": last_seq(tx),
        }


def needs(request: Request) -> Response:
    web = web_of(request)
    values = _needs(web)
    if request.query_params.get("fragment"):
        return web.page("_needs.html", **values)
    return web.page("needs.html", title="Needs you", request=request, **values)


def item(request: Request) -> Response:
    web = web_of(request)
    item_id = request.path_params["item_id"]
    with web.store.reader() as tx:
        found = tx.get_item(item_id)
        if found is None:
            return web.page("error.html", 404, title="Not found", message=f"no item {item_id}")
        runs = tx.run_page(RunPage(item_id=item_id, limit=ITEM_RUNS))
        events = tx.event_page(EventPage(item_id, limit=ITEM_EVENTS, newest=True))
        receipts = {r.run_id: r for r in tx.list_receipts(item_id=item_id)}
        seq = last_seq(tx)
    return web.page(
        "item.html",
        request=request,
        title=item_id,
        item=found,
        runs=runs,
        events=list(reversed(events)),
        receipts=receipts,
        seq=seq,
        awaits_resolve=awaits_resolve,
    )


def runs(request: Request) -> Response:
    web = web_of(request)
    before_id = request.query_params.get("before")
    with web.store.reader() as tx:
        before = None
        if before_id:
            anchor = tx.get_run(before_id)
            if anchor is None:
                return web.page("error.html", 404, title="Not found", message=f"no run {before_id}")
            before = RunCursor.of(anchor)
        found = tx.run_page(RunPage.around(before=before, after=None, limit=RUNS_PAGE + 1))
    more = len(found) > RUNS_PAGE
    return web.page("runs.html", title="Runs", request=request, runs=found[:RUNS_PAGE], more=more)


def agents(request: Request) -> Response:
    web = web_of(request)
    settings = web.project.config.settings
    with web.store.reader() as tx:
        pauses = paused_agents(tx)
        running = list(_running(tx).values())
        totals = tx.run_totals()
    by_agent: dict[str, dict[str, float]] = {}
    for total in totals:
        entry = by_agent.setdefault(total.agent or settings.agent.cli.value, _zero())
        entry["runs"] += total.runs
        entry["cost"] += total.cost_usd
        entry["tokens_in"] += total.tokens_in
        entry["tokens_out"] += total.tokens_out
    names = sorted({settings.agent.cli.value, *by_agent, *pauses})
    return web.page(
        "agents.html",
        request=request,
        title="Agents",
        names=names,
        pauses=pauses,
        running=running,
        totals=by_agent,
        model=settings.agent.model,
    )


def _zero() -> dict[str, float]:
    return {"runs": 0, "cost": 0.0, "tokens_in": 0, "tokens_out": 0}


def not_found(request: Request, exc: Exception) -> HTMLResponse:
    return web_of(request).page("error.html", 404, title="Not found", message="no such page")


def refuse(request: Request, message: str, status_code: int = 400) -> HTMLResponse:
    return web_of(request).page("error.html", status_code, title="Refused", message=message)
