"""The scheduler loop: decide → enqueue → claim → execute → complete → wait (DESIGN §3).

Up to `max_concurrent` agents run at once as asyncio tasks in one process. The loop
sleeps until a run finishes, something becomes due, the store changes, or a signal
arrives; it never spins.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from phase_golem.agents.orphans import AgentProcess
from phase_golem.clock import utc_now
from phase_golem.domain.events import EventKind
from phase_golem.domain.guardrails import NO_GUARDRAILS
from phase_golem.domain.items import Item
from phase_golem.domain.runs import EndedElsewhere, Run, Step, backing_off
from phase_golem.domain.scheduling import (
    Action,
    Promote,
    RunningTask,
    RunPhase,
    Triage,
    next_moment,
    waiting_on_dependencies,
)
from phase_golem.engine.agent_pauses import Holds, paused_agents
from phase_golem.engine.approvals import BEFORE, request_approval
from phase_golem.engine.claims import (
    ClaimPolicy,
    ClaimRequest,
    can_claim_alone,
    claim_alone,
    claim_in,
    is_destructive,
    startable_runs,
)
from phase_golem.engine.completion import Completion, phase_config
from phase_golem.engine.context import EngineContext, key_new_visits
from phase_golem.engine.control import PauseState, pause_state
from phase_golem.engine.enqueue import enqueue, needs_approval, promote
from phase_golem.engine.executor import cancel_run, execute_run, fail_internally
from phase_golem.engine.finishing import account_for
from phase_golem.engine.lease_sweep import LeaseSweep
from phase_golem.engine.leases import leased
from phase_golem.engine.offloop import settle_then_cancel
from phase_golem.engine.output import Committer, save_on_halt
from phase_golem.engine.recovery import (
    Recovered,
    adopt_run,
    blocked_by,
    take_over,
)
from phase_golem.engine.retries import max_attempts
from phase_golem.engine.selection import LoopState, RunOptions, Selection
from phase_golem.engine.source_loop import SourceIntake
from phase_golem.engine.summary import HaltReason, RunSummary
from phase_golem.engine.wakeups import StopSignals, Wakeups
from phase_golem.faults import (
    MachineFault,
    StoreFault,
    StoreUnavailable,
    abandon_tasks,
    fault_of,
)
from phase_golem.store import BacklogSnapshot, Transaction

BREAKER_LIMIT = 2
LOST_CONNECTION_LIMIT = 5  # connections lost mid-transaction in one session before it stops
OWED_PATIENCE_SECONDS = 60.0  # a push owed elsewhere for longer than this is said


class Scheduler:
    def __init__(
        self,
        ctx: EngineContext,
        options: RunOptions,
        emit: Callable[[str], None],
        recovered: Recovered | None = None,
    ) -> None:
        if options.step_item is not None:
            ctx = replace(ctx, settings=replace(ctx.settings, guardrails=NO_GUARDRAILS))
        self.ctx = ctx
        self.options = options
        self.emit = emit
        self.state = LoopState()
        self.selection = Selection(options, ctx.settings, self.state, emit)
        self.scope: frozenset[str] | None = None
        self.tasks: dict[asyncio.Task[Completion], Run] = {}
        self.started_at: dict[str, float] = {}
        self.stop = asyncio.Event()
        self.signals = StopSignals(self.stop)  # the first one that asked us to stop
        self.wakeups = Wakeups(ctx.store)
        self._recovered = recovered or Recovered()
        self._counted: set[tuple[str, str, int]] = set()
        self._paused_reported: set[str] = set()
        self._claimed: list[tuple[Run, Item | None]] | None = None  # by the last decide
        self._claim_more = False  # the last decide keyed runs after claiming
        self._to_key: list[str] = []  # runs the last decide queued without their key
        self._owed_elsewhere = False  # items wait for another clone's push (shared remote)
        self._owed_since: dict[str, float] = {}  # those items, since when (monotonic)
        self._said_owed: set[str] = set()  # those of them said to wait for long
        self.paused: PauseState | None = None  # as the last decision saw the store's flag
        self.intake = SourceIntake(ctx, options, emit)
        self.committer = Committer(self.ctx, emit)  # run output goes to git off the loop
        self.sweeper = LeaseSweep(self.ctx, emit)
        self.claims = ClaimPolicy(self.ctx, self._counted)

    # ---- decide ---------------------------------------------------------------------
    def _cap_reached(self) -> bool:
        return self.selection.cap_reached()

    def _enqueue(self, tx: Transaction, item: Item, action: Triage | RunPhase) -> Run:
        return enqueue(self.ctx, tx, item, action)

    def _needs_approval(self, tx: Transaction, item: Item, phase: str) -> bool:
        return needs_approval(self.ctx.settings, tx, item, phase)

    def _promote(self, tx: Transaction, item: Item, action: Promote) -> Item:
        promoted = promote(tx, item, action)
        self.emit(f"{item.id} → in_progress (starting at {action.phase})")
        return promoted

    def _decide(self) -> tuple[bool, HaltReason | None]:
        """One scheduling decision; True when it queued or promoted anything."""
        with self.ctx.store.transaction(scheduling=True) as tx:
            # Read under the same lock as the claims below: a pause committed before this
            # decision is seen by it, so no run starts after `pause` returned.
            if self._note_pause(pause_state(tx)):
                self._claimed = []
                return False, None
            # The snapshot as this lock sees it: no table is listed to decide (DESIGN §3).
            backlog = tx.snapshot()
            self.scope = self.selection.scope_of(backlog)
            owed = self.claims.owed_elsewhere(tx)  # read once, for decide and the claim
            choice = self.selection.choose(backlog, self._running(tx, backlog, owed), tx.now)
            self.scope = choice.scope
            if choice.halt is not None:
                return False, choice.halt
            labels, new_visits = self._act(tx, backlog, choice.actions)
            # Runs queued without their key (git had to look, or an earlier session died
            # before keying them) are keyed before anything claims them, so a retry of one
            # killed before its start always has a key to copy (DESIGN §6).
            new_visits += [
                r.id
                for r in backlog.runs()
                if r.step is Step.QUEUED and not r.idempotency_key and r.id not in new_visits
            ]
            request = self._claim_request(tx, owed)
            separately = can_claim_alone(self.ctx)
            if not separately:  # claim in the same transaction: one commit
                self._claimed = claim_in(self.ctx, tx, request)
        if separately:
            self._claimed = claim_alone(self.ctx, request)
        self._to_key = new_visits  # keyed off the loop next (it may run git)
        if labels:
            self.emit(f"Scheduling: [{', '.join(labels)}]")
        return bool(labels), None

    def _running(
        self, tx: Transaction, backlog: BacklogSnapshot, owed: frozenset[str]
    ) -> dict[str, RunningTask]:
        """What holds an item's slot for this decision: its live run, a paused agent, or
        (with a shared remote) another clone's commit not yet pushed."""
        holds = self._holds(tx)
        running = {
            r.item_id: RunningTask(
                r.phase,
                is_destructive(self.ctx.settings, r, backlog.items_by_id),
                waiting=self._waiting(r, tx.now) or holds.run_held(r, backlog.get(r.item_id)),
            )
            for r in backlog.runs_by_id.values()
        }
        running.update(holds.held_items(backlog, set(running)))
        running.update(self._git_owed(owed - set(running)))
        return running

    def _act(
        self, tx: Transaction, backlog: BacklogSnapshot, actions: Sequence[Action]
    ) -> tuple[list[str], list[str]]:
        """Carry out the chosen actions within the cap: what was done (a label each) and
        the runs queued without an idempotency key."""
        labels: list[str] = []
        new_visits: list[str] = []
        changed_here: dict[str, Item] = {}  # what this decision promoted or gated
        for action in actions:
            item = changed_here.get(action.item_id) or backlog.items_by_id[action.item_id]
            if isinstance(action, Promote):
                if not self._cap_reached():
                    changed_here[item.id] = self._promote(tx, item, action)
                    labels.append(f"promote {item.id}")
                continue
            if self._cap_reached():
                break
            if isinstance(action, RunPhase) and self._needs_approval(tx, item, action.phase):
                changed_here[item.id] = request_approval(tx, item, action.phase, BEFORE)
                self.state.summary.items_blocked.add(item.id)
                labels.append(f"{item.id} waits for approval before {action.phase}")
                continue
            run = self._enqueue(tx, item, action)
            if not run.idempotency_key:  # retries and known trees carry their key
                new_visits.append(run.id)
            self._count(run)
            labels.append(
                f"triage {item.id}" if isinstance(action, Triage) else f"{item.id} → {action.phase}"
            )
        return labels, new_visits

    async def _key_new_visits(self) -> None:
        """Key the visits the last decide queued without a key, in a worker thread: it may
        run git, which must not hold up the loop (DESIGN §3 "Cost rules")."""
        run_ids, self._to_key = self._to_key, []
        if not run_ids:
            return
        keyed: int = await settle_then_cancel(key_new_visits, self.ctx, run_ids)
        if keyed:
            self._claim_more = True  # the newly keyed runs may start too

    def _note_pause(self, state: PauseState | None) -> bool:
        """Say once when the scheduler becomes paused or resumed; True while paused."""
        if state is not None and self.paused is None:
            running = len(self.tasks)
            tail = f"; {running} running agent(s) will finish" if running else ""
            self.emit(f"{state.line()}: no new runs start{tail}")
        elif state is None and self.paused is not None:
            self.emit("Scheduler resumed: starting runs again")
        self.paused = state
        return state is not None

    # ---- claim, execute, complete -----------------------------------------------------
    def _waiting(self, run: Run, now: datetime) -> bool:
        """Queued and not startable by us now: its backoff is on, or it is out of scope."""
        queued = run.step is Step.QUEUED
        return queued and (backing_off(run, now) or not self._in_scope(run.item_id))

    def _holds(self, tx: Transaction) -> Holds:
        """Paused agents hold their items back; each newly seen pause is said once."""
        pauses = paused_agents(tx)
        for name in sorted(set(pauses) - self._paused_reported):
            self.emit(pauses[name].line())
        self._paused_reported = set(pauses)
        return Holds(self.ctx.settings, frozenset(pauses))

    def _git_owed(self, owed: frozenset[str]) -> dict[str, RunningTask]:
        """With a shared remote, an item waits (no slot held) while another clone still
        owes the remote its last run's commit (`owed`: those not running anyway)."""
        self._owed_elsewhere = bool(owed)  # their next phases come: no halt meanwhile
        now = time.monotonic()
        self._owed_since = {i: self._owed_since.get(i, now) for i in owed}
        patience = max(self.ctx.settings.execution.lease_seconds, OWED_PATIENCE_SECONDS)
        for item_id, since in sorted(self._owed_since.items()):
            if now - since >= patience and item_id not in self._said_owed:
                self._said_owed.add(item_id)
                self.emit(
                    f"[{item_id}] waits for the clone that ran its last phase to push its "
                    "commit (the work is only there; `phase-golem run` in that clone pushes it)"
                )
        self._said_owed &= owed
        return {item_id: RunningTask("", False, waiting=True) for item_id in owed}

    def _count(self, run: Run) -> None:
        """A visit counts toward `--cap` (and `step`) once, however many tries it takes."""
        key = (run.item_id, run.phase, run.visit)
        if key not in self._counted:
            self._counted.add(key)
            self.state.summary.phases_executed += 1
            self.state.stepped = self.options.step_item is not None

    def _claim_request(self, tx: Transaction, owed: frozenset[str] | None = None) -> ClaimRequest:
        free = self.ctx.settings.execution.max_concurrent - len(self.tasks)
        if self.options.step_item is not None:
            free = 1 - len(self.tasks)
        return self.claims.request(tx, free, self.scope, self._cap_reached(), owed)

    def _claim_and_start(self) -> None:
        """Start what the last decide claimed, then claim on our own what it could not:
        everything when it halted, the runs it keyed after its claim otherwise (those
        it claimed are ours already, and would wait a lease if dropped)."""
        claimed, self._claimed = self._claimed, None
        more, self._claim_more = self._claim_more or claimed is None, False
        self._start(claimed or [])
        if more:
            with self.ctx.store.transaction() as tx:
                self._start(claim_in(self.ctx, tx, self._claim_request(tx)))

    def _start(self, claimed: list[tuple[Run, Item | None]]) -> None:
        for run, item in claimed:
            self._count(run)
            limit = (
                max_attempts(self.ctx.settings, phase_config(self.ctx.settings, item, run))
                if item is not None
                else 1
            )
            self.emit(f"[{run.item_id}][{run.phase}] Starting (attempt {run.attempt}/{limit})")
            task = asyncio.create_task(self._execute(run, item), name=run.id)
            self.tasks[task] = run
            self.started_at[run.id] = time.monotonic()

    async def _execute(self, run: Run, item: Item | None) -> Completion:
        # What it starts from must be in git first; that may wait for other runs' commits
        # and pushes, and the lease the claim just took is kept meanwhile.
        ctx = self.ctx
        async with leased(ctx.store, run.id, ctx.worker_id, ctx.settings.execution, at_once=False):
            await self.committer.before_start(run, item)
        return await execute_run(ctx, run.id)

    def running(self) -> list[tuple[Run, float]]:
        """The runs in flight with their age in seconds (read by the live panel's thread)."""
        now = time.monotonic()
        return [(run, now - self.started_at.get(run.id, now)) for run in list(self.tasks.values())]

    def _ours(self) -> set[str]:
        return {run.id for run in self.tasks.values()}

    async def _sweep(self) -> None:
        """Every half lease: take over runs whose owner stopped renewing their lease."""
        recovered = await self.sweeper.sweep(self._ours())
        if recovered is not None:
            self._take_up(recovered)

    def _take_up(self, recovered: Recovered) -> None:
        """Adopt live agents; finish reconciled runs like ours; count what waits for a human."""
        taken = take_over(self.ctx, recovered.adopt)
        for run in recovered.adopt:
            self._start_adoption(
                run,
                overlapped=len(recovered.adopt) > 1 or run.id in recovered.shared,
                agents=recovered.agents.get(run.id),
                taken=taken.get(run.id),
            )
        for completion in recovered.completed:
            self._finished(completion)
        self.state.summary.items_blocked.update(blocked_by(self.ctx.store, recovered.runs))

    def _start_adoption(
        self,
        run: Run,
        *,
        overlapped: bool,
        agents: list[AgentProcess] | None,
        taken: Run | None,
    ) -> None:
        adopting = adopt_run(self.ctx, run.id, overlapped=overlapped, agents=agents, taken=taken)
        task = asyncio.create_task(adopting, name=run.id)
        self.tasks[task] = run
        self.started_at[run.id] = time.monotonic()

    def _finished(self, completion: Completion) -> None:
        self.started_at.pop(completion.run.id, None)
        account_for(completion, self.state, self.ctx.root, self.emit)
        self.committer.save(completion)

    def _collect(self, task: asyncio.Task[Completion]) -> None:
        """Account for one finished task; a failure of ours never takes the loop down."""
        run = self.tasks.pop(task)
        self.started_at.pop(run.id, None)
        if task.cancelled():
            cancel_run(self.ctx, run.id)
            why = "shutdown requested" if self.stop.is_set() else "its item changed"
            self.emit(f"[{run.item_id}][{run.phase}] Cancelled: {why}")
            return
        error = task.exception()
        if error is None:
            self._finished(task.result())
            return
        fault = fault_of(error)
        if fault is not None:  # the disk or the database failed: stop (see run())
            raise fault
        if isinstance(error, EndedElsewhere):  # its lease ran out; another worker ended it
            self.emit(f"[{run.item_id}][{run.phase}] Ended elsewhere: {error}")
            return
        self.emit(f"[{run.item_id}][{run.phase}] Internal error: {error!r}")
        self.state.breaker += 1
        if fail_internally(self.ctx, run.id, error):
            self.state.summary.items_blocked.add(run.item_id)

    async def _drain(self, *, cancel: bool) -> None:
        """Wait for every running task; a stop request while waiting cancels the rest."""
        if cancel:
            for task in self.tasks:
                task.cancel()
        while self.tasks:
            waiting: set[asyncio.Future[Any]] = set(self.tasks)
            stopper: asyncio.Future[Any] = asyncio.ensure_future(self.stop.wait())
            if not cancel:  # once cancelling, only the tasks are waited for (no spin)
                waiting.add(stopper)
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if stopper in done and not cancel:
                cancel = True
                for task in self.tasks:
                    task.cancel()
            for task in [t for t in self.tasks if t in done]:
                self._collect(task)

    # ---- wait -------------------------------------------------------------------------
    def _in_scope(self, item_id: str) -> bool:
        return self.scope is None or item_id in self.scope

    def _next_due(self) -> datetime | None:
        """The next future moment something waits for: a backoff, a sleeping item, or
        the next intake source time."""
        backlog = self.ctx.store.snapshot()
        startable = startable_runs(self.ctx, backlog, self._in_scope)
        return self.intake.earliest(next_moment(startable, backlog, utc_now(), self._in_scope))

    def _has_queued(self) -> bool:
        return bool(startable_runs(self.ctx, self.ctx.store.snapshot(), self._in_scope))

    async def _wait(self, due: datetime | None) -> bool:
        """Sleep until a run finishes, `due` comes, a signal, or a commit is announced (else a
        second passes, when the store cannot announce commits)."""
        if self.wakeups.announced():
            return False  # the caller checks what changed
        stopper: asyncio.Future[Any] = asyncio.ensure_future(self.stop.wait())
        woken = self.wakeups.waiter()
        waiting: set[asyncio.Future[Any]] = {stopper, woken, *self.tasks, *self.intake.pending()}
        done, _ = await asyncio.wait(
            waiting, timeout=self.wakeups.timeout(due), return_when=asyncio.FIRST_COMPLETED
        )
        stopper.cancel()
        woken.cancel()
        self.wakeups.after_wait()
        finished = [t for t in self.tasks if t in done]
        for task in finished:
            self._collect(task)
        if self.intake.collect():
            self._stop_ended_runs()
            return True
        return bool(finished)

    def _store_changed(self) -> bool:
        changed = self.wakeups.store_changed()
        if changed:
            self.intake.refresh()  # `sources run` elsewhere, say, moved a schedule
            self._stop_ended_runs()
        return changed

    def _stop_ended_runs(self) -> None:
        """Stop the agents of our runs that ended in the store under us (an item closed
        at its source cancels its run): nothing they do any more can be recorded."""
        live = self.ctx.store.snapshot().runs_by_id
        for task, run in self.tasks.items():
            if run.id not in live and not task.done():
                task.cancel()

    # ---- the loop ---------------------------------------------------------------------
    async def run(self) -> RunSummary:
        self.signals.install()
        stop_listening = self.wakeups.listen()
        try:
            halt = await self._loop()
            await self.committer.drain()  # every run's output is in git before the halt commit
        except (StoreFault, MachineFault):
            await abandon_tasks(self.tasks)
            with contextlib.suppress(BaseException):
                await self.committer.drain()
            raise
        finally:
            await self.intake.settle()
            self.signals.remove()
            if stop_listening is not None:
                stop_listening()
        summary = self.state.summary
        summary.halt_reason = halt
        summary.stop_signal = self.signals.first if halt is HaltReason.SHUTDOWN_REQUESTED else None
        save_on_halt(self.ctx, halt.value, self.emit)
        summary.waiting = waiting_on_dependencies(self.ctx.store.snapshot())
        with self.ctx.store.reader() as tx:
            summary.agents_paused = [p.line() for p in paused_agents(tx).values()]
        with self.ctx.store.transaction() as tx:
            tx.append_event(EventKind.SCHEDULER_HALTED, data=summary.to_dict())
        return summary

    async def _loop(self) -> HaltReason:
        with self.ctx.store.transaction() as tx:
            tx.append_event(EventKind.SCHEDULER_STARTED, data={"worker_id": self.ctx.worker_id})
        self._take_up(self._recovered)
        self.intake.start()
        for lost in range(1, LOST_CONNECTION_LIMIT + 1):
            try:
                return await self._cycles()
            except StoreUnavailable as exc:
                # What the lost transaction did rolled back: deciding again from the store
                # is safe (the store waits for its server first). A run task whose store
                # call was lost is gone from ours; its lease runs out and the sweep takes
                # it over. Only a connection lost again and again stops the worker.
                if lost == LOST_CONNECTION_LIMIT:
                    raise
                self.emit(f"{exc}; carrying on")
        raise AssertionError("unreachable")

    async def _cycles(self) -> HaltReason:
        """decide → claim → start → wait, until something says stop."""
        while True:
            self.committer.check()  # a fault while saving run output stops the loop
            if self.stop.is_set():
                await self._drain(cancel=True)
                return HaltReason.SHUTDOWN_REQUESTED
            if self.state.breaker >= BREAKER_LIMIT:
                self.emit("Circuit breaker tripped: two items in a row exhausted their retries")
                await self._drain(cancel=False)
                if self.stop.is_set():
                    return HaltReason.SHUTDOWN_REQUESTED
                return HaltReason.CIRCUIT_BREAKER_TRIPPED
            await self._sweep()
            self.intake.fire()
            changed, halt = self._decide()
            await self._key_new_visits()
            self._claim_and_start()
            if not self.tasks and self.paused is None:
                if self._cap_reached():
                    return HaltReason.CAP_REACHED
                queued = self._has_queued()
                if halt is not None and not queued:
                    return halt
                if changed:
                    continue
                idle = not queued and not self.intake.busy and not self._owed_elsewhere
                if self._next_due() is None and idle:
                    return HaltReason.ALL_DONE_OR_BLOCKED
            self._store_changed()
            while True:
                due = self._next_due()
                finished = await self._wait(due)
                if finished or self.stop.is_set() or self._store_changed():
                    break
                if due is not None and due <= utc_now():
                    break
                if self.sweeper.others_to_sweep(self._ours()):  # someone else's may have died
                    break
