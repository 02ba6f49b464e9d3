"""The SQL of the read commands' pages, shared by the SQL stores (`?` placeholders).

Orders are written as CASE expressions built from the domain's own enums, so the database
sorts exactly as `domain/items.status_sort_key` and `domain/listing.section_sort_key` do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from phase_golem.domain.items import STATUS_DISPLAY_ORDER, Level
from phase_golem.domain.listing import CLOSED, EventPage, RunPage
from phase_golem.store.codec import EVENT_COLUMNS


def _rank_case(column: str, ranks: Mapping[str, int], default: int) -> str:
    # The values are our enums' own (plain lowercase words), never user input.
    arms = " ".join(f"WHEN '{value}' THEN {rank}" for value, rank in ranks.items())
    return f"(CASE {column} {arms} ELSE {default} END)"


IMPACT_RANK = _rank_case("impact", {level.value: level.rank for level in Level}, 0)
STATUS_RANK = _rank_case(
    "status",
    {status.value: index for index, status in enumerate(STATUS_DISPLAY_ORDER)},
    len(STATUS_DISPLAY_ORDER),
)
SECTION_ORDER = f"{IMPACT_RANK} DESC, id"
STATUS_ORDER = f"{STATUS_RANK}, {IMPACT_RANK} DESC, id"

ACTIVE_COUNTS = "SELECT status, count(*) AS n FROM items WHERE archived = 0 GROUP BY status"
ARCHIVED_TOTAL = "SELECT count(*) AS n FROM items WHERE archived = 1"
ARCHIVED_COUNTS = (
    f"SELECT CASE WHEN closed_reason IS NOT NULL THEN '{CLOSED}' ELSE status END AS section, "
    "count(*) AS n FROM items WHERE archived = 1 GROUP BY section"
)


def _limit(sql: str, params: list[Any], limit: int | None) -> str:
    if limit is None:
        return sql
    params.append(limit)
    return sql + " LIMIT ?"


def section_query(
    section: str, include_archived: bool, limit: int | None
) -> tuple[str, list[Any]] | None:
    """SELECT of one `status` section, or None when the section is empty by definition."""
    params: list[Any] = []
    if section == CLOSED:
        if not include_archived:
            return None
        where = "archived = 1 AND closed_reason IS NOT NULL"
    else:
        # Equalities on the index's first two columns, so the index gives the order; with
        # archived items too, the order of the two halves is merged by a sort (the archive).
        where = (
            "archived IN (0, 1) AND status = ? AND (archived = 0 OR closed_reason IS NULL)"
            if include_archived
            else "archived = 0 AND status = ?"
        )
        params.append(section)
    sql = f"SELECT * FROM items WHERE {where} ORDER BY {SECTION_ORDER}"
    return _limit(sql, params, limit), params


def status_order_query(include_archived: bool) -> str:
    where = "" if include_archived else " WHERE archived = 0"
    return f"SELECT * FROM items{where} ORDER BY {STATUS_ORDER}"


def run_page_query(page: RunPage) -> tuple[str, list[Any], bool]:
    """SELECT of a runs page, and whether its rows come oldest first (to be reversed)."""
    clauses: list[str] = []
    params: list[Any] = []
    if page.item_id is not None:
        clauses.append("item_id = ?")
        params.append(page.item_id)
    if page.statuses:
        clauses.append(f"status IN ({', '.join('?' for _ in page.statuses)})")
        params.extend(status.value for status in page.statuses)
    if page.before is not None:
        clauses.append("(queued_at, id) < (?, ?)")
        params.extend((page.before.queued_at, page.before.run_id))
    if page.after is not None:
        clauses.append("(queued_at, id) > (?, ?)")
        params.extend((page.after.queued_at, page.after.run_id))
    oldest_first = page.limit is not None and page.oldest
    direction = "ASC" if oldest_first else "DESC"
    sql = "SELECT * FROM runs"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += f" ORDER BY queued_at {direction}, id {direction}"
    return _limit(sql, params, page.limit), params, oldest_first


def event_page_query(page: EventPage) -> tuple[str, list[Any], bool]:
    """SELECT of a ledger page, and whether its rows come newest first (to be reversed)."""
    clauses: list[str] = []
    params: list[Any] = []
    if page.item_id is not None:
        clauses.append("item_id = ?")
        params.append(page.item_id)
    if page.after_seq is not None:
        clauses.append("seq > ?")
        params.append(page.after_seq)
    if page.before_seq is not None:
        clauses.append("seq < ?")
        params.append(page.before_seq)
    newest_first = page.limit is not None and page.newest
    sql = f"SELECT {', '.join(EVENT_COLUMNS)} FROM ledger"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += f" ORDER BY seq {'DESC' if newest_first else 'ASC'}"
    return _limit(sql, params, page.limit), params, newest_first


# Per group, one row: the database adds up every run, Python never lists them.
RUN_TOTALS = (
    "SELECT status, step, error_class, agent, model, count(*) AS runs, "
    "coalesce(sum(cost_usd), 0) AS cost_usd, coalesce(sum(tokens_in), 0) AS tokens_in, "
    "coalesce(sum(tokens_out), 0) AS tokens_out, "
    "coalesce(sum(CASE WHEN started_at IS NOT NULL AND ended_at IS NOT NULL "
    "THEN (julianday(ended_at) - julianday(started_at)) * 86400.0 END), 0) AS seconds "
    "FROM runs GROUP BY status, step, error_class, agent, model"
)
