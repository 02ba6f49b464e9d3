"""Item branches through a shared remote (DESIGN §14), with real git: one bare repository
and several clones of it on this machine, as workers on several hosts have."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from phase_golem.agents import merge as merge_agent
from phase_golem.workspace import remote as remote_git
from phase_golem.workspace.git import GitError
from phase_golem.workspace.remote import push_unpushed, sync_item_branch
from tests.conftest import git_in, make_git_repo

BRANCH = "phase-golem/WRK-001"


class Remote:
    """A bare `origin` with one commit on main, and clones made on demand."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        seed = make_git_repo(tmp_path / "seed")
        (seed / "README.md").write_text("hello\n", encoding="utf-8")
        git_in(seed, "add", "README.md")
        git_in(seed, "commit", "-q", "-m", "first")
        self.bare = tmp_path / "origin.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(seed), str(self.bare)], check=True)
        self.count = 0

    def clone(self) -> Path:
        self.count += 1
        path = self.tmp / f"clone-{self.count}"
        subprocess.run(["git", "clone", "-q", str(self.bare), str(path)], check=True)
        git_in(path, "config", "user.email", "t@example.com")
        git_in(path, "config", "user.name", "Test")
        return path

    def tip(self, branch: str) -> str:
        return git_in(self.bare, "rev-parse", branch).strip()


def worktree(clone: Path) -> Path:
    return clone / ".phase-golem" / "worktrees" / "WRK-001"


def commit_file(tree: Path, name: str, text: str) -> str:
    (tree / name).write_text(text, encoding="utf-8")
    git_in(tree, "add", name)
    git_in(tree, "commit", "-q", "-m", f"[WRK-001][build] {name}")
    return git_in(tree, "rev-parse", "HEAD").strip()


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return Remote(tmp_path)


def test_an_item_started_by_one_worker_goes_on_in_another_clone(remote: Remote) -> None:
    first, second = remote.clone(), remote.clone()
    sync_item_branch(first, worktree(first), "origin", "WRK-001", "main")
    assert git_in(worktree(first), "rev-parse", "HEAD") == git_in(first, "rev-parse", "main")
    built = commit_file(worktree(first), "a.txt", "a\n")
    remote_git.push_item_branch(first, "origin", "WRK-001")
    assert remote.tip(BRANCH) == built
    # The second worker has never seen the item: its worktree starts from the remote's branch.
    sync_item_branch(second, worktree(second), "origin", "WRK-001", "main")
    assert (worktree(second) / "a.txt").read_text(encoding="utf-8") == "a\n"
    again = commit_file(worktree(second), "b.txt", "b\n")
    remote_git.push_item_branch(second, "origin", "WRK-001")
    # Back on the first worker, whose worktree is behind: it fast-forwards.
    sync_item_branch(first, worktree(first), "origin", "WRK-001", "main")
    assert git_in(worktree(first), "rev-parse", "HEAD").strip() == again
    assert (worktree(first) / "b.txt").exists()


def test_a_new_item_branches_from_the_remotes_base_not_a_stale_local_one(
    remote: Remote,
) -> None:
    stale, other = remote.clone(), remote.clone()
    moved = commit_file(other, "base.txt", "newer base\n")
    git_in(other, "push", "-q", "origin", "main")
    sync_item_branch(stale, worktree(stale), "origin", "WRK-001", "main")
    assert git_in(worktree(stale), "rev-parse", "HEAD").strip() == moved


def test_a_commit_a_kill_kept_from_the_remote_is_pushed_at_start(remote: Remote) -> None:
    clone = remote.clone()
    sync_item_branch(clone, worktree(clone), "origin", "WRK-001", "main")
    built = commit_file(worktree(clone), "a.txt", "a\n")  # killed before its push
    pushed, diverged = push_unpushed(clone, "origin")
    assert (pushed, diverged) == ([BRANCH], [])
    assert remote.tip(BRANCH) == built
    assert push_unpushed(clone, "origin") == ([], [])  # nothing more to do


def test_a_killed_runs_leftover_in_the_way_is_set_aside_not_lost(remote: Remote) -> None:
    dead, survivor = remote.clone(), remote.clone()
    sync_item_branch(dead, worktree(dead), "origin", "WRK-001", "main")
    (worktree(dead) / "a.txt").write_text("half written\n", encoding="utf-8")  # then killed
    sync_item_branch(survivor, worktree(survivor), "origin", "WRK-001", "main")
    commit_file(worktree(survivor), "a.txt", "the retry's\n")
    remote_git.push_item_branch(survivor, "origin", "WRK-001")
    sync_item_branch(dead, worktree(dead), "origin", "WRK-001", "main")
    assert (worktree(dead) / "a.txt").read_text(encoding="utf-8") == "the retry's\n"
    assert "WRK-001's leftovers" in git_in(dead, "stash", "list")
    assert git_in(dead, "show", "stash@{0}^3:a.txt") == "half written\n"


def test_diverged_branches_are_merged_both_kept(remote: Remote) -> None:
    dead, survivor = remote.clone(), remote.clone()
    sync_item_branch(dead, worktree(dead), "origin", "WRK-001", "main")
    commit_file(worktree(dead), "first.txt", "1\n")
    remote_git.push_item_branch(dead, "origin", "WRK-001")
    commit_file(worktree(dead), "kept-here.txt", "never pushed\n")  # killed before its push
    sync_item_branch(survivor, worktree(survivor), "origin", "WRK-001", "main")
    commit_file(worktree(survivor), "went-on.txt", "later\n")
    remote_git.push_item_branch(survivor, "origin", "WRK-001")
    assert push_unpushed(dead, "origin") == ([], [BRANCH])  # told, kept, not forced
    sync_item_branch(dead, worktree(dead), "origin", "WRK-001", "main")
    remote_git.push_item_branch(dead, "origin", "WRK-001")  # with the next run's commit
    on_remote = git_in(remote.bare, "ls-tree", "--name-only", BRANCH).split()
    assert {"kept-here.txt", "went-on.txt", "first.txt"} <= set(on_remote)


def test_diverged_branches_that_conflict_stop_the_run_and_change_nothing(
    remote: Remote,
) -> None:
    dead, survivor = remote.clone(), remote.clone()
    sync_item_branch(dead, worktree(dead), "origin", "WRK-001", "main")
    remote_git.push_item_branch(dead, "origin", "WRK-001")
    sync_item_branch(survivor, worktree(survivor), "origin", "WRK-001", "main")
    mine = commit_file(worktree(dead), "same.txt", "dead's\n")
    commit_file(worktree(survivor), "same.txt", "survivor's\n")
    remote_git.push_item_branch(survivor, "origin", "WRK-001")
    with pytest.raises(GitError, match="diverged and do not merge cleanly"):
        sync_item_branch(dead, worktree(dead), "origin", "WRK-001", "main")
    assert git_in(worktree(dead), "rev-parse", "HEAD").strip() == mine
    assert git_in(worktree(dead), "status", "--porcelain") == ""


def test_an_unreachable_remote_is_one_clear_error(remote: Remote) -> None:
    clone = remote.clone()
    git_in(clone, "remote", "set-url", "origin", str(remote.tmp / "gone.git"))
    with pytest.raises(GitError, match="git fetch from origin failed"):
        sync_item_branch(clone, worktree(clone), "origin", "WRK-001", "main")


# ---- the merge phase through the remote ---------------------------------------------------


def merged(clone: Path, strategy: str = "merge-commit") -> dict[str, object]:
    return merge_agent.merge_through_remote(
        clone, worktree(clone), "WRK-001", "main", strategy, "origin"
    )


def test_the_merge_goes_into_the_remotes_base_and_the_local_base_follows(
    remote: Remote,
) -> None:
    clone = remote.clone()
    sync_item_branch(clone, worktree(clone), "origin", "WRK-001", "main")
    commit_file(worktree(clone), "a.txt", "a\n")
    assert merge_agent.check(clone, "WRK-001", "main", "origin") == 1  # not merged yet
    body = merged(clone)
    assert body["result"] == "phase_complete", body
    assert "a.txt" in git_in(remote.bare, "ls-tree", "--name-only", "main").split()
    assert git_in(clone, "rev-parse", "main").strip() == remote.tip("main")
    assert (clone / "a.txt").exists()  # the root's checkout followed
    assert merge_agent.check(remote.clone(), "WRK-001", "main", "origin") == 0


def test_a_push_rejected_because_another_worker_merged_first_is_made_again(
    remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    clone, other = remote.clone(), remote.clone()
    sync_item_branch(clone, worktree(clone), "origin", "WRK-001", "main")
    commit_file(worktree(clone), "a.txt", "a\n")
    real_push = remote_git.push
    raced: list[str] = []

    def push_after_a_rival(root: Path, name: str, commit: str, branch: str) -> bool:
        if branch == "main" and not raced:  # another worker's merge lands just before ours
            raced.append(commit_file(other, "rival.txt", "first\n"))
            git_in(other, "push", "-q", "origin", "main")
        return real_push(root, name, commit, branch)

    monkeypatch.setattr(remote_git, "push", push_after_a_rival)
    body = merged(clone)
    assert body["result"] == "phase_complete", body
    on_main = set(git_in(remote.bare, "ls-tree", "--name-only", "main").split())
    assert {"a.txt", "rival.txt"} <= on_main  # the rival's merge was kept, ours made again
    log = git_in(remote.bare, "log", "--format=%s", "main")
    assert log.count("Merge phase-golem/WRK-001 into main") == 1


def test_a_conflict_with_the_remotes_base_blocks_and_leaves_it(remote: Remote) -> None:
    clone, other = remote.clone(), remote.clone()
    sync_item_branch(clone, worktree(clone), "origin", "WRK-001", "main")
    commit_file(worktree(clone), "README.md", "ours\n")
    commit_file(other, "README.md", "theirs\n")
    git_in(other, "push", "-q", "origin", "main")
    before = remote.tip("main")
    body = merged(clone)
    assert body["result"] == "blocked" and "README.md" in str(body["context"]), body
    assert remote.tip("main") == before


def test_the_check_cannot_tell_when_the_remote_is_gone(remote: Remote) -> None:
    clone = remote.clone()
    git_in(clone, "remote", "set-url", "origin", str(remote.tmp / "gone.git"))
    assert merge_agent.check(clone, "WRK-001", "main", "origin") == 2


def test_in_an_items_worktree_a_retry_that_wrote_the_same_bytes_still_owes_them(
    remote: Remote,
) -> None:
    # An attempt killed in this clone left its file; another clone's worker recovered the
    # run without seeing it; the retry here writes the same bytes. The file is still owed.
    from datetime import UTC, datetime

    from phase_golem.domain.items import new_item
    from phase_golem.engine.workspaces import measure_change, snapshot_of

    clone = remote.clone()
    tree = worktree(clone)
    sync_item_branch(clone, tree, "origin", "WRK-001", "main")
    (tree / "a.txt").write_text("built\n", encoding="utf-8")  # the killed attempt's
    before = snapshot_of(tree)
    (tree / "a.txt").write_text("built\n", encoding="utf-8")  # the retry's, the same
    item = new_item("WRK-001", "Built", datetime.now(UTC))
    change = measure_change(clone, tree, item, before, False)
    assert change.touched == ("a.txt",) and change.own == ("a.txt",)
