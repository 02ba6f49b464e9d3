"""The built-in `merge` agent (`agent = "merge"`): merges an item's branch into the base branch.

It is a real subprocess that speaks the same contract as every agent (environment in,
result file out), so timeouts, crashes, adoption and the side-effect rules apply to it
unchanged. It runs in the item's worktree:

- the merge is first computed without touching any tree (`git merge-tree --write-tree`);
  a conflict writes a `blocked` result naming the conflicting paths, and the base branch
  is left exactly as it was;
- `fast-forward` moves the base branch to the item's tip when it can, and makes a merge
  commit when the base has moved on; `merge-commit` always makes one;
- when the base branch is checked out in the project root, the root's tree follows with
  `git merge --ff-only` (so local changes in the way stop it, untouched); otherwise the
  branch ref moves by compare-and-swap.

`--check ITEM` answers the reconcile question for a merge that may have happened: exit 0
when the item's branch is contained in the base branch, 1 when it is not, 2 when unknown.
Merges are serialised by a lock file, since two items may merge at the same moment.

With `--remote R` (workers in several clones, DESIGN §14) the base branch that counts is
the remote's: the item's branch is pushed, the merge is made on the remote's base as just
fetched and pushed there; a push the remote rejects because another worker merged first
is made again on the new base (a few times), and the local base follows when it can.
`--check` then asks the remote.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shlex
import sys
from pathlib import Path

from phase_golem.agents.base import AgentRequest, Invocation, StreamInfo
from phase_golem.workspace import remote as remote_git
from phase_golem.workspace.git import (
    GitError,
    current_branch,
    head_commit,
    is_ancestor,
    locked_operation,
    run_git,
)
from phase_golem.workspace.worktrees import item_branch

STRATEGIES = ("fast-forward", "merge-commit")


class MergeAdapter:
    name = "merge"

    def __init__(
        self, base_branch: str, strategy: str, root: Path, remote: str | None = None
    ) -> None:
        self.base_branch = base_branch
        self.strategy = strategy
        self.root = root
        self.remote = remote

    def binary(self) -> None:
        return None

    def install_hint(self) -> str:
        return "the merge agent ships with phase-golem"

    def invocation(self, request: AgentRequest) -> Invocation:
        argv = [sys.executable, "-m", "phase_golem.agents.merge"]
        argv += ["--root", str(self.root), "--base", self.base_branch, "--strategy", self.strategy]
        if self.remote is not None:
            argv += ["--remote", self.remote]
        return Invocation(tuple(argv))

    def read_stream(self, stdout_file: Path) -> StreamInfo:
        return StreamInfo()


def check_command(root: Path, base_branch: str, remote: str | None = None) -> str:
    """The reconcile command for the shipped merge phase (`{item}` is filled per run)."""
    words = [sys.executable, "-m", "phase_golem.agents.merge", "--root", str(root)]
    words += ["--base", base_branch, *(["--remote", remote] if remote else [])]
    return " ".join(shlex.quote(word) for word in words) + " --check {item}"


def _write_result(path: Path, body: dict[str, object]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(body, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _trial_merge(root: Path, base: str, tip: str) -> tuple[str | None, list[str]]:
    """(merged tree, []) when clean; (None, conflicting paths) when not."""
    completed = run_git(
        root,
        "merge-tree",
        "--write-tree",
        "--name-only",
        "--no-messages",
        "-z",
        base,
        tip,
        check=False,
    )
    fields = completed.stdout.split("\0")
    if completed.returncode == 0 and fields[0]:
        return fields[0].strip(), []
    if completed.returncode == 1:
        return None, sorted({name for name in fields[1:] if name})
    raise GitError(f"git merge-tree failed: {completed.stderr.strip()}")


def _move_base(root: Path, base: str, old: str, new: str) -> None:
    if current_branch(root) == base:
        with locked_operation(root, ("HEAD",)):
            run_git(root, "merge", "--ff-only", "-q", new)
    else:
        with locked_operation(root, (f"refs/heads/{base}",)):
            run_git(root, "update-ref", f"refs/heads/{base}", new, old)


def _merged(
    root: Path, base_tip: str, tip: str, branch: str, base: str, strategy: str
) -> tuple[str, str] | dict[str, object]:
    """(new base tip, how) for merging `tip` into `base_tip`; a blocked result on conflict."""
    tree, conflicts = _trial_merge(root, base_tip, tip)
    if tree is None:
        return {
            "result": "blocked",
            "blocked_type": "decision",
            "summary": f"merge conflict between {branch} and {base}",
            "context": f"Merging {branch} into {base} conflicts in: {', '.join(conflicts)}. "
            f"{base} was not changed; resolve the conflict on {branch}, then unblock.",
        }
    if strategy == "fast-forward" and is_ancestor(root, base_tip, tip):
        return tip, "fast-forward"
    message = f"Merge {branch} into {base}"
    new = run_git(root, "commit-tree", tree, "-p", base_tip, "-p", tip, "-m", message)
    return new.stdout.strip(), "merge commit"


def _tip(worktree: Path, branch: str) -> str:
    tip = head_commit(worktree)
    if tip is None:
        raise GitError(f"{branch} has no commits")
    return tip


def merge(root: Path, worktree: Path, item: str, base: str, strategy: str) -> dict[str, object]:
    """Merge the item's branch; the result body for the result file."""
    branch = item_branch(item)
    tip = _tip(worktree, branch)
    base_tip = run_git(root, "rev-parse", "--verify", f"refs/heads/{base}").stdout.strip()
    if is_ancestor(root, tip, base_tip):
        return {"result": "phase_complete", "summary": f"{branch} is already in {base}"}
    made = _merged(root, base_tip, tip, branch, base, strategy)
    if isinstance(made, dict):
        return made
    new, how = made
    _move_base(root, base, base_tip, new)
    summary = f"merged {branch} into {base} ({how} {new[:12]})"
    return {"result": "phase_complete", "summary": summary, "commit_summary": summary}


PUSH_ATTEMPTS = 5


def merge_through_remote(
    root: Path, worktree: Path, item: str, base: str, strategy: str, remote: str
) -> dict[str, object]:
    """Merge the item's branch into the remote's base branch (see the module docstring)."""
    branch = item_branch(item)
    tip = _tip(worktree, branch)
    if not remote_git.push(root, remote, tip, branch):
        raise GitError(f"{remote} refused {branch}: another worker pushed to it meanwhile")
    for _attempt in range(PUSH_ATTEMPTS):
        remote_git.fetch(root, remote, [base])
        base_ref = remote_git.tracking_ref(remote, base)
        base_tip = run_git(root, "rev-parse", "--verify", base_ref).stdout.strip()
        if is_ancestor(root, tip, base_tip):
            _follow(root, base, base_tip)
            return {"result": "phase_complete", "summary": f"{branch} is already in {base}"}
        made = _merged(root, base_tip, tip, branch, base, strategy)
        if isinstance(made, dict):
            return made
        new, how = made
        if remote_git.push(root, remote, new, base):
            _follow(root, base, new)
            summary = f"merged {branch} into {remote}'s {base} ({how} {new[:12]})"
            return {"result": "phase_complete", "summary": summary, "commit_summary": summary}
    raise GitError(f"{remote}'s {base} kept moving: {PUSH_ATTEMPTS} pushes were rejected")


def _follow(root: Path, base: str, new: str) -> None:
    """The local base branch follows the remote's when it only falls behind; a clone whose
    base has commits of its own, or whose tree is in the way, keeps it (the remote counts)."""
    local = run_git(root, "rev-parse", "--verify", "-q", f"refs/heads/{base}", check=False)
    old = local.stdout.strip()
    if local.returncode != 0 or old == new or not is_ancestor(root, old, new):
        return
    with contextlib.suppress(GitError):
        _move_base(root, base, old, new)


def check(root: Path, item: str, base: str, remote: str | None = None) -> int:
    branch = item_branch(item)
    base_ref = f"refs/heads/{base}"
    if remote is not None:
        try:
            remote_git.fetch(root, remote, [base], [branch])
        except GitError:
            return 2  # the remote cannot be asked: unknown, never a guess
        base_ref = remote_git.tracking_ref(remote, base)
        tips = remote_git.ref_tips(root, [remote_git.tracking_ref(remote, branch)])
        if tips:  # what the merge pushed first; this clone's branch may be older
            verdict = is_ancestor(root, next(iter(tips.values())), base_ref)
            return 2 if verdict is None else 0 if verdict else 1
    tip = run_git(root, "rev-parse", "--verify", "-q", branch, check=False)
    if tip.returncode != 0:
        return 2
    verdict = is_ancestor(root, tip.stdout.strip(), base_ref)
    return 2 if verdict is None else 0 if verdict else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="phase_golem.agents.merge")
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--base", required=True)
    parser.add_argument("--strategy", choices=STRATEGIES, default="merge-commit")
    parser.add_argument("--check", metavar="ITEM")
    parser.add_argument("--remote")
    args = parser.parse_args(argv)
    root: Path = args.root
    try:
        if args.check:
            return check(root, args.check, args.base, args.remote)
        item = os.environ["PHASE_GOLEM_ITEM_ID"]
        phase = os.environ["PHASE_GOLEM_PHASE"]
        result_file = Path(os.environ["PHASE_GOLEM_RESULT_FILE"])
        lock_path = root / ".phase-golem" / "merge.lock"
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        with os.fdopen(fd, "r+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if args.remote:
                body = merge_through_remote(
                    root, Path.cwd(), item, args.base, args.strategy, args.remote
                )
            else:
                body = merge(root, Path.cwd(), item, args.base, args.strategy)
        _write_result(result_file, {"item_id": item, "phase": phase, **body})
        return 0
    except (GitError, KeyError, OSError) as exc:
        sys.stderr.write(f"merge: {exc}\n")
        return 2 if args.check else 1


if __name__ == "__main__":
    sys.exit(main())
