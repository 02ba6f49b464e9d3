"""After a run: its output goes to git (DESIGN §8), and a finished item's worktree goes.

Called by the scheduler once a run's completion is in the store. A git problem never
takes the loop down: what is owed stays recorded and is saved on halt or at next start.
The scheduler hands completions to a `Committer`, which saves them in one worker thread,
off the event loop (DESIGN §3 "Cost rules"); runs that finish while a commit is under
way are saved together next, as one batch per tree.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import PurePosixPath

from phase_golem.domain.items import Item
from phase_golem.domain.runs import Run, RunKind
from phase_golem.engine.commits import (
    COMMITTED_BLOBS,
    ROOT_TREE,
    Publish,
    commit_now,
    flush_tree,
    halt_commit,
    save_all,
)
from phase_golem.engine.completion import Completion, phase_config
from phase_golem.engine.context import EngineContext
from phase_golem.engine.trees import tree_path
from phase_golem.engine.workspaces import run_workdir
from phase_golem.workspace.git import GitError
from phase_golem.workspace.remote import push_item_branch
from phase_golem.workspace.worktrees import remove_worktree


def save_run_output(
    ctx: EngineContext, completion: Completion, emit: Callable[[str], None]
) -> None:
    """Commit what the run owes git: at once, or as the tree's batch once it is idle."""
    change, tree = completion.change, completion.tree
    try:
        if change is not None and tree is not None:
            commits = []
            publish = publisher(ctx)
            if change.succeeded and change.immediate:
                commits.append(commit_now(ctx.store, ctx.root, tree, change, publish))
            hold = lambda: ctx.trees.unsettled(tree)  # noqa: E731 (asked once entries are read)
            commits += flush_tree(ctx.store, ctx.root, tree, hold, publish)
            made = [c for c in commits if c]
            if made:  # HEAD moved and the index changed; the files are as they were
                blobs = [COMMITTED_BLOBS.get(c) for c in made]
                known = None if None in blobs else {p: b for m in blobs if m for p, b in m.items()}
                ctx.known.committed(tree_path(ctx.root, tree), made[-1], known)
        in_worktree = tree is not None and tree != ROOT_TREE
        kept = (
            in_worktree
            and completion.completed
            and not remove_worktree(ctx.root, completion.item_id, delete_merged_branch=True)
        )
        if kept:
            emit(f"[{completion.item_id}] its worktree is kept: git would not remove it")
    except GitError as exc:
        emit(f"[{completion.item_id}] git: {exc} (kept as owed; retried on halt and at start)")


def publisher(ctx: EngineContext) -> Publish:
    """With a shared remote, an item's commit goes there before it is recorded as made:
    other workers pick the item up from the remote (DESIGN §14)."""
    remote = ctx.settings.execution.remote
    if remote is None:
        return lambda _tree: None

    def publish(tree: str) -> None:
        if tree != ROOT_TREE:  # an item's worktree: its branch; the root's is not ours
            push_item_branch(ctx.root, remote, PurePosixPath(tree).name)

    return publish


def save_on_halt(ctx: EngineContext, reason: str, emit: Callable[[str], None]) -> None:
    """Everything still owed, then what the orchestrator itself wrote (the halt commit)."""
    try:
        save_all(ctx.store, ctx.root, publish=publisher(ctx))
        halt_commit(ctx.store, ctx.root, reason)
    except GitError as exc:
        emit(f"git: could not save the final state: {exc}")


class Committer:
    """Saves completed runs' output in a worker thread, one batch at a time, in order.

    Completions handed over while a batch is being saved wait for the next one, so the
    runs that finished together cost one round of git per tree. A run that must start
    from the commits made before it (in an item's worktree, or a destructive or
    side-effect phase) waits (`ready`) until they are saved, exactly as when they were
    made on the loop. A fault in the thread (the store failed) is raised again on the
    loop by `check` and `drain`.
    """

    def __init__(self, ctx: EngineContext, emit: Callable[[str], None]) -> None:
        self._ctx = ctx
        self._emit = emit
        self._queued: list[Completion] = []
        self._worker: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._owed: dict[str, int] = {}  # item id → its completions not saved yet
        self._waiting: dict[str, list[asyncio.Future[None]]] = {}

    def save(self, completion: Completion) -> None:
        """Queue a completion's output; it is saved soon, after those queued before it."""
        self._queued.append(completion)
        self._owed[completion.item_id] = self._owed.get(completion.item_id, 0) + 1
        if self._worker is None or self._worker.done():
            self._worker = asyncio.ensure_future(self._work())

    async def ready(self, item_id: str | None) -> None:
        """Return once every completion of this item (None: of any) handed over so far
        is saved."""
        while self._owed.get(item_id) if item_id is not None else self._owed:
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.setdefault(item_id or "", []).append(waiter)
            await waiter

    async def before_start(self, run: Run, item: Item | None) -> None:
        """Wait until the output a claimed run must start from is in git: in its item's
        worktree, that of the item's earlier runs; for a destructive or side-effect phase,
        everything handed over so far. (A run in the shared tree may start while the batch
        of other runs is being committed: their files are in the tree either way, and
        when it overlapped them their commit waited for its group anyway.)"""
        if item is None or run.side_effect or _destructive(self._ctx, run, item):
            await self.ready(None)
        elif run_workdir(self._ctx.root, self._ctx.settings, item, run) != self._ctx.root:
            await self.ready(item.id)

    def _saved(self, batch: list[Completion]) -> None:
        for completion in batch:
            left = self._owed.get(completion.item_id, 1) - 1
            if left > 0:
                self._owed[completion.item_id] = left
                continue
            self._owed.pop(completion.item_id, None)
            self._wake(completion.item_id)
        if not self._owed:
            self._wake("")  # those waiting for everything

    def _wake(self, key: str) -> None:
        for waiter in self._waiting.pop(key, []):
            if not waiter.done():
                waiter.set_result(None)

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()

        def emit(line: str) -> None:
            loop.call_soon_threadsafe(self._emit, line)

        while self._queued and self._failure is None:
            batch, self._queued = self._queued, []
            work = asyncio.ensure_future(asyncio.to_thread(self._save_all, batch, emit))
            while not work.done():  # a cancel never abandons a commit half made
                with contextlib.suppress(BaseException):  # its outcome is read below
                    await asyncio.shield(work)
            self._failure = work.exception()
            self._saved(batch)
        if self._failure is not None:  # nothing more is saved: nobody waits for it
            self._saved(self._queued)

    def _save_all(self, batch: list[Completion], emit: Callable[[str], None]) -> None:
        for completion in batch:
            save_run_output(self._ctx, completion, emit)

    def check(self) -> None:
        """Raise, on the loop, what failed in the thread (a store or machine fault)."""
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure

    async def drain(self) -> None:
        """Wait until everything handed over is saved (before the halt commit)."""
        while self._worker is not None and not self._worker.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._worker)
        self.check()


def _destructive(ctx: EngineContext, run: Run, item: Item) -> bool:
    phase = phase_config(ctx.settings, item, run) if run.kind is RunKind.PHASE else None
    return phase is not None and phase.is_destructive
