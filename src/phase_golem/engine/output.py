"""After a run: its output goes to git (DESIGN §8), and a finished item's worktree goes.

Called by the scheduler once a run's completion is in the store. A git problem never
takes the loop down: what is owed stays recorded and is saved on halt or at next start.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import PurePosixPath

from phase_golem.engine.commits import (
    COMMITTED_BLOBS,
    ROOT_TREE,
    Publish,
    commit_now,
    flush_tree,
    halt_commit,
    save_all,
    tree_path,
)
from phase_golem.engine.completion import Completion
from phase_golem.engine.executor import EngineContext
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
            hold = ctx.trees.unsettled(tree)
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
