"""A kill in the middle of a git command of ours never wedges the project (issue 13, part 3):
the locks it left are cleared at the next start; a lock we cannot prove ours is one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from phase_golem.workspace.git import (
    INDEX_OPERATION_MARK,
    clear_stale_locks,
    commit_paths,
    foreign_lock,
)
from tests.conftest import Repo, git_in, make_git_repo
from tests.e2e import add_items, items_by_id, runs_of, write_project

# A command of ours killed while git holds the locks it named: the locks stay, as after a
# SIGKILL of the group during `git update-ref` (the lock files are what git would create).
KILLED_IN_UPDATE_REF = """\
import os, signal, sys
from pathlib import Path
from phase_golem.workspace.git import locked_operation
root = Path(sys.argv[1])
with locked_operation(root, ("HEAD",)):
    for name in sys.argv[2:]:
        (root / ".git" / name).write_text("")
    os.kill(os.getpid(), signal.SIGKILL)
"""

REF_LOCKS = ("HEAD.lock", "refs/heads/main.lock", "index.lock")


def killed_in_update_ref(root: Path, *locks: str) -> None:
    child = subprocess.run(
        [sys.executable, "-c", KILLED_IN_UPDATE_REF, str(root), *locks], check=False
    )
    assert child.returncode < 0  # it died by the signal, inside the operation
    assert (root / ".git" / INDEX_OPERATION_MARK).exists()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_git_repo(tmp_path / "repo")
    (root / "README.md").write_text("hello\n")
    git_in(root, "add", "README.md")
    git_in(root, "commit", "-q", "-m", "first")
    return root


@pytest.mark.parametrize("lock", REF_LOCKS)
def test_each_lock_a_killed_command_of_ours_left_is_cleared(repo: Path, lock: str) -> None:
    killed_in_update_ref(repo, lock)
    assert foreign_lock(repo) == repo / ".git" / lock  # before the clearing, git is stuck
    assert clear_stale_locks(repo) is True
    assert foreign_lock(repo) is None
    assert not (repo / ".git" / INDEX_OPERATION_MARK).exists()
    (repo / "README.md").write_text("after\n")
    assert commit_paths(repo, ["README.md"], "works again") is not None


def test_a_ref_lock_without_our_mark_is_kept_and_named(repo: Path) -> None:
    lock = repo / ".git" / "refs" / "heads" / "main.lock"
    lock.write_text("")
    assert clear_stale_locks(repo) is False
    assert lock.exists() and foreign_lock(repo) == lock


def test_a_mark_never_removes_a_file_outside_the_git_directory(repo: Path) -> None:
    precious = repo / "precious.lock"
    precious.write_text("mine\n")
    child = subprocess.Popen(["true"])
    child.wait()
    (repo / ".git" / INDEX_OPERATION_MARK).write_text(f"{child.pid}\n{precious}\n")
    assert clear_stale_locks(repo) is True
    assert precious.exists()


def test_a_run_after_a_kill_in_update_ref_starts_and_finishes(git_repo: Repo) -> None:
    repo = write_project(git_repo)
    add_items(repo, "Alpha")
    killed_in_update_ref(repo.root, "HEAD.lock", "refs/heads/main.lock")
    result = repo.pg("run")
    assert result.code == 0, result.err
    assert "removed git locks a killed command of ours left" in result.out + result.err
    assert items_by_id(repo)["WRK-001"]["status"] == "done"
    assert git_in(repo.root, "status", "--porcelain") == ""


def test_a_foreign_ref_lock_is_one_line_exit_3_and_nothing_changes(git_repo: Repo) -> None:
    repo = write_project(git_repo)
    add_items(repo, "Alpha")
    lock = repo.root / ".git" / "refs" / "heads" / "main.lock"
    lock.write_text("")
    before = items_by_id(repo)
    result = repo.pg("run")
    assert result.code == 3
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and str(lock) in lines[0], result.err
    assert lock.exists()
    assert items_by_id(repo) == before and runs_of(repo) == []
