"""One `run`, `triage` or `step`: lock, preflight, recover, schedule, summarise."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable

from phase_golem.agents.process import kill_all_groups
from phase_golem.domain.errors import DomainError
from phase_golem.domain.items import ItemStatus, split_item_id
from phase_golem.engine.executor import EngineContext
from phase_golem.engine.lock import LockHeld, ProcessLock
from phase_golem.engine.preflight import preflight
from phase_golem.engine.recovery import recover_interrupted_runs
from phase_golem.engine.scheduler import Scheduler
from phase_golem.engine.selection import RunOptions
from phase_golem.engine.summary import RunSummary
from phase_golem.project import Project, ProjectError


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
        with store.reader() as tx:
            everything = tx.list_items(include_archived=True)
        active = [i for i in everything if not i.archived]
        archived = {i.id for i in everything if i.archived}
        problems = preflight(settings, project.config.base_dir, project.root, active, archived)
        if problems:
            raise ProjectError(f"preflight failed: {'; '.join(problems)}")
        recovered = recover_interrupted_runs(store, settings, project.root)
        for run_id in recovered.runs:
            emit(f"[recovery] {run_id} was interrupted; retried, reconciled or held for a decision")
        for run in recovered.adopt:
            emit(f"[recovery] {run.id}: its agent outlived the last orchestrator; adopting it")
        ctx = EngineContext(
            root=project.root,
            base_dir=project.config.base_dir,
            settings=settings,
            store=store,
            worker_id=f"{socket.gethostname()}:{os.getpid()}",
        )
        scheduler = Scheduler(ctx, options, emit, recovered=recovered)
        if watch is not None:
            watch(scheduler)
        return asyncio.run(scheduler.run())
    finally:
        kill_all_groups()
        lock.release()
