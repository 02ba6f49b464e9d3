"""Item branches on the remote that workers in several clones share (DESIGN §14).

Each worker has its own clone, and an item's work moves between workers only on its branch
`phase-golem/<ID>` on the shared remote. A worker that picks an item up first brings that
branch to what the remote holds (`sync_item_branch`); after every run it committed it pushes
the branch (`push_item_branch`, before the commit is recorded as made). Nobody else works on an item
while one of its runs is live or its last commit is unpushed, so the remote's branch
normally only ever fast-forwards; what a worker killed between its commit and its push left
behind is pushed when that worker starts again (`push_unpushed`), or, when others went on
from the remote meanwhile, merged with their work at the item's next run in that clone (a
conflict stops the run, naming the branch).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from phase_golem.workspace.git import (
    GitError,
    dirty_paths,
    is_ancestor,
    locked_operation,
    run_git,
)
from phase_golem.workspace.worktrees import BRANCH_PREFIX, ensure_worktree, item_branch


def tracking_ref(remote: str, branch: str) -> str:
    return f"refs/remotes/{remote}/{branch}"


# What git says when another git process holds a ref's lock (a fetch and a push, or the
# merge agent and a run starting, at the same moment): worth another try, not a failure.
_LOCK_CONTENTION = ("cannot lock ref", ".lock': File exists", "Unable to create")
_TRIES = 6


def _patiently(root: Path, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """`git ARGS`, tried again (with a growing pause) while another git holds a lock."""
    for attempt in range(_TRIES):
        completed = run_git(root, *args, check=False)
        said = completed.stderr
        if completed.returncode == 0 or not any(mark in said for mark in _LOCK_CONTENTION):
            return completed
        time.sleep(0.05 * 2**attempt)
    return completed


def fetch(root: Path, remote: str, branches: Sequence[str], maybe: Sequence[str] = ()) -> None:
    """Bring the remote's `branches` (which must exist there) and `maybe` (which need not:
    a glob refspec that matches nothing fetches nothing) into their tracking refs."""
    specs = [f"+refs/heads/{b}:{tracking_ref(remote, b)}" for b in branches]
    specs += [f"+refs/heads/{b}*:{tracking_ref(remote, b)}*" for b in maybe]
    refs = [tracking_ref(remote, b) for b in (*branches, *maybe)]
    args = ("fetch", "-q", "--no-tags", "--no-write-fetch-head", remote, *specs)
    with locked_operation(root, refs):
        completed = _patiently(root, args)
    if completed.returncode != 0:
        detail = completed.stderr.strip().splitlines()
        raise GitError(f"git fetch from {remote} failed: {detail[-1] if detail else '?'}")


def _listed(root: Path, patterns: Sequence[str]) -> dict[str, str]:
    """ref → commit for every ref matching `patterns` (one git process)."""
    listed = run_git(root, "for-each-ref", "--format=%(refname) %(objectname)", *patterns)
    return dict(line.split(" ", 1) for line in listed.stdout.splitlines() if " " in line)


def ref_tips(root: Path, refs: list[str]) -> dict[str, str]:
    """The commit each ref that exists points at (one git process for all of them)."""
    tips = _listed(root, refs)
    return {ref: tips[ref] for ref in refs if ref in tips}


def push(root: Path, remote: str, commit: str, branch: str) -> bool:
    """Push `commit` to the remote's `branch`; False when the remote refused a
    non-fast-forward (it moved on: fetch and try again), GitError for anything else."""
    with locked_operation(root, [tracking_ref(remote, branch)]):
        args = ("push", "-q", "--porcelain", remote, f"{commit}:refs/heads/{branch}")
        completed = _patiently(root, args)
        if completed.returncode == 0:
            run_git(root, "update-ref", tracking_ref(remote, branch), commit)
            return True
    said = f"{completed.stdout}\n{completed.stderr}"
    if "[rejected]" in said or "non-fast-forward" in said or "fetch first" in said:
        return False
    detail = completed.stderr.strip().splitlines()
    raise GitError(f"git push to {remote} failed: {detail[-1] if detail else '?'}")


def push_item_branch(root: Path, remote: str, item_id: str) -> None:
    """After a committed run: the item's branch goes to the remote for the next worker."""
    branch = item_branch(item_id)
    local = ref_tips(root, [f"refs/heads/{branch}"]).get(f"refs/heads/{branch}")
    if local is not None and not push(root, remote, local, branch):
        raise GitError(f"{remote} refused {branch}: another worker pushed to it meanwhile")


def sync_item_branch(root: Path, workdir: Path, remote: str, item_id: str, base: str) -> str:
    """The item's worktree, on its branch as the remote holds it (created from the remote's
    base branch the first time any worker runs the item); returns the branch."""
    branch = item_branch(item_id)
    fetch(root, remote, [base], [branch])
    local_ref, theirs_ref = f"refs/heads/{branch}", tracking_ref(remote, branch)
    base_ref = tracking_ref(remote, base)
    tips = ref_tips(root, [local_ref, theirs_ref, base_ref])
    local, theirs = tips.get(local_ref), tips.get(theirs_ref)
    if local is None:
        ensure_worktree(root, workdir, item_id, theirs or tips.get(base_ref) or base)
        return branch
    ensure_worktree(root, workdir, item_id, base)
    if theirs is None or theirs == local or is_ancestor(root, theirs, local):
        return branch  # the remote has it, or lacks only commits this clone pushes itself
    _set_aside_leftovers(workdir, remote, item_id)
    if is_ancestor(root, local, theirs):
        with locked_operation(workdir, ["HEAD"]):
            run_git(workdir, "merge", "--ff-only", "-q", theirs)
        return branch
    _merge_diverged(workdir, remote, item_id, theirs)  # pushed with the run's own commit
    return branch


def _set_aside_leftovers(workdir: Path, remote: str, item_id: str) -> None:
    """What runs of the item killed in this clone left in its worktree would stand in the
    way of the work others did meanwhile (often the same file, written again by the retry):
    it is set aside as a stash (`git stash list` shows it, nothing is lost), not overwritten."""
    if not dirty_paths(workdir):
        return
    message = f"phase-golem: {item_id}'s leftovers in this clone, set aside for {remote}'s branch"
    with locked_operation(workdir, ["HEAD", "refs/stash"]):
        run_git(workdir, "stash", "push", "-q", "--include-untracked", "-m", message)


def _merge_diverged(workdir: Path, remote: str, item_id: str, theirs: str) -> None:
    """This clone kept a commit the remote never got while others went on from the remote:
    both are kept (a merge); when they conflict nothing changes and the run stops."""
    branch = item_branch(item_id)
    message = f"[{item_id}][sync] Merge {remote}'s {branch} into this clone's"
    with locked_operation(workdir, ["HEAD"]):
        merged = run_git(workdir, "merge", "--no-edit", "-q", "-m", message, theirs, check=False)
        if merged.returncode != 0:
            run_git(workdir, "merge", "--abort", check=False)
    if merged.returncode != 0:
        raise GitError(
            f"{branch} here and on {remote} have diverged and do not merge cleanly: "
            f"merge them by hand in {workdir}, push, then unblock {item_id}"
        )


def remote_exists(root: Path, remote: str) -> bool:
    return run_git(root, "remote", "get-url", remote, check=False).returncode == 0


def push_unpushed(root: Path, remote: str) -> tuple[list[str], list[str]]:
    """At start: item branches with commits the remote lacks (a kill came between a commit
    and its push) are pushed. Returns (pushed, diverged: kept here, merged at their next run)."""
    fetch(root, remote, [], [BRANCH_PREFIX])
    mine = f"refs/heads/{BRANCH_PREFIX}"
    tips = _listed(root, [mine, tracking_ref(remote, BRANCH_PREFIX)])
    pushed: list[str] = []
    diverged: list[str] = []
    for ref, local in sorted(tips.items()):
        if not ref.startswith(mine):
            continue
        branch = ref.removeprefix("refs/heads/")
        theirs = tips.get(tracking_ref(remote, branch))
        if theirs == local or (theirs is not None and is_ancestor(root, local, theirs)):
            continue  # on the remote already, or behind it (the next run catches up)
        ahead = theirs is None or is_ancestor(root, theirs, local)
        (pushed if ahead and push(root, remote, local, branch) else diverged).append(branch)
    return pushed, diverged
