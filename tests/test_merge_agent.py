"""The built-in merge agent's reconcile check and merge strategies, on real repositories."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from phase_golem.agents.merge import check, check_command, merge
from tests.conftest import git_in as git
from tests.conftest import make_git_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_git_repo(tmp_path / "project with space")
    (root / "a.txt").write_text("a\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    return root


def branch_with(root: Path, item: str, name: str, text: str) -> Path:
    worktree = root.parent / f"wt-{item}"
    git(root, "worktree", "add", "-q", "-b", f"phase-golem/{item}", str(worktree), "main")
    (worktree / name).write_text(text)
    git(worktree, "add", "-A")
    git(worktree, "commit", "-q", "-m", f"work of {item}")
    return worktree


def test_check_says_happened_not_happened_or_unknown(repo: Path) -> None:
    assert check(repo, "WRK-001", "main") == 2  # no such branch: cannot tell
    worktree = branch_with(repo, "WRK-001", "b.txt", "b\n")
    assert check(repo, "WRK-001", "main") == 1
    assert merge(repo, worktree, "WRK-001", "main", "merge-commit")["result"] == "phase_complete"
    assert check(repo, "WRK-001", "main") == 0


def test_the_check_command_survives_spaces_in_the_project_path(repo: Path) -> None:
    words = shlex.split(check_command(repo, "main").replace("{item}", "WRK-001"))
    completed = subprocess.run(words, capture_output=True, check=False)
    assert completed.returncode == 2, completed.stderr


def test_fast_forward_when_it_can_and_a_merge_commit_when_the_base_moved(repo: Path) -> None:
    first = branch_with(repo, "WRK-001", "b.txt", "b\n")
    second = branch_with(repo, "WRK-002", "c.txt", "c\n")
    done = merge(repo, first, "WRK-001", "main", "fast-forward")
    assert "fast-forward" in str(done["summary"])
    assert git(repo, "rev-parse", "main") == git(first, "rev-parse", "HEAD")
    moved_on = merge(repo, second, "WRK-002", "main", "fast-forward")
    assert "merge commit" in str(moved_on["summary"])
    assert len(git(repo, "log", "-1", "--format=%P", "main").split()) == 2
    assert (repo / "b.txt").exists() and (repo / "c.txt").exists()  # the root followed


def test_a_conflict_names_the_paths_and_leaves_the_base_alone(repo: Path) -> None:
    first = branch_with(repo, "WRK-001", "same name.txt", "one\n")
    second = branch_with(repo, "WRK-002", "same name.txt", "two\n")
    merge(repo, first, "WRK-001", "main", "merge-commit")
    before = git(repo, "rev-parse", "main")
    blocked = merge(repo, second, "WRK-002", "main", "merge-commit")
    assert blocked["result"] == "blocked"
    assert "same name.txt" in str(blocked["context"])
    assert git(repo, "rev-parse", "main") == before
    assert git(repo, "status", "--porcelain") == ""
