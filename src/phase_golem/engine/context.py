"""What every part of the engine works with: its context (root, settings, store, worker,
the agent seam, the trees in use) and the visit keys that make retries idempotent."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from phase_golem.agents.base import AgentAdapter, AgentRequest
from phase_golem.agents.runner import AgentOutcome, run_agent
from phase_golem.domain.events import EventKind
from phase_golem.domain.hosts import Host
from phase_golem.domain.items import Item
from phase_golem.domain.pipelines import Settings
from phase_golem.domain.runs import Holder, Run
from phase_golem.engine.completion import phase_config
from phase_golem.engine.known_trees import KnownTrees
from phase_golem.engine.trees import TreeTracker, tree_key
from phase_golem.engine.workspaces import SNAPSHOT_EXCLUDES, run_workdir
from phase_golem.host import this_host
from phase_golem.store import Store
from phase_golem.workspace.snapshot import WorkspaceSnapshot


def idempotency_key(item_id: str, phase: str, visit: int, snapshot: str | None) -> str:
    """`ik:` + sha256 of canonical JSON (sorted keys, compact separators), DESIGN §6."""
    canonical = json.dumps(
        {"item": item_id, "phase": phase, "visit": visit, "snapshot": snapshot},
        sort_keys=True,
        separators=(",", ":"),
    )
    return "ik:" + hashlib.sha256(canonical.encode()).hexdigest()


def run_directory(root: Path, run_id: str) -> Path:
    return root / ".phase-golem" / "runs" / run_id


class AgentRunner(Protocol):
    def __call__(
        self,
        adapter: AgentAdapter,
        request: AgentRequest,
        *,
        max_result_bytes: int,
        on_start: Callable[[int], None] | None = None,
    ) -> Awaitable[AgentOutcome]: ...


@dataclass(frozen=True)
class EngineContext:
    root: Path
    base_dir: Path
    settings: Settings
    store: Store
    worker_id: str
    # The seam below the engine: real subprocesses by default; the benchmark swaps in an
    # agent that answers at once to measure the engine itself.
    agent_runner: AgentRunner = run_agent
    # The branch worktrees start from and merges go into (the root's branch at start).
    base_branch: str = "main"
    trees: TreeTracker = field(default_factory=TreeTracker)
    # The last exact snapshot of each tree, reused while provably still exact.
    known: KnownTrees = field(default_factory=lambda: KnownTrees(SNAPSHOT_EXCLUDES))
    # The host and boot this worker's agents run in, recorded on each run with its pid.
    host: Host = field(default_factory=this_host)

    def current_tree(self, workdir: Path) -> WorkspaceSnapshot:
        """The tree as it is now (a before-snapshot): reused when nothing changed it."""
        return self.known.current(workdir, self.trees, tree_key(self.root, workdir))

    def fresh_tree(self, workdir: Path) -> WorkspaceSnapshot:
        """The tree as it is now, looked at again (an after-snapshot)."""
        return self.known.take(workdir, self.trees, tree_key(self.root, workdir))


def timeout_seconds(ctx: EngineContext, item: Item, run: Run) -> float:
    phase = phase_config(ctx.settings, item, run)
    if phase is not None and phase.timeout_seconds is not None:
        return phase.timeout_seconds
    return ctx.settings.execution.phase_timeout_minutes * 60


def key_new_visits(ctx: EngineContext, run_ids: list[str]) -> int:
    """Give new visits their key as soon as they are queued, before anything can retry them.

    The key comes from the snapshot of the tree the visit will work in, taken before its
    first attempt (DESIGN §6); a retry, even of a run that died before it started, copies it.
    Returns how many runs it keyed.
    """
    if not run_ids:
        return 0
    with ctx.store.reader() as tx:
        runs = [r for r in (tx.get_run(i) for i in run_ids) if r and not r.idempotency_key]
        items = {r.item_id: tx.get_item(r.item_id) for r in runs}
    snapshots: dict[Path, str] = {}
    keys: dict[str, str] = {}
    for run in runs:
        item = items[run.item_id]
        if item is None:
            continue
        workdir = run_workdir(ctx.root, ctx.settings, item, run)
        workdir = workdir if workdir.is_dir() else ctx.root  # its worktree comes at start
        if workdir not in snapshots:
            snapshots[workdir] = ctx.current_tree(workdir).id
        keys[run.id] = idempotency_key(item.id, run.phase, run.visit, snapshots[workdir])
    if not keys:
        return 0
    keyed_now = 0
    with ctx.store.transaction() as tx:
        for run_id, key in keys.items():
            current = tx.get_run(run_id)
            if current is not None and current.is_active and not current.idempotency_key:
                keyed = current.replace(idempotency_key=key)
                tx.save_run(keyed, EventKind.RUN_UPDATED, {"idempotency_key": key})
                keyed_now += 1
    return keyed_now


def known_key(ctx: EngineContext, item: Item, run: Run) -> str | None:
    """A new visit's key from the tree as it provably still is, without running git (so
    `decide` can queue it with its key at once); None when git must look first."""
    workdir = run_workdir(ctx.root, ctx.settings, item, run)
    workdir = workdir if workdir.is_dir() else ctx.root  # its worktree comes at start
    known = ctx.known.still_exact(workdir, ctx.trees, tree_key(ctx.root, workdir))
    if known is None:
        return None
    return idempotency_key(item.id, run.phase, run.visit, known.id)


def ours(ctx: EngineContext) -> Holder:
    """This worker, as the holder of the runs it claimed or adopted."""
    return Holder(ctx.worker_id)
