"""What one scheduling decision may consider: the whole backlog, the current target, the
`--only` matches, one stepped item, or new items only (`triage`); and when that mode halts.

The scope it returns also limits which queued runs are claimed, so `triage` never runs a
phase and `step X` never runs another item's retry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from phase_golem.domain.filters import Filter
from phase_golem.domain.items import ItemStatus
from phase_golem.domain.pipelines import Settings
from phase_golem.domain.scheduling import (
    Action,
    RunningTask,
    select_actions,
    select_targeted_actions,
)
from phase_golem.domain.snapshot import BacklogSnapshot
from phase_golem.engine.summary import HaltReason, RunSummary


@dataclass(frozen=True)
class RunOptions:
    targets: tuple[str, ...] = ()
    filter: Filter | None = None
    cap: int | None = None
    auto_advance: bool = False
    triage_only: bool = False
    step_item: str | None = None
    sources: bool = True  # fire due intake sources (`run` only; `--no-sources` turns off)


@dataclass
class LoopState:
    summary: RunSummary = field(default_factory=RunSummary)
    breaker: int = 0
    target_index: int = 0
    stepped: bool = False
    wip_note: str | None = None  # the last "max_wip is full" line said


@dataclass(frozen=True)
class Choice:
    actions: list[Action]
    halt: HaltReason | None = None
    scope: frozenset[str] | None = None  # None: every item


class Selection:
    def __init__(
        self,
        options: RunOptions,
        settings: Settings,
        state: LoopState,
        emit: Callable[[str], None],
    ) -> None:
        self.options = options
        self.settings = settings
        self.state = state
        self.emit = emit

    def cap_reached(self) -> bool:
        cap = 1 if self.options.step_item is not None else self.options.cap
        return cap is not None and self.state.summary.phases_executed >= cap

    def scope_of(self, backlog: BacklogSnapshot) -> frozenset[str] | None:
        """The items this command may run at all (before this decision's details).

        A `--only` filter is the one scope that looks at every active item (in memory).
        """
        if self.options.step_item is not None:
            return frozenset({self.options.step_item})
        if self.options.targets:
            return frozenset(self.options.targets[self.state.target_index :])
        scope: set[str] | None = None
        if self.options.filter is not None:
            scope = {i.id for i in self.options.filter.select(backlog.items_by_id.values())}
        if self.options.triage_only:
            fresh = set(backlog.with_status(ItemStatus.NEW))
            scope = fresh if scope is None else scope & fresh
        return None if scope is None else frozenset(scope)

    def choose(
        self, backlog: BacklogSnapshot, running: dict[str, RunningTask], now: datetime
    ) -> Choice:
        if self.options.step_item is not None:
            return self._step(backlog, running, now)
        if self.options.targets:
            return self._targeted(backlog, running, now)
        scope = self.scope_of(backlog)
        if self.options.filter is not None:
            halt = self._filter_halt(backlog)
            if halt is not None:
                return Choice([], halt, scope)
        actions = select_actions(
            backlog, running, self.settings.execution, self.settings.pipelines, now, only=scope
        )
        if not actions and not running and scope is not None and self.options.filter:
            self._say_why_nothing_starts(backlog, scope)
        return Choice(actions, None, scope)

    def _say_why_nothing_starts(self, backlog: BacklogSnapshot, scope: frozenset[str]) -> None:
        """`--only` that can start nothing because items it does not match fill `max_wip`:
        said once, or the run would end as if all were done."""
        note = wip_full_note(backlog, scope, self.settings.execution.max_wip)
        if note is not None and note != self.state.wip_note:
            self.state.wip_note = note
            self.emit(note)

    def _filter_halt(self, backlog: BacklogSnapshot) -> HaltReason | None:
        """`--only` is done when nothing matches, or every match is done or blocked."""
        assert self.options.filter is not None
        matches = self.options.filter.select(backlog.items_by_id.values())
        if not matches:
            summary = self.state.summary
            acted = summary.items_completed or summary.items_blocked
            return HaltReason.FILTER_EXHAUSTED if acted else HaltReason.NO_MATCHING_ITEMS
        if all(m.status in (ItemStatus.DONE, ItemStatus.BLOCKED) for m in matches):
            return HaltReason.FILTER_EXHAUSTED
        return None

    def _targeted(
        self, backlog: BacklogSnapshot, running: dict[str, RunningTask], now: datetime
    ) -> Choice:
        summary = self.state.summary
        targets = self.options.targets
        while self.state.target_index < len(targets):
            target_id = targets[self.state.target_index]
            if target_id in summary.items_blocked and target_id not in running:
                if not self.options.auto_advance:
                    return Choice([], HaltReason.TARGET_BLOCKED, frozenset({target_id}))
                self.state.breaker = 0
                self.state.target_index += 1
                continue
            target = backlog.get(target_id)
            if target is None or target.status in (ItemStatus.DONE, ItemStatus.BLOCKED):
                if target is None and target_id not in summary.items_completed:
                    self.emit(f"[target] {target_id} not found (archived?); skipping")
                self.state.target_index += 1
                continue
            actions = select_targeted_actions(
                target, backlog, running, self.settings.execution, self.settings.pipelines, now
            )
            return Choice(actions, None, frozenset({target_id}))
        return Choice([], HaltReason.TARGET_COMPLETED, frozenset())

    def _step(
        self, backlog: BacklogSnapshot, running: dict[str, RunningTask], now: datetime
    ) -> Choice:
        item_id = self.options.step_item or ""
        scope = frozenset({item_id})
        if self.state.stepped:
            return Choice([], HaltReason.CAP_REACHED, scope)
        target = backlog.get(item_id)
        if target is None or target.id in running:
            return Choice([], HaltReason.ALL_DONE_OR_BLOCKED, scope)
        # Alone and ungated: targeted selection ignores limits, and no one else is considered.
        actions = select_targeted_actions(
            target, [target], {}, self.settings.execution, self.settings.pipelines, now
        )
        return Choice(actions, None, scope)


def wip_full_note(backlog: BacklogSnapshot, scope: frozenset[str], max_wip: int) -> str | None:
    """The line for ready items in scope that wait only because others hold every WIP slot."""
    in_progress = backlog.with_status(ItemStatus.IN_PROGRESS)
    if len(in_progress) < max_wip:
        return None
    waiting = sorted(i for i in backlog.with_status(ItemStatus.READY) if i in scope)
    others = sorted(i for i in in_progress if i not in scope)
    if not waiting or not others:
        return None
    shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
    return (
        f"--only: {', '.join(waiting[:5])} cannot start: max_wip = {max_wip} is full with "
        f"{shown}, which --only does not match; finish or block those, or raise "
        "[execution] max_wip"
    )
