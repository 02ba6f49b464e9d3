"""The engine's own durable state, in typed tables: owed commits, leftovers, agent pauses.

Each kind is read whole and saved whole inside the caller's transaction (the sets are
small: one row per finished run not yet committed, per leftover path, per paused agent),
so the engine's rules in `engine/owed.py` and `engine/agent_pauses.py` keep working on
plain values. Adapters implement the load and replace primitives; SQL stores share
`sql_state.py`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class PendingCommit:
    """A finished run's change, owed to git until its commit is made (DESIGN §8)."""

    run_id: str
    item_id: str
    tree: str
    phase: str
    touched: tuple[str, ...]
    own: tuple[str, ...]
    succeeded: bool
    immediate: bool
    summary: str = ""
    overlapped: bool = False
    own_committed: bool = False
    intended: str | None = None  # the commit being made for it, once one is under way


@dataclass(frozen=True, slots=True)
class Leftover:
    """A path a run that did not succeed left in a tree, and who may commit it."""

    tree: str
    path: str
    owners: tuple[tuple[str, str], ...]  # (item id, phase)
    runs: tuple[str, ...]
    blob: str | None = None


@dataclass(frozen=True, slots=True)
class PausedAgent:
    agent: str
    reason: str
    since: str
    run_id: str | None = None


class StateAccess(Protocol):
    def pending_commits(self) -> list[PendingCommit]: ...
    def save_pending_commits(self, entries: Sequence[PendingCommit]) -> None: ...
    def leftovers(self) -> list[Leftover]: ...
    def save_leftovers(self, entries: Sequence[Leftover]) -> None: ...
    def agent_pauses(self) -> tuple[list[PausedAgent], dict[str, str]]: ...
    def save_agent_pauses(
        self, paused: Sequence[PausedAgent], resumed: Mapping[str, str]
    ) -> None: ...


class StateBase(abc.ABC):
    @abc.abstractmethod
    def _load_pending(self) -> list[PendingCommit]:
        """In the order they were recorded."""

    @abc.abstractmethod
    def _replace_pending(self, entries: Sequence[PendingCommit]) -> None: ...
    @abc.abstractmethod
    def _load_leftovers(self) -> list[Leftover]:
        """Ordered by tree and path."""

    @abc.abstractmethod
    def _replace_leftovers(self, entries: Sequence[Leftover]) -> None: ...
    @abc.abstractmethod
    def _load_pauses(self) -> tuple[list[PausedAgent], dict[str, str]]: ...
    @abc.abstractmethod
    def _replace_pauses(
        self, paused: Sequence[PausedAgent], resumed: Mapping[str, str]
    ) -> None: ...
    @abc.abstractmethod
    def _require_writable(self) -> None: ...

    def pending_commits(self) -> list[PendingCommit]:
        return self._load_pending()

    def save_pending_commits(self, entries: Sequence[PendingCommit]) -> None:
        """Replace every owed commit with `entries` (one per run)."""
        self._require_writable()
        self._replace_pending(list(entries))

    def leftovers(self) -> list[Leftover]:
        return self._load_leftovers()

    def save_leftovers(self, entries: Sequence[Leftover]) -> None:
        """Replace every leftover with `entries` (one per tree and path)."""
        self._require_writable()
        self._replace_leftovers(sorted(entries, key=lambda e: (e.tree, e.path)))

    def agent_pauses(self) -> tuple[list[PausedAgent], dict[str, str]]:
        """The paused agents (by name) and when each agent was last resumed."""
        return self._load_pauses()

    def save_agent_pauses(self, paused: Sequence[PausedAgent], resumed: Mapping[str, str]) -> None:
        self._require_writable()
        self._replace_pauses(sorted(paused, key=lambda p: p.agent), dict(resumed))
