"""The dashboard's outbox and sources pages (GET only): a page of the store each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from phase_golem.domain.notifications import NotificationStatus
from phase_golem.domain.sources import SourceConfig
from phase_golem.store import Transaction
from phase_golem.web.context import web_of

NOTIFICATIONS_PAGE = 50
SHOWN_STATUSES = (NotificationStatus.PENDING, NotificationStatus.SENT, NotificationStatus.FAILED)
MAX_ID_DIGITS = 18  # beyond what any store counts to

# What a source's row may tell, in the order shown; fields a store does not keep are skipped.
SOURCE_FIELDS = (
    "kind",
    "value",
    "next_run_at",
    "last_run_at",
    "last_error",
    "failures",
    "runs",
    "items_created",
    "items_updated",
    "items_closed",
    "claimed_by",
)


def source_rows(tx: Transaction, configured: Sequence[SourceConfig] = ()) -> list[dict[str, Any]]:
    """Each intake source with what the store records of it (its schedule row), and each
    configured source that has no row yet (nothing has run or listed it since it was added).

    The one place the page learns about sources: the intake work (DESIGN §11) adds fields
    to the schedule rows, and whatever a row carries is shown. `configured` marks the
    sources that can be run now (a row outlives its source until the next sync).
    """
    names = {source.name for source in configured}
    rows = []
    for schedule in tx.list_schedules():
        fields = {name: getattr(schedule, name, None) for name in SOURCE_FIELDS}
        shown = {k: v for k, v in fields.items() if v is not None}
        rows.append({"name": schedule.source, "configured": schedule.source in names, **shown})
    known = {row["name"] for row in rows}
    for source in configured:
        if source.name not in known:
            kind, value = source.schedule_kind, source.schedule_value
            rows.append({"name": source.name, "configured": True, "kind": kind, "value": value})
    return rows


def sources(request: Request) -> Response:
    web = web_of(request)
    configured = web.project.config.settings.sources
    with web.store.reader() as tx:
        rows = source_rows(tx, configured)
    return web.page(
        "sources.html", request=request, title="Sources", sources=rows, fields=SOURCE_FIELDS
    )


def _statuses(raw: str | None) -> tuple[NotificationStatus, ...] | None:
    if not raw or raw == "all":
        return SHOWN_STATUSES
    for status in SHOWN_STATUSES:
        if raw == status.value:
            return (status,)
    return None


def _cursor(raw: str | None) -> int | None:
    """The `before` id (None when absent); ValueError when it is not an id."""
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > MAX_ID_DIGITS:
        raise ValueError(f"before {raw!r} is not a notification id")
    return int(raw)


def notifications(request: Request) -> Response:
    web = web_of(request)
    raw_status = request.query_params.get("status")
    statuses = _statuses(raw_status)
    if statuses is None:
        valid = ", ".join(s.value for s in SHOWN_STATUSES)
        message = f"status {raw_status!r} is not one of: all, {valid}"
        return web.page("error.html", 400, title="Bad request", message=message)
    try:
        before = _cursor(request.query_params.get("before"))
    except ValueError as exc:
        return web.page("error.html", 400, title="Bad request", message=str(exc))
    with web.store.reader() as tx:
        found = tx.notification_page(
            statuses=statuses, before_id=before, limit=NOTIFICATIONS_PAGE + 1
        )
    shown = found[:NOTIFICATIONS_PAGE]
    return web.page(
        "notifications.html",
        request=request,
        title="Notifications",
        rows=shown,
        more=len(found) > NOTIFICATIONS_PAGE,
        status=raw_status if raw_status in {s.value for s in SHOWN_STATUSES} else "all",
        choices=["all", *(s.value for s in SHOWN_STATUSES)],
        retryable=(NotificationStatus.PENDING, NotificationStatus.FAILED),
    )
