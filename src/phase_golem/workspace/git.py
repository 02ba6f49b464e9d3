"""Thin wrappers around the `git` CLI (the real binary, never a library reimplementation)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


class GitError(RuntimeError):
    pass


def run_git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        completed = subprocess.run(
            ["git", *args],
            cwd=root,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None
    if check and completed.returncode != 0:
        detail = completed.stderr.strip() or completed.stdout.strip()
        raise GitError(f"git {' '.join(args)} failed: {detail}")
    return completed


def is_git_repo(root: Path) -> bool:
    return run_git(root, "rev-parse", "--git-dir", check=False).returncode == 0


def head_commit(root: Path) -> str | None:
    """The commit HEAD points at, or None outside a repository or before the first commit."""
    completed = run_git(root, "rev-parse", "--verify", "-q", "HEAD", check=False)
    return completed.stdout.strip() or None if completed.returncode == 0 else None


def git_dir(root: Path) -> Path:
    """The repository's own directory for this working tree (`.git`, or a worktree's)."""
    path = Path(run_git(root, "rev-parse", "--git-dir").stdout.strip())
    return path if path.is_absolute() else root / path


def current_branch(root: Path) -> str | None:
    """The branch HEAD is on (also before its first commit), or None when detached."""
    completed = run_git(root, "symbolic-ref", "-q", "--short", "HEAD", check=False)
    return completed.stdout.strip() or None if completed.returncode == 0 else None


def tree_status(root: Path) -> tuple[str | None, list[str]]:
    """(HEAD commit or None before the first, changed and untracked-not-ignored paths).

    One `git status` call answers both, which matters: it runs twice for every run.
    """
    output = run_git(
        root, "status", "--porcelain=v2", "-z", "--branch", "--untracked-files=all", "--no-renames"
    ).stdout
    head: str | None = None
    paths: list[str] = []
    for entry in output.split("\0"):
        if entry.startswith("# branch.oid "):
            oid = entry.removeprefix("# branch.oid ")
            head = None if oid == "(initial)" else oid
        elif entry.startswith("1 "):
            paths.append(entry.split(" ", 8)[8])
        elif entry.startswith("u "):
            paths.append(entry.split(" ", 10)[10])
        elif entry.startswith("? "):
            paths.append(entry[2:])
    return head, sorted(paths)


def dirty_paths(root: Path) -> list[str]:
    """Tracked changes and untracked-not-ignored files, as `git status` sees them."""
    return tree_status(root)[1]


def operation_in_progress(root: Path) -> str | None:
    """A rebase or merge that git has not finished, by name, or None."""
    directory = git_dir(root)
    if (directory / "rebase-merge").exists() or (directory / "rebase-apply").exists():
        return "a rebase"
    if (directory / "MERGE_HEAD").exists():
        return "a merge"
    if (directory / "CHERRY_PICK_HEAD").exists():
        return "a cherry-pick"
    return None


def is_ancestor(root: Path, commit: str, of: str = "HEAD") -> bool | None:
    """True/False when git can tell; None when the commit is unknown or git fails."""
    if run_git(root, "cat-file", "-e", f"{commit}^{{commit}}", check=False).returncode != 0:
        return None
    completed = run_git(root, "merge-base", "--is-ancestor", commit, of, check=False)
    if completed.returncode in (0, 1):
        return completed.returncode == 0
    return None


def commit_paths(root: Path, paths: list[str], message: str) -> str | None:
    """Commit exactly `paths` (added, changed or deleted) on top of HEAD; None if no change.

    A private index is built from HEAD, so nothing else the user staged is swept in; HEAD
    moves by compare-and-swap, and the real index is then refreshed for these paths only.
    """
    if not paths:
        return None
    head = head_commit(root)
    index = git_dir(root) / "phase-golem.index"
    env = {"GIT_INDEX_FILE": str(index), "GIT_LITERAL_PATHSPECS": "1"}
    spec = "\0".join(paths) + "\0"
    try:
        if head is not None:
            _git_env(root, env, "read-tree", head)
        else:
            _git_env(root, env, "read-tree", "--empty")
        _git_env(
            root, env, "add", "-A", "--pathspec-from-file=-", "--pathspec-file-nul", stdin=spec
        )
        tree = _git_env(root, env, "write-tree").strip()
    finally:
        index.unlink(missing_ok=True)
    if head is not None and tree == run_git(root, "rev-parse", f"{head}^{{tree}}").stdout.strip():
        return None
    parents = ["-p", head] if head is not None else []
    commit = _git_env(root, {}, "commit-tree", tree, *parents, stdin=message).strip()
    update = ["update-ref", "-m", "phase-golem: commit", "HEAD", commit]
    run_git(root, *(update + ([head] if head is not None else [""])))
    _git_env(
        root,
        {"GIT_LITERAL_PATHSPECS": "1"},
        "reset",
        "-q",
        "--pathspec-from-file=-",
        "--pathspec-file-nul",
        stdin=spec,
        check=False,
    )
    return commit


def _git_env(
    root: Path, env: dict[str, str], *args: str, stdin: str | None = None, check: bool = True
) -> str:
    try:
        completed = subprocess.run(
            ["git", *args],
            cwd=root,
            capture_output=True,
            text=True,
            input=stdin if stdin is not None else "",
            env={**os.environ, **env},
            check=False,
        )
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None
    if check and completed.returncode != 0:
        detail = completed.stderr.strip() or completed.stdout.strip()
        raise GitError(f"git {' '.join(args[:2])} failed: {detail}")
    return completed.stdout


def repository_problem(root: Path) -> str | None:
    """Phase Golem's preconditions but the clean tree: a repo, on a branch, nothing half-done."""
    if not is_git_repo(root):
        return f"{root} is not inside a git repository (run `git init` first)"
    if current_branch(root) is None:
        return "HEAD is detached; check out a branch first (`git switch <branch>`)"
    operation = operation_in_progress(root)
    if operation is not None:
        return f"{operation} is in progress; finish or abort it first"
    return None
