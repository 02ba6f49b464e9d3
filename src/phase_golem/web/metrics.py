"""`/metrics` (Prometheus text format) and `/api/v1/state` (the CLI's `--json` shapes).

Each scrape asks the database for counts and sums (`item_counts`, `run_totals`): the cost
of a scrape grows with the number of distinct series, not with the ledger or the runs.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from phase_golem.cli.output import json_text
from phase_golem.domain.listing import RunPage, RunTotal
from phase_golem.domain.runs import RunStatus, Step
from phase_golem.domain.serialization import item_to_dict, run_to_dict
from phase_golem.engine.control import pause_state
from phase_golem.engine.pause_records import paused_agents
from phase_golem.store import Store
from phase_golem.web.context import web_of
from phase_golem.web.pages import refuse

STATE_RUNS = 100
_WAITING_STEPS = frozenset({Step.QUEUED.value, Step.CLAIMED.value})


class BacklogCollector:
    """Reads the store at every scrape (prometheus_client's custom-collector protocol)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        with self.store.reader() as tx:
            counts = tx.item_counts(include_archived=True)
            totals = tx.run_totals()
            paused = len(paused_agents(tx))
        items = GaugeMetricFamily("phase_golem_items", "Items by status.", labels=["status"])
        for section, n in sorted(counts.by_section.items()):
            items.add_metric([section], n)
        yield items
        yield from _run_metrics(totals)
        yield GaugeMetricFamily("phase_golem_agents_paused", "Agents paused.", value=paused)


def _run_metrics(totals: list[RunTotal]) -> Iterator[Metric]:
    runs = GaugeMetricFamily(
        "phase_golem_runs", "Runs by status and error class.", labels=["status", "error_class"]
    )
    by_status: dict[tuple[str, str], int] = {}
    by_agent: dict[tuple[str, str], list[float]] = {}
    running = queued = 0
    for total in totals:
        key = (total.status, total.error_class or "")
        by_status[key] = by_status.get(key, 0) + total.runs
        sums = by_agent.setdefault((total.agent or "", total.model or ""), [0.0, 0, 0, 0, 0.0])
        for index, value in enumerate(
            (total.cost_usd, total.tokens_in, total.tokens_out, total.runs, total.seconds)
        ):
            sums[index] += value
        if total.status == RunStatus.ACTIVE.value:
            if total.step in _WAITING_STEPS:
                queued += total.runs
            else:
                running += total.runs
    for (status, error_class), n in sorted(by_status.items()):
        runs.add_metric([status, error_class], n)
    yield runs
    yield GaugeMetricFamily("phase_golem_agents_running", "Agents running now.", value=running)
    yield GaugeMetricFamily("phase_golem_queue_depth", "Runs queued or claimed.", value=queued)
    labels = ["agent", "model"]
    cost = CounterMetricFamily("phase_golem_cost_usd", "Cost by agent and model.", labels=labels)
    tokens = CounterMetricFamily(
        "phase_golem_tokens", "Tokens by agent, model and direction.", labels=[*labels, "direction"]
    )
    durations = SummaryMetricFamily(
        "phase_golem_run_duration_seconds", "Run durations by agent and model.", labels=labels
    )
    for (agent, model), (usd, tokens_in, tokens_out, count, seconds) in sorted(by_agent.items()):
        cost.add_metric([agent, model], usd)
        tokens.add_metric([agent, model, "in"], tokens_in)
        tokens.add_metric([agent, model, "out"], tokens_out)
        durations.add_metric([agent, model], count_value=int(count), sum_value=seconds)
    yield from (cost, tokens, durations)


def _exposition(store: Store) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BacklogCollector(store))
    return generate_latest(registry)


def _readable(request: Request) -> bool:
    web = web_of(request)
    return web.metrics_public or web.signed_in(request)


async def metrics(request: Request) -> Response:
    if not _readable(request):
        return refuse(request, "refused: the token is needed ([serve] metrics_public = false)", 401)
    body = await run_in_threadpool(_exposition, web_of(request).store)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _state(store: Store) -> str:
    with store.reader() as tx:
        items = [item_to_dict(item) for item in tx.items_in_status_order()]
        runs = [run_to_dict(run) for run in tx.run_page(RunPage(limit=STATE_RUNS))]
        pauses = [pause.line() for pause in paused_agents(tx).values()]
        scheduler = pause_state(tx)
    state = {
        "items": items,
        "runs": runs,
        "paused_agents": pauses,
        "scheduler_paused": scheduler.to_dict() if scheduler is not None else None,
    }
    return json_text(state, indent=2)


async def state(request: Request) -> Response:
    if not _readable(request):
        return refuse(request, "refused: the token is needed ([serve] metrics_public = false)", 401)
    body = await run_in_threadpool(_state, web_of(request).store)
    return Response(body, media_type="application/json")
