"""Pages for the read commands (`status`, `runs`, `log`, `show`): each costs what it returns.

DESIGN §3 (cost rules): reads are paged in the database, never loaded whole and sliced in
Python. Every store implements the few primitives below; the ordering and cutting rules
are those of `domain/listing.py`.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from typing import Protocol

from phase_golem.domain.errors import DomainError
from phase_golem.domain.events import LedgerEvent
from phase_golem.domain.items import Item
from phase_golem.domain.listing import EventPage, ItemCounts, RunPage, RunTotal, check_section
from phase_golem.domain.runs import Run


class PageReads(Protocol):
    """What a transaction offers the read commands."""

    def item_counts(self, *, include_archived: bool = False) -> ItemCounts: ...

    def items_in_section(
        self, section: str, *, include_archived: bool = False, limit: int | None = None
    ) -> list[Item]: ...

    def items_in_status_order(self, *, include_archived: bool = False) -> Iterator[Item]: ...

    def run_page(self, page: RunPage) -> list[Run]: ...

    def event_page(self, page: EventPage) -> list[LedgerEvent]: ...

    def run_totals(self) -> list[RunTotal]: ...


class PagesBase(abc.ABC):
    """The protocol over the primitives each store writes in its own query language."""

    @abc.abstractmethod
    def _count_items(self, include_archived: bool) -> ItemCounts:
        """Active items per section (archived sections too when asked), and the archived."""

    @abc.abstractmethod
    def _load_section(self, section: str, include_archived: bool, limit: int | None) -> list[Item]:
        """Items of one section, impact high first, then ID."""

    @abc.abstractmethod
    def _iter_status_order(self, include_archived: bool) -> Iterator[Item]:
        """Every item in `status` order (`status_sort_key`), streamed, not loaded at once."""

    @abc.abstractmethod
    def _load_run_page(self, page: RunPage) -> list[Run]:
        """Newest first; a limit keeps the newest matching runs (the oldest: `page.oldest`)."""

    @abc.abstractmethod
    def _load_event_page(self, page: EventPage) -> list[LedgerEvent]:
        """In seq order; a limit keeps the first matching events (the last: `page.newest`)."""

    @abc.abstractmethod
    def _run_totals(self) -> list[RunTotal]:
        """Every run counted and summed by (status, step, error class, agent, model)."""

    def item_counts(self, *, include_archived: bool = False) -> ItemCounts:
        return self._count_items(include_archived)

    def run_totals(self) -> list[RunTotal]:
        return self._run_totals()

    def items_in_section(
        self, section: str, *, include_archived: bool = False, limit: int | None = None
    ) -> list[Item]:
        _check_limit(limit)
        return self._load_section(check_section(section), include_archived, limit)

    def items_in_status_order(self, *, include_archived: bool = False) -> Iterator[Item]:
        return self._iter_status_order(include_archived)

    def run_page(self, page: RunPage) -> list[Run]:
        _check_limit(page.limit)
        return self._load_run_page(page)

    def event_page(self, page: EventPage) -> list[LedgerEvent]:
        _check_limit(page.limit)
        return self._load_event_page(page)


def _check_limit(limit: int | None) -> None:
    if limit is not None and limit < 0:
        raise DomainError(f"a page limit cannot be negative (got {limit})")
