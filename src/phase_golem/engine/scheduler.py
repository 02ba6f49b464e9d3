"""The scheduler loop: decide → enqueue → claim → execute → complete → wait (DESIGN §3).

Up to `max_concurrent` agents run at once as asyncio tasks in one process. The loop
sleeps until a run finishes, something becomes due, the store changes, or a signal
arrives; it never spins.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from phase_golem.clock import utc_now
from phase_golem.domain.events import EventKind
from phase_golem.domain.filters import Filter
from phase_golem.domain.items import (
    Guardrails,
    Item,
    ItemStatus,
    Level,
    PhasePool,
    Size,
    format_timestamp,
    parse_timestamp,
    touch,
    transition,
)
from phase_golem.domain.pipelines import ApprovalGate
from phase_golem.domain.runs import Run, RunKind, RunStatus
from phase_golem.domain.scheduling import (
    Action,
    Promote,
    RunningTask,
    RunPhase,
    Triage,
    select_actions,
    select_targeted_actions,
    waiting_on_dependencies,
)
from phase_golem.engine.approvals import BEFORE, phase_approved, request_approval
from phase_golem.engine.completion import Completion, max_attempts, phase_config
from phase_golem.engine.executor import EngineContext, execute_run, idempotency_key
from phase_golem.engine.files import append_worklog
from phase_golem.engine.summary import HaltReason, RunSummary
from phase_golem.store import Transaction
from phase_golem.workspace.git import head_commit

IDLE_CHECK_SECONDS = 1.0
BREAKER_LIMIT = 2
NO_GUARDRAILS = Guardrails(max_size=Size.LARGE, max_complexity=Level.HIGH, max_risk=Level.HIGH)


@dataclass(frozen=True)
class RunOptions:
    targets: tuple[str, ...] = ()
    filter: Filter | None = None
    cap: int | None = None
    auto_advance: bool = False
    triage_only: bool = False
    step_item: str | None = None


@dataclass
class _State:
    summary: RunSummary = field(default_factory=RunSummary)
    breaker: int = 0
    target_index: int = 0
    stepped: bool = False


class Scheduler:
    def __init__(
        self, ctx: EngineContext, options: RunOptions, emit: Callable[[str], None]
    ) -> None:
        if options.step_item is not None:
            ctx = replace(ctx, settings=replace(ctx.settings, guardrails=NO_GUARDRAILS))
        self.ctx = ctx
        self.options = options
        self.emit = emit
        self.state = _State()
        self.tasks: dict[asyncio.Task[Completion], Run] = {}
        self.started_at: dict[str, float] = {}
        self.stop = asyncio.Event()
        self._seen_version = -1

    # ---- decide ---------------------------------------------------------------------
    def _destructive(self, run: Run, items: dict[str, Item]) -> bool:
        item = items.get(run.item_id)
        if item is None or run.kind is RunKind.TRIAGE:
            return False
        phase = phase_config(self.ctx.settings, item, run)
        return phase is not None and phase.is_destructive

    def _cap_reached(self) -> bool:
        cap = self.options.cap
        if self.options.step_item is not None:
            cap = 1
        return cap is not None and self.state.summary.phases_executed >= cap

    def _targeted(
        self, items: list[Item], running: dict[str, RunningTask], now: datetime
    ) -> tuple[list[Action], HaltReason | None]:
        by_id = {i.id: i for i in items}
        summary = self.state.summary
        targets = self.options.targets
        while self.state.target_index < len(targets):
            target_id = targets[self.state.target_index]
            if target_id in summary.items_blocked and target_id not in running:
                if not self.options.auto_advance:
                    return [], HaltReason.TARGET_BLOCKED
                self.state.breaker = 0
                self.state.target_index += 1
                continue
            target = by_id.get(target_id)
            if target is None or target.status in (ItemStatus.DONE, ItemStatus.BLOCKED):
                if target is None and target_id not in summary.items_completed:
                    self.emit(f"[target] {target_id} not found (archived?); skipping")
                self.state.target_index += 1
                continue
            execution, pipelines = self.ctx.settings.execution, self.ctx.settings.pipelines
            actions = select_targeted_actions(target, items, running, execution, pipelines, now)
            return actions, None
        return [], HaltReason.TARGET_COMPLETED

    def _step_actions(
        self, items: list[Item], running: dict[str, RunningTask], now: datetime
    ) -> tuple[list[Action], HaltReason | None]:
        if self.state.stepped:
            return [], HaltReason.CAP_REACHED
        target = next((i for i in items if i.id == self.options.step_item), None)
        if target is None or target.id in running:
            return [], HaltReason.ALL_DONE_OR_BLOCKED
        execution = replace(self.ctx.settings.execution, max_concurrent=1_000_000)
        actions = select_targeted_actions(
            target, [target], {}, execution, self.ctx.settings.pipelines, now
        )
        return actions, None

    def _choose(
        self, items: list[Item], running: dict[str, RunningTask], now: datetime
    ) -> tuple[list[Action], HaltReason | None]:
        settings = self.ctx.settings
        if self.options.step_item is not None:
            return self._step_actions(items, running, now)
        if self.options.targets:
            return self._targeted(items, running, now)
        only: set[str] | None = None
        if self.options.filter is not None:
            summary = self.state.summary
            matches = self.options.filter.select(items)
            if not matches:
                acted = summary.items_completed or summary.items_blocked
                return [], HaltReason.FILTER_EXHAUSTED if acted else HaltReason.NO_MATCHING_ITEMS
            if all(m.status in (ItemStatus.DONE, ItemStatus.BLOCKED) for m in matches):
                return [], HaltReason.FILTER_EXHAUSTED
            only = {m.id for m in matches}
        if self.options.triage_only:
            fresh = {i.id for i in items if i.status is ItemStatus.NEW}
            only = fresh if only is None else only & fresh
        actions = select_actions(
            items, running, settings.execution, settings.pipelines, now, only=only
        )
        return actions, None

    def _enqueue(
        self, tx: Transaction, item: Item, action: Triage | RunPhase, snapshot: str | None
    ) -> Run:
        kind = RunKind.TRIAGE if isinstance(action, Triage) else RunKind.PHASE
        phase = "triage" if isinstance(action, Triage) else action.phase
        pool = PhasePool.PRE if isinstance(action, Triage) else action.pool
        earlier = [r for r in tx.list_runs(item_id=item.id) if r.phase == phase]
        visit = 1 + sum(1 for r in earlier if r.retry_of is None)
        run = Run(
            id=tx.allocate_run_id(),
            item_id=item.id,
            phase=phase,
            kind=kind,
            queued_at=format_timestamp(tx.now),
            pool=pool,
            visit=visit,
            idempotency_key=idempotency_key(item.id, phase, visit, snapshot),
            snapshot_before=snapshot,
        )
        phase_cfg = phase_config(self.ctx.settings, item, run)
        if phase_cfg is not None and phase_cfg.side_effect:
            run = run.replace(side_effect=True)
        tx.create_run(run, {"kind": kind.value, "visit": visit})
        return run

    def _needs_approval(self, tx: Transaction, item: Item, phase: str) -> bool:
        pipeline = self.ctx.settings.pipeline(item.pipeline_type)
        position = pipeline.locate(phase, item.effective_pool) if pipeline else None
        if position is None or position.phase.approval is not ApprovalGate.BEFORE:
            return False
        return not phase_approved(tx, item.id, phase)

    def _promote(self, tx: Transaction, item: Item, action: Promote) -> Item:
        promoted = transition(item, ItemStatus.IN_PROGRESS, tx.now)
        promoted = touch(
            promoted,
            tx.now,
            phase=action.phase,
            phase_pool=PhasePool.MAIN,
            phase_entered_at=format_timestamp(tx.now),
        )
        tx.save_item(promoted, EventKind.ITEM_TRANSITION, {"promoted": True})
        self.emit(f"{item.id} → in_progress (starting at {action.phase})")
        return promoted

    def _decide(self) -> tuple[bool, HaltReason | None]:
        """One scheduling decision; True when it queued or promoted anything."""
        snapshot = head_commit(self.ctx.root)  # outside the write lock: it runs git
        with self.ctx.store.transaction(scheduling=True) as tx:
            items = tx.list_items()
            by_id = {i.id: i for i in items}
            active = tx.list_runs(statuses=[RunStatus.ACTIVE])
            running = {r.item_id: RunningTask(r.phase, self._destructive(r, by_id)) for r in active}
            actions, halt = self._choose(items, running, tx.now)
            if halt is not None:
                return False, halt
            labels: list[str] = []
            changed = False
            for action in actions:
                item = by_id[action.item_id]
                if isinstance(action, Promote):
                    by_id[item.id] = self._promote(tx, item, action)
                    labels.append(f"promote {item.id}")
                    changed = True
                    continue
                if self._cap_reached():
                    break
                if isinstance(action, RunPhase) and self._needs_approval(tx, item, action.phase):
                    by_id[item.id] = request_approval(tx, item, action.phase, BEFORE)
                    self.state.summary.items_blocked.add(item.id)
                    labels.append(f"{item.id} waits for approval before {action.phase}")
                    changed = True
                    continue
                self._enqueue(tx, by_id[item.id], action, snapshot)
                self.state.summary.phases_executed += 1
                self.state.stepped = self.options.step_item is not None
                phase = "triage" if isinstance(action, Triage) else action.phase
                labels.append(
                    f"triage {item.id}" if isinstance(action, Triage) else f"{item.id} → {phase}"
                )
                changed = True
        if labels:
            self.emit(f"Scheduling: [{', '.join(labels)}]")
        return changed, None

    # ---- claim, execute, complete -----------------------------------------------------
    def _claim_and_start(self) -> None:
        free = self.ctx.settings.execution.max_concurrent - len(self.tasks)
        if self.options.step_item is not None:
            free = 1 - len(self.tasks)
        if free <= 0:
            return
        lease = utc_now() + timedelta(seconds=self.ctx.settings.execution.lease_seconds)
        with self.ctx.store.transaction() as tx:
            claimed = tx.claim_runs(self.ctx.worker_id, free, lease)
            items = {r.item_id: tx.get_item(r.item_id) for r in claimed}
        for run in claimed:
            item = items[run.item_id]
            limit = (
                max_attempts(self.ctx.settings, phase_config(self.ctx.settings, item, run))
                if item is not None
                else 1
            )
            self.emit(f"[{run.item_id}][{run.phase}] Starting (attempt {run.attempt}/{limit})")
            task = asyncio.create_task(execute_run(self.ctx, run.id), name=run.id)
            self.tasks[task] = run
            self.started_at[run.id] = time.monotonic()

    def running(self) -> list[tuple[Run, float]]:
        """The runs in flight with their age in seconds (read by the live panel's thread)."""
        now = time.monotonic()
        return [(run, now - self.started_at.get(run.id, now)) for run in list(self.tasks.values())]

    def _finished(self, completion: Completion) -> None:
        summary = self.state.summary
        run = completion.run
        self.started_at.pop(run.id, None)
        self.emit(
            f"[{run.item_id}][{run.phase}] {completion.worklog_outcome}: {completion.message}"
        )
        summary.cost_usd += run.cost_usd
        if completion.follow_ups:
            summary.follow_ups_created += len(completion.follow_ups)
            self.emit(f"Follow-ups: {', '.join(completion.follow_ups)} added to the backlog")
        for title, duplicate_of in completion.skipped_follow_ups:
            self.emit(f"Follow-up {title!r} skipped: duplicates {duplicate_of}")
        for source, target in completion.merged:
            summary.items_merged += 1
            self.emit(f"{source} merged into {target}")
            append_worklog(
                self.ctx.root, utc_now(), source, "", "triage", "Merged", f"Merged into {target}"
            )
        if completion.completed:
            summary.items_completed.append(completion.item_id)
            self.emit(f"{completion.item_id} completed and archived")
        if completion.blocked:
            summary.items_blocked.add(completion.item_id)
        if completion.completed or (completion.blocked and not completion.exhausted):
            self.state.breaker = 0
        elif completion.exhausted:
            self.state.breaker += 1
        append_worklog(
            self.ctx.root,
            utc_now(),
            completion.item_id,
            completion.title,
            run.phase,
            completion.worklog_outcome,
            completion.message,
        )

    async def _drain(self, *, cancel: bool) -> None:
        if cancel:
            for task in self.tasks:
                task.cancel()
        for task in list(self.tasks):
            try:
                self._finished(await task)
            except asyncio.CancelledError:
                run = self.tasks[task]
                self.emit(f"[{run.item_id}][{run.phase}] Cancelled: shutdown requested")
        self.tasks.clear()

    # ---- wait -------------------------------------------------------------------------
    def _next_due(self) -> datetime | None:
        with self.ctx.store.reader() as tx:
            moments = [
                parse_timestamp(r.not_before)
                for r in tx.list_runs(statuses=[RunStatus.ACTIVE])
                if r.not_before is not None
            ]
            moments += [
                parse_timestamp(i.wake_at)
                for i in tx.list_items()
                if i.wake_at is not None and i.status is not ItemStatus.BLOCKED
            ]
        return min(moments) if moments else None

    def _has_queued(self) -> bool:
        with self.ctx.store.reader() as tx:
            return bool(tx.list_runs(statuses=[RunStatus.ACTIVE], limit=1))

    async def _wait(self, due: datetime | None) -> bool:
        """Sleep until a run finishes, `due` comes, a signal, or a second passes."""
        timeout = IDLE_CHECK_SECONDS
        if due is not None:
            timeout = min(timeout, max((due - utc_now()).total_seconds(), 0.0))
        stopper: asyncio.Future[object] = asyncio.ensure_future(self.stop.wait())
        waiting: set[asyncio.Future[Any]] = {stopper, *self.tasks}
        done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        finished = False
        for future in done:
            if future is stopper:
                continue
            task = next(t for t in self.tasks if t is future)
            self.tasks.pop(task)
            self._finished(task.result())
            finished = True
        return finished

    def _store_changed(self) -> bool:
        version = self.ctx.store.data_version()
        changed = version != self._seen_version
        self._seen_version = version
        return changed

    # ---- the loop ---------------------------------------------------------------------
    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop.set)

    def _remove_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)

    async def run(self) -> RunSummary:
        self._install_signals()
        try:
            halt = await self._loop()
        finally:
            self._remove_signals()
        summary = self.state.summary
        summary.halt_reason = halt
        with self.ctx.store.reader() as tx:
            summary.waiting = waiting_on_dependencies(tx.list_items())
        with self.ctx.store.transaction() as tx:
            tx.append_event(EventKind.SCHEDULER_HALTED, data=summary.to_dict())
        return summary

    async def _loop(self) -> HaltReason:
        with self.ctx.store.transaction() as tx:
            tx.append_event(EventKind.SCHEDULER_STARTED, data={"worker_id": self.ctx.worker_id})
        while True:
            if self.stop.is_set():
                await self._drain(cancel=True)
                return HaltReason.SHUTDOWN_REQUESTED
            if self.state.breaker >= BREAKER_LIMIT:
                self.emit("Circuit breaker tripped: two items in a row exhausted their retries")
                await self._drain(cancel=False)
                return HaltReason.CIRCUIT_BREAKER_TRIPPED
            changed, halt = self._decide()
            self._claim_and_start()
            if not self.tasks:
                queued = self._has_queued()
                if halt is not None and not queued:
                    return halt
                if changed:
                    continue
                if self._next_due() is None:
                    if self._cap_reached():
                        return HaltReason.CAP_REACHED
                    if not queued:
                        return HaltReason.ALL_DONE_OR_BLOCKED
            self._store_changed()
            while True:
                due = self._next_due()
                finished = await self._wait(due)
                if finished or self.stop.is_set() or self._store_changed():
                    break
                if due is not None and due <= utc_now():
                    break
