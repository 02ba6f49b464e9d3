"""Thin wrappers around the `git` CLI (the real binary, never a library reimplementation)."""

from __future__ import annotations

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
