"""One git worktree per item (`isolation = "worktree"`, DESIGN §8).

Item `WRK-001` works on branch `phase-golem/WRK-001` in `.phase-golem/worktrees/WRK-001`,
branched from the base branch the first time one of its phases runs. Worktrees of done
or closed items are removed (a closed item's branch is kept: its work is never lost);
worktrees git no longer knows, or whose item is gone, are pruned at start.
"""

from __future__ import annotations

from pathlib import Path

from phase_golem.workspace.git import (
    GitError,
    commit_paths,
    dirty_paths,
    git_dir,
    locked_operation,
    run_git,
)

BRANCH_PREFIX = "phase-golem/"


def item_branch(item_id: str) -> str:
    return f"{BRANCH_PREFIX}{item_id}"


def worktrees_dir(root: Path) -> Path:
    return root / ".phase-golem" / "worktrees"


def branch_exists(root: Path, branch: str) -> bool:
    ref = f"refs/heads/{branch}"
    return run_git(root, "show-ref", "--verify", "-q", ref, check=False).returncode == 0


def ensure_worktree(root: Path, workdir: Path, item_id: str, base: str) -> str:
    """The item's worktree on its branch, created (from `base`) when it is missing."""
    branch = item_branch(item_id)
    if (workdir / ".git").exists():
        return branch
    workdir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    run_git(root, "worktree", "prune")
    # A kill mid-add leaves the new worktree's index lock: the mark names it (and the
    # branch's), so the next start clears it instead of refusing to go on.
    adding = git_dir(root) / "worktrees" / workdir.name / "index.lock"
    with locked_operation(root, [f"refs/heads/{branch}"], extra=[adding]):
        if branch_exists(root, branch):
            run_git(root, "worktree", "add", "-q", str(workdir), branch)
        else:
            run_git(root, "worktree", "add", "-q", "-b", branch, str(workdir), base)
    return branch


def remove_worktree(root: Path, item_id: str, *, delete_merged_branch: bool) -> bool:
    """Remove the item's worktree, never its work; True when it is gone.

    Files nobody committed (leftovers of failed runs, say) are first saved on the item's
    branch as a `[ID][salvage]` commit, so removing the tree loses nothing; a tree git
    still will not remove (a nested repository, say) is kept. The branch is deleted only
    when it is merged (`git branch -d` refuses otherwise).
    """
    workdir = worktrees_dir(root) / item_id
    if workdir.exists():
        dirty = dirty_paths(workdir)
        if dirty:
            message = f"[{item_id}][salvage] Files left uncommitted when its worktree was removed"
            commit_paths(workdir, dirty, message)
        # `worktree remove` may take the tree's index lock: marked, so a kill mid-remove
        # leaves a lock the next start clears instead of refusing to go on.
        removing = git_dir(root) / "worktrees" / workdir.name / "index.lock"
        with locked_operation(root, extra=[removing]):
            removed = run_git(root, "worktree", "remove", str(workdir), check=False)
        if removed.returncode != 0:
            return False
    run_git(root, "worktree", "prune")
    if delete_merged_branch:
        with locked_operation(root, [f"refs/heads/{item_branch(item_id)}"]):
            run_git(root, "branch", "-q", "-d", item_branch(item_id), check=False)
    return True


def existing_worktrees(root: Path) -> list[str]:
    """Item IDs that have a directory under `.phase-golem/worktrees/`."""
    folder = worktrees_dir(root)
    if not folder.is_dir():
        return []
    return sorted(entry.name for entry in folder.iterdir() if entry.is_dir())


def merge_base_branch(root: Path) -> str:
    completed = run_git(root, "symbolic-ref", "-q", "--short", "HEAD", check=False)
    branch = completed.stdout.strip()
    if completed.returncode != 0 or not branch:
        raise GitError("the project root is not on a branch (detached HEAD)")
    return branch
