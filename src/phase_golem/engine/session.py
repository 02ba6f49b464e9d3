"""One `run`, `triage` or `step`: lock, preflight, recover, schedule, summarise."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from phase_golem.agents.process import kill_all_groups
from phase_golem.domain.errors import DomainError
from phase_golem.domain.items import Item, ItemStatus, split_item_id
from phase_golem.domain.pipelines import Isolation, Settings
from phase_golem.domain.runs import Run
from phase_golem.engine.commits import save_all, unaccounted_changes
from phase_golem.engine.context import EngineContext, run_directory
from phase_golem.engine.lock import LockHeld, ProcessLock
from phase_golem.engine.notify import BackgroundDelivery, Deliverer
from phase_golem.engine.output import publisher
from phase_golem.engine.owed import pending_runs
from phase_golem.engine.preflight import preflight
from phase_golem.engine.recovery import (
    Recovered,
    recover_interrupted_runs,
)
from phase_golem.engine.scheduler import Scheduler
from phase_golem.engine.selection import RunOptions
from phase_golem.engine.summary import RunSummary
from phase_golem.engine.trees import tree_key
from phase_golem.engine.workspaces import TreeSnapshots, change_since_start, run_workdir
from phase_golem.engine.worktree_cleanup import prune_worktrees
from phase_golem.project import SETUP_FILES, Project, ProjectError, setup_commit_command
from phase_golem.store import Store
from phase_golem.workspace.git import (
    GitError,
    clear_stale_locks,
    current_branch,
    foreign_lock,
    head_commit,
    identity_problem,
    repository_problem,
)
from phase_golem.workspace.remote import push_unpushed, remote_exists
from phase_golem.workspace.worktrees import existing_worktrees, worktrees_dir


def validate_targets(project: Project, targets: tuple[str, ...]) -> None:
    """Format, existence and duplicates, all before anything runs (Phase Golem)."""
    seen: set[str] = set()
    store = project.store()
    with store.reader() as tx:
        for target in targets:
            split_item_id(target)
            if target in seen:
                raise DomainError(f"--target {target} is given twice")
            seen.add(target)
            if tx.get_item(target) is None:
                raise DomainError(f"--target {target}: no such item")


def check_step_item(project: Project, item_id: str) -> None:
    with project.store().reader() as tx:
        item = tx.require_item(item_id)
    if item.archived or item.status is ItemStatus.DONE:
        raise DomainError(f"{item_id} is done; there is no phase left to step")
    if item.status is ItemStatus.BLOCKED:
        raise DomainError(f"{item_id} is blocked; unblock or approve it first")


def _archived_dependencies(store: Store, active: list[Item]) -> set[str]:
    """The dependencies that are not active items but archived ones (those are met)."""
    known = {i.id for i in active}
    wanted = sorted({d for i in active for d in i.dependencies if d not in known})
    with store.reader() as tx:
        found = (tx.get_item(dep) for dep in wanted)
        return {item.id for item in found if item is not None and item.archived}


def _settle_the_tree(ctx: EngineContext, recovered: Recovered, emit: Callable[[str], None]) -> None:
    """Owed commits first, leftovers recorded, then the clean tree (DESIGN §8)."""
    root = ctx.root
    try:
        held = _overlapping_adopted(ctx, recovered)
        for commit in save_all(ctx.store, root, hold=held, publish=publisher(ctx)):
            emit(f"[recovery] committed the output of runs finished before a crash: {commit[:12]}")
        if ctx.settings.execution.isolation is Isolation.WORKTREE:
            removed, kept = prune_worktrees(ctx.store, root)
            for item_id in removed:
                emit(f"[worktrees] removed the worktree of {item_id} (done, closed or gone)")
            for item_id in kept:
                emit(f"[worktrees] kept the worktree of {item_id}: git would not remove it")
            return
        accounted = _adopted_paths(ctx, recovered.adopt) | {p for ps in held.values() for p in ps}
        changes = unaccounted_changes(ctx.store, root, accounted)
    except GitError as exc:
        raise ProjectError(f"git: {exc}") from None
    if changes:
        raise ProjectError(_dirty_tree_message(changes))


def _clear_git_locks(root: Path, emit: Callable[[str], None]) -> None:
    """Before any state changes: our killed commands' locks go, anyone else's stops us."""
    try:
        for tree in [root, *(worktrees_dir(root) / i for i in existing_worktrees(root))]:
            if not (tree / ".git").exists():
                continue
            if clear_stale_locks(tree):
                emit(f"[recovery] removed git locks a killed command of ours left in {tree}")
            lock = foreign_lock(tree)
            if lock is not None:
                raise ProjectError(
                    f"git lock {lock} exists and is not ours: another git process is running "
                    "or was killed; remove the file once no git runs there"
                )
    except GitError as exc:
        raise ProjectError(f"git: {exc}") from None


def _dirty_tree_message(changes: list[str]) -> str:
    """One line: what is uncommitted, and what to do (the exact command after `init`)."""
    setup = [name for name in SETUP_FILES if name in changes]
    if setup and set(changes) <= set(SETUP_FILES):
        return (
            f"{' and '.join(setup)} from `phase-golem init` are not committed yet; "
            f"run: {setup_commit_command(setup)}"
        )
    shown = ", ".join(changes[:5]) + (f" and {len(changes) - 5} more" if len(changes) > 5 else "")
    return f"the working tree has uncommitted changes ({shown}); commit or stash them first"


def _overlapping_adopted(ctx: EngineContext, recovered: Recovered) -> dict[str, tuple[str, ...]]:
    """Owed changes of runs that shared a tree with an agent we are about to adopt while
    it ran: their batch waits for it (it may have written their paths, or they its), as
    during a run. Run id → its touched paths. The adopted runs that had such company are
    marked as overlapped in `recovered`."""
    if not recovered.adopt:
        return {}
    orphans: dict[str, list[Run]] = {}
    owed = pending_runs(ctx.store)
    with ctx.store.reader() as tx:
        for run in recovered.adopt:
            item = tx.get_item(run.item_id)
            if item is not None:
                workdir = run_workdir(ctx.root, ctx.settings, item, run)
                orphans.setdefault(tree_key(ctx.root, workdir), []).append(run)
        held: dict[str, tuple[str, ...]] = {}
        for tree, run_id, touched in owed:
            other = tx.get_run(run_id)
            if other is None or tree not in orphans:
                continue
            company = [o for o in orphans[tree] if _overlapped(other, o)]
            if company:
                held[run_id] = touched
                recovered.shared.update(o.id for o in company)
    return held


def _overlapped(finished: Run, orphan: Run) -> bool:
    """The finished run was still at work when the orphan began (ISO times compare)."""
    if orphan.started_at is None:
        return False
    return finished.ended_at is None or finished.ended_at >= orphan.started_at


def _adopted_paths(ctx: EngineContext, adopted: list[Run]) -> set[str]:
    """Paths the agents we are about to adopt have touched so far: theirs, not the user's."""
    paths: set[str] = set()
    store: Store = ctx.store
    snapshots = TreeSnapshots()  # one snapshot per tree for all of them
    for run in adopted:
        with store.reader() as tx:
            item = tx.get_item(run.item_id)
        if item is None:
            continue
        directory = run_directory(ctx.root, run.id)
        change = change_since_start(
            ctx.root, ctx.settings, item, run, directory, overlapped=True, snapshots=snapshots
        )
        if change is not None:
            paths.update(change.touched)
    return paths


def _repository_problems(root: Path, settings: Settings) -> list[str]:
    """The repository's state, checked with the rest of preflight (the clean tree waits
    for recovery, which may commit or explain what is dirty)."""
    try:
        problem = repository_problem(root)
        if problem is not None:
            return [problem]  # not a repository, detached, mid-rebase: the rest can wait
        problems = []
        identity = identity_problem(root)
        if identity is not None:
            problems.append(identity)
        if settings.execution.isolation is Isolation.WORKTREE and head_commit(root) is None:
            problems.append("worktree isolation needs a first commit to branch from")
        remote = settings.execution.remote
        if remote is not None and not remote_exists(root, remote):
            problems.append(
                f"execution.remote: this clone has no git remote {remote!r} to share item "
                f"branches through (add it: git remote add {remote} URL)"
            )
        return problems
    except GitError as exc:
        return [f"git: {exc}"]


def _push_unpushed(ctx: EngineContext, emit: Callable[[str], None]) -> None:
    """Item commits a kill kept from the shared remote go there before any new run."""
    remote = ctx.settings.execution.remote
    if remote is None:
        return
    try:
        pushed, kept = push_unpushed(ctx.root, remote)
    except GitError as exc:
        emit(f"[recovery] git: {exc}")
        return
    for branch in pushed:
        emit(f"[recovery] pushed {branch} to {remote}: its last commits had not reached it")
    for branch in kept:
        emit(
            f"[recovery] {branch} here and on {remote} have diverged: merged when this "
            "worker next runs its item, kept here meanwhile"
        )


class _CutShort(Exception):
    """A second stop signal during the last deliveries: exit now, the rest waits."""


def _cut_short(_sig: int, _frame: object) -> None:
    raise _CutShort


def _finish_delivery(delivery: BackgroundDelivery, emit: Callable[[str], None]) -> None:
    """The halt's grace of delivery; another Ctrl-C or SIGTERM ends it at once (a row
    sent but not yet marked goes again, with the same key, from the next deliverer)."""
    previous = {sig: signal.signal(sig, _cut_short) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        report = delivery.finish()
    except _CutShort:
        emit("Notifications: delivery cut short by a second signal; pending ones wait")
        return
    except Exception as exc:  # never hide why the run ended behind a delivery problem
        emit(f"Notifications: delivery stopped early ({type(exc).__name__}); pending ones wait")
        return
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if report.retrying or report.failed:
        emit(
            f"Notifications: {len(report.retrying)} will be retried "
            f"(phase-golem notifications send), {len(report.failed)} failed"
        )


def run_session(
    project: Project,
    options: RunOptions,
    emit: Callable[[str], None],
    watch: Callable[[Scheduler], None] | None = None,
) -> RunSummary:
    store = project.store()
    settings = project.config.settings
    lock = ProcessLock(project.state_dir)
    try:
        lock.acquire()
    except LockHeld as exc:
        raise ProjectError(str(exc)) from None
    try:
        # The one full load of the backlog: the snapshot the scheduler goes on reading.
        active = store.snapshot().items()
        archived = _archived_dependencies(store, active)
        problems = preflight(settings, project.config.base_dir, project.root, active, archived)
        problems += _repository_problems(project.root, settings)
        if len(problems) == 1:
            raise ProjectError(problems[0])
        if problems:  # every problem at once: one fix-and-retry, not one per problem
            raise ProjectError(f"preflight failed: {'; '.join(problems)}")
        ctx = EngineContext(
            root=project.root,
            base_dir=project.config.base_dir,
            settings=settings,
            store=store,
            # Host, pid and start time: unique across the hosts sharing one PostgreSQL store.
            worker_id=f"{socket.gethostname()}:{os.getpid()}:{int(time.time())}",
            base_branch=current_branch(project.root) or "main",
        )
        _clear_git_locks(project.root, emit)
        recovered = recover_interrupted_runs(store, settings, project.root, ctx.host)
        for run_id in recovered.runs:
            emit(f"[recovery] {run_id} was interrupted; retried, reconciled or held for a decision")
        for run in recovered.adopt:
            emit(f"[recovery] {run.id}: its agent outlived the last orchestrator; adopting it")
        _settle_the_tree(ctx, recovered, emit)
        _push_unpushed(ctx, emit)
        scheduler = Scheduler(ctx, options, emit, recovered=recovered)
        if watch is not None:
            watch(scheduler)
        deliverer = Deliverer(
            store, settings.notify, project.root, public_url=settings.serve.public_url
        )
        delivery = BackgroundDelivery(deliverer)
        delivery.start()  # beside the scheduler: a slow sink never delays a decision
        try:
            return asyncio.run(scheduler.run())
        finally:
            _finish_delivery(delivery, emit)
    finally:
        kill_all_groups()
        lock.release()
