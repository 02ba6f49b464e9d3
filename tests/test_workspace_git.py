"""Workspace snapshots, precise commits and owed-commit recovery against real git repos."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from phase_golem.domain.commits import RunChange
from phase_golem.engine.commits import commit_now, flush_tree, save_all, unaccounted_changes
from phase_golem.engine.git_view import leftovers_of
from phase_golem.engine.owed import record_change
from phase_golem.engine.trees import TreeTracker
from phase_golem.store.memory import MemoryStore
from phase_golem.workspace import worktrees
from phase_golem.workspace.git import (
    INDEX_OPERATION_MARK,
    clear_stale_locks,
    commit_paths,
    is_ancestor,
    repository_problem,
)
from phase_golem.workspace.snapshot import blob_id, take_snapshot, touched_paths
from phase_golem.workspace.worktrees import ensure_worktree, remove_worktree, worktrees_dir
from tests.conftest import git_in as git
from tests.conftest import make_git_repo


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = make_git_repo(tmp_path / "repo")
    (root / "README.md").write_text("hello\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    return root


def files_of(root: Path, commit: str = "HEAD") -> list[str]:
    return git(root, "show", "--format=", "--name-only", commit).split()


def test_blob_ids_match_git(repo: Path) -> None:
    data = b"some bytes\n"
    (repo / "x.bin").write_bytes(data)
    assert blob_id(data) == git(repo, "hash-object", "x.bin").strip()


def test_equal_trees_give_equal_ids_whatever_the_mtimes(repo: Path) -> None:
    first = take_snapshot(repo)
    os.utime(repo / "README.md", (1, 1))
    assert take_snapshot(repo).id == first.id
    (repo / "new.txt").write_text("n\n")
    second = take_snapshot(repo)
    assert second.id != first.id
    (repo / "new.txt").unlink()
    assert take_snapshot(repo).id == first.id


def test_snapshot_sees_changes_untracked_files_and_deletions_not_ignored_ones(repo: Path) -> None:
    (repo / ".gitignore").write_text("ignored/\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore")
    before = take_snapshot(repo)
    (repo / "README.md").write_text("changed\n")
    (repo / "fresh.txt").write_text("fresh\n")
    (repo / "ignored").mkdir()
    (repo / "ignored" / "secret.txt").write_text("no\n")
    (repo / ".gitignore").unlink()
    after = take_snapshot(repo)
    assert touched_paths(before, after) == [
        ".gitignore",
        "README.md",
        "fresh.txt",
        "ignored/secret.txt",
    ]


def test_excluded_prefixes_stay_out(repo: Path) -> None:
    state = repo / ".phase-golem"
    state.mkdir()
    (state / "state.db").write_text("x")
    assert ".phase-golem/state.db" not in take_snapshot(repo, exclude=(".phase-golem",)).files


def test_commit_paths_commits_exactly_those_paths_and_keeps_the_users_staging(repo: Path) -> None:
    (repo / "mine.txt").write_text("user work\n")
    git(repo, "add", "mine.txt")  # staged by the user, not ours to commit
    (repo / "out.txt").write_text("agent output\n")
    (repo / "README.md").unlink()
    commit = commit_paths(repo, ["out.txt", "README.md"], "[WRK-001][build] did it")
    assert commit is not None
    assert sorted(files_of(repo)) == ["README.md", "out.txt"]
    assert git(repo, "log", "-1", "--format=%s") == "[WRK-001][build] did it\n"
    status = git(repo, "status", "--porcelain")
    assert "A  mine.txt" in status and "out.txt" not in status and "README" not in status


def test_commit_paths_without_a_change_makes_no_commit(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    assert commit_paths(repo, ["README.md"], "nothing") is None
    assert git(repo, "rev-parse", "HEAD") == head


def test_commit_paths_makes_the_first_commit_of_an_empty_repo(tmp_path: Path) -> None:
    root = make_git_repo(tmp_path / "empty")
    (root / "a.txt").write_text("a\n")
    assert commit_paths(root, ["a.txt"], "first") is not None
    assert files_of(root) == ["a.txt"]


def test_paths_with_glob_characters_are_literal(repo: Path) -> None:
    (repo / "a*.txt").write_text("star\n")
    (repo / "ab.txt").write_text("not this one\n")
    commit_paths(repo, ["a*.txt"], "literal")
    assert files_of(repo) == ["a*.txt"]


def test_ancestry_is_known_unknown_or_false(repo: Path) -> None:
    first = git(repo, "rev-parse", "HEAD").strip()
    assert is_ancestor(repo, first) is True
    assert is_ancestor(repo, "0" * 40) is None
    git(repo, "checkout", "-q", "--orphan", "other")
    git(repo, "commit", "-q", "-m", "other root")
    assert is_ancestor(repo, first) is False


def test_repository_problems(repo: Path, tmp_path: Path) -> None:
    assert repository_problem(repo) is None
    outside = tmp_path / "plain"
    outside.mkdir()
    assert "not inside a git repository" in (repository_problem(outside) or "")
    git(repo, "checkout", "-q", "--detach")
    assert "detached" in (repository_problem(repo) or "")


def started_here(repo: Path, *runs: str) -> None:
    """A run's directory is in the clone that started it: its owed commits are this clone's."""
    for run in runs:
        (repo / ".phase-golem" / "runs" / run).mkdir(parents=True, exist_ok=True)


def owed(
    run: str,
    touched: tuple[str, ...],
    *,
    succeeded: bool = True,
    immediate: bool = False,
    item: str = "WRK-001",
    phase: str = "build",
) -> RunChange:
    return RunChange(run, item, phase, touched, touched, succeeded, immediate, f"{phase} {item}")


def test_a_crash_between_the_store_and_git_is_repaired_at_start(repo: Path) -> None:
    store = MemoryStore()
    (repo / "src").mkdir()
    (repo / "src" / "a.txt").write_text("a\n")
    started_here(repo, "run-1")
    with store.transaction() as tx:  # what the complete transaction records
        record_change(tx, ".", owed("run-1", ("src/a.txt",), immediate=True))
    # ... and the orchestrator died before committing. The next start:
    made = save_all(store, repo)
    assert len(made) == 1
    assert git(repo, "log", "-1", "--format=%s") == "[WRK-001][build] build WRK-001\n"
    assert files_of(repo) == ["src/a.txt"]
    assert save_all(store, repo) == []  # nothing is owed twice


def test_leftovers_are_kept_recorded_and_taken_by_a_later_success(repo: Path) -> None:
    store = MemoryStore()
    (repo / "junk.txt").write_text("half\n")
    started_here(repo, "run-1", "run-2", "run-3")
    with store.transaction() as tx:
        record_change(tx, ".", owed("run-1", ("junk.txt",), succeeded=False))
    flush_tree(store, repo, ".")
    assert "junk.txt" in leftovers_of(store, "WRK-001")
    assert leftovers_of(store, "WRK-002") == {}
    assert unaccounted_changes(store, repo) == []
    (repo / "junk.txt").write_text("edited by a person\n")
    assert unaccounted_changes(store, repo) == ["junk.txt"]
    (repo / "junk.txt").write_text("half\n")
    # Another item's success never takes it ...
    (repo / "b.txt").write_text("b\n")
    commit_now(store, repo, ".", owed("run-2", ("b.txt",), immediate=True, item="WRK-002"))
    assert files_of(repo) == ["b.txt"]
    # ... a later attempt of the same item and phase does, even if it wrote the same bytes.
    commit_now(store, repo, ".", owed("run-3", (), immediate=True))
    assert files_of(repo) == ["junk.txt"]
    assert leftovers_of(store) == {}


def test_a_stale_index_lock_of_ours_is_cleared_and_anyone_elses_is_kept(repo: Path) -> None:
    lock = repo / ".git" / "index.lock"
    mark = repo / ".git" / INDEX_OPERATION_MARK
    lock.write_text("")
    assert clear_stale_locks(repo) is False  # no mark: perhaps the user's git; keep it
    assert lock.exists()
    mark.write_text(str(os.getpid()))  # a command of a live process of ours: keep it
    assert clear_stale_locks(repo) is False and lock.exists()
    child = subprocess.Popen(["true"])
    child.wait()
    mark.write_text(str(child.pid))
    assert clear_stale_locks(repo) is True
    assert not lock.exists() and not mark.exists()
    (repo / "README.md").write_text("after\n")
    assert commit_paths(repo, ["README.md"], "works again") is not None


def test_runs_that_shared_a_tree_settle_together() -> None:
    tracker = TreeTracker()
    tracker.enter(".", "a")
    tracker.enter(".", "b")  # b joins a's group
    tracker.leave(".", "a")
    assert tracker.unsettled(".") == {"a", "b"}  # a's company is still at work
    tracker.enter(".", "c")  # c joins while b runs: one group
    tracker.leave(".", "b")
    assert tracker.unsettled(".") == {"a", "b", "c"}
    tracker.leave(".", "c")
    assert tracker.unsettled(".") == set()
    tracker.enter(".", "d")  # a new group after the tree was idle
    assert tracker.unsettled(".") == {"d"}
    tracker.enter("wt", "e")  # another tree: its own group
    assert tracker.unsettled("wt") == {"e"} and "e" not in tracker.unsettled(".")


def test_a_run_still_recording_its_completion_holds_its_group() -> None:
    tracker = TreeTracker()
    tracker.enter(".", "a")
    tracker.enter(".", "b")
    tracker.leave(".", "a", settling=True)  # its completion is being written elsewhere
    tracker.leave(".", "b")
    assert tracker.idle(".")  # no agent is in the tree any more ...
    assert tracker.unsettled(".") == {"a", "b"}  # ... but the batch waits for a's record
    tracker.settled(".", "a")
    assert tracker.unsettled(".") == set()
    assert tracker.epoch(".") == 2  # two runs ever entered


def test_a_run_entering_before_anothers_after_snapshot_overlaps_it() -> None:
    # a's agent exited, but its after-snapshot is still to come: what b writes meanwhile
    # would show in it, so a and b overlapped (neither may claim such a path alone).
    tracker = TreeTracker()
    tracker.enter(".", "a")
    tracker.finish(".", "a")
    assert tracker.idle(".")  # a writes nothing more: a snapshot now may be reused
    tracker.enter(".", "b")
    assert not tracker.idle(".")
    assert tracker.leave(".", "a", settling=True) is True  # taken after b came in
    assert tracker.leave(".", "b") is True


def test_a_kill_mid_worktree_remove_leaves_a_lock_the_next_start_clears(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by the chaos test: a worker killed while removing a done item's worktree left
    # that tree's index.lock, and every later start refused it as "not ours".
    workdir = worktrees_dir(repo) / "WRK-001"
    ensure_worktree(repo, workdir, "WRK-001", "main")
    lock = repo / ".git" / "worktrees" / "WRK-001" / "index.lock"
    marks: list[str] = []
    real_run_git = worktrees.run_git

    def killed_mid_remove(root: Path, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        if args[:2] == ("worktree", "remove"):
            lock.write_text("")  # what git holds at the moment of the kill
            marks.extend(m.read_text() for m in (repo / ".git").glob(INDEX_OPERATION_MARK + "*"))
            return subprocess.CompletedProcess(list(args), 1, "", "killed")
        return real_run_git(root, *args, **kw)

    monkeypatch.setattr(worktrees, "run_git", killed_mid_remove)
    assert remove_worktree(repo, "WRK-001", delete_merged_branch=False) is False
    monkeypatch.setattr(worktrees, "run_git", real_run_git)
    assert len(marks) == 1 and str(lock) in marks[0]  # the remove was marked, naming the lock
    child = subprocess.Popen(["true"])
    child.wait()
    (repo / ".git" / INDEX_OPERATION_MARK).write_text(  # as the killed worker left it
        "\n".join([str(child.pid), *marks[0].splitlines()[1:]]) + "\n"
    )
    assert clear_stale_locks(repo) is True
    assert not lock.exists()
