"""Worktrees of items that no longer need one are removed at start (DESIGN §8)."""

from __future__ import annotations

from pathlib import Path

from phase_golem.domain.items import ItemStatus
from phase_golem.store import Store
from phase_golem.workspace.git import run_git
from phase_golem.workspace.worktrees import existing_worktrees, remove_worktree


def prune_worktrees(store: Store, root: Path) -> list[str]:
    """Remove the worktrees of done, closed or vanished items; the IDs removed."""
    run_git(root, "worktree", "prune")
    removed = []
    with store.reader() as tx:
        items = {i.id: i for i in tx.list_items(include_archived=True)}
    for item_id in existing_worktrees(root):
        item = items.get(item_id)
        finished = item is None or item.archived or item.status is ItemStatus.DONE
        if finished and remove_worktree(root, item_id, delete_merged_branch=True):
            removed.append(item_id)
    return removed
