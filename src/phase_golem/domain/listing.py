"""How the read commands order and page what they list (pure rules; stores follow them).

- `status` groups items into sections (in progress, blocked, ready, scoping, new, then the
  archived: done and closed); within a section, impact high first, then ID.
- `runs` lists newest first: by queued time, then run ID. A page is cut next to a run
  (`--before RUN`: older than it; `--after RUN`: newer than it).
- `log` lists in ledger order (seq). A page is cut next to a seq.

A limited page keeps the runs (or events) next to `before` when it is given, or right after
`after` when only that is given, or else the newest (`ends_at_before`).
"""

from __future__ import annotations

from typing import NamedTuple

from phase_golem.domain.errors import DomainError
from phase_golem.domain.items import STATUS_DISPLAY_ORDER, Item, ItemStatus, impact_priority
from phase_golem.domain.runs import Run, RunStatus

CLOSED = "closed"
ARCHIVED_SECTIONS: tuple[str, ...] = (ItemStatus.DONE.value, CLOSED)
ACTIVE_SECTIONS: tuple[str, ...] = tuple(
    s.value for s in STATUS_DISPLAY_ORDER if s.value not in ARCHIVED_SECTIONS
)
SECTIONS: tuple[str, ...] = ACTIVE_SECTIONS + ARCHIVED_SECTIONS


def section_of(item: Item) -> str:
    """The `status` section of an item: its status, or `closed` for a closed archived one."""
    if item.archived and item.closed_reason is not None:
        return CLOSED
    return item.status.value


def section_sort_key(item: Item) -> tuple[int, str]:
    """Order within a section: impact high first, then ID."""
    return (-impact_priority(item), item.id)


def check_section(section: str) -> str:
    if section not in SECTIONS:
        raise DomainError(f"unknown status section {section!r} (one of: {', '.join(SECTIONS)})")
    return section


# Plain named tuples, not dataclasses: these are built at every CLI start-up, and a frozen
# dataclass costs several times as much to define.
class ItemCounts(NamedTuple):
    """How many items each section holds; archived sections only when asked for."""

    by_section: dict[str, int]
    archived: int

    @property
    def total(self) -> int:
        return sum(self.by_section.values())


class RunTotal(NamedTuple):
    """The runs of one (status, step, error class, agent, model): what `/metrics` reports."""

    status: str
    step: str
    error_class: str | None
    agent: str | None
    model: str | None
    runs: int
    cost_usd: float
    tokens_in: int
    tokens_out: int
    seconds: float  # summed over the runs that started and ended


def ends_at_before(after: object | None, before: object | None) -> bool:
    """Whether a limited page is the part next to `before` (or the newest end)."""
    return before is not None or after is None


class RunCursor(NamedTuple):
    """A run's place in the runs listing: queued time, then ID (compared in that order)."""

    queued_at: str
    run_id: str

    @classmethod
    def of(cls, run: Run) -> RunCursor:
        return cls(run.queued_at, run.id)


class RunPage(NamedTuple):
    """Which runs to list, newest first."""

    item_id: str | None = None
    statuses: tuple[RunStatus, ...] = ()
    limit: int | None = None
    before: RunCursor | None = None  # only runs listed after it (older)
    after: RunCursor | None = None  # only runs listed before it (newer)
    oldest: bool = False  # a limit keeps the oldest matching runs instead of the newest

    def admits(self, run: Run) -> bool:
        """The filter of the page, without its limit (what a store's WHERE says)."""
        place = RunCursor.of(run)
        return (
            (self.item_id is None or run.item_id == self.item_id)
            and (not self.statuses or run.status in self.statuses)
            and (self.before is None or place < self.before)
            and (self.after is None or place > self.after)
        )

    @classmethod
    def around(
        cls,
        *,
        before: RunCursor | None,
        after: RunCursor | None,
        limit: int | None,
        item_id: str | None = None,
        statuses: tuple[RunStatus, ...] = (),
    ) -> RunPage:
        """The page the read commands mean by `--before`/`--after`/`--limit`."""
        return cls(item_id, statuses, limit, before, after, not ends_at_before(after, before))


class EventPage(NamedTuple):
    """Which ledger events to list, in ledger order."""

    item_id: str | None = None
    after_seq: int | None = None
    before_seq: int | None = None
    limit: int | None = None
    newest: bool = False  # a limit keeps the newest matching events instead of the oldest

    def admits(self, seq: int, item_id: str | None) -> bool:
        return (
            (self.item_id is None or item_id == self.item_id)
            and (self.after_seq is None or seq > self.after_seq)
            and (self.before_seq is None or seq < self.before_seq)
        )

    @classmethod
    def around(
        cls,
        *,
        before_seq: int | None,
        after_seq: int | None,
        limit: int | None,
        item_id: str | None = None,
    ) -> EventPage:
        """The page the read commands mean by `--before`/`--after`/`--limit`."""
        return cls(item_id, after_seq, before_seq, limit, ends_at_before(after_seq, before_seq))
