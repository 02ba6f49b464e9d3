"""Worktree isolation through the real CLI (issue 4): one worktree and branch per item,
destructive phases of different items in parallel, merges into the base branch, and a
conflict that blocks its item without touching the base branch."""

from __future__ import annotations

import pytest

from tests.conftest import Repo, git_in
from tests.e2e import add_items, items_by_id, overlaps, runs_of, write_project

pytestmark = pytest.mark.slow

WORKTREE_PIPELINE = """\
[pipelines.feature]
phases = [
    { name = "plan", is_destructive = false },
    { name = "build", is_destructive = true },
    { name = "merge", is_destructive = true, side_effect = true, agent = "merge" },
]
"""
PARALLEL = 'isolation = "worktree"\nmax_concurrent = 2\nmax_wip = 2'


def git(repo: Repo, *args: str) -> str:
    return git_in(repo.root, *args)


def worktree_project(git_repo: Repo, build: str) -> Repo:
    """Both builds hold until both have begun (each logs itself outside the repository
    first): they really overlap, each in its own worktree, on any machine."""
    started = git_repo.root.parent / "build-started"
    rules = f"""\
  - match: {{phase: build}}
    key_log: '{started}-{{item}}'
    wait_for: ['{started}-WRK-001', '{started}-WRK-002']
    write: {build}
"""
    return write_project(git_repo, rules, execution=PARALLEL, pipelines=WORKTREE_PIPELINE)


def test_two_builds_overlap_in_their_own_worktrees_and_both_merge(git_repo: Repo) -> None:
    repo = worktree_project(git_repo, '{"src/{item}.txt": "built {item}\\n"}')
    add_items(repo, "Left", "Right")
    repo.ok("run")
    builds = [r for r in runs_of(repo) if r["phase"] == "build"]
    assert len(builds) == 2 and overlaps(builds[0], builds[1])
    on_main = git(repo, "ls-tree", "-r", "--name-only", "main").split()
    assert {"src/WRK-001.txt", "src/WRK-002.txt"} <= set(on_main)
    assert (repo.root / "src" / "WRK-001.txt").read_text() == "built WRK-001\n"
    for item_id, item in items_by_id(repo).items():
        assert item["status"] == "done", item_id
        assert item["branch"] == f"phase-golem/{item_id}"
    # Each build committed on its own branch, then the branch was merged and cleaned up.
    subjects = git(repo, "log", "--format=%s", "main").splitlines()
    assert "[WRK-001][build] build done for WRK-001" in subjects
    assert any(s.startswith("Merge phase-golem/WRK-00") for s in subjects)
    assert not (repo.root / ".phase-golem" / "worktrees" / "WRK-001").exists()
    assert "phase-golem/WRK-001" not in git(repo, "branch", "--list")
    assert git(repo, "status", "--porcelain") == ""


def test_a_conflicting_merge_blocks_its_item_and_leaves_the_base_alone(git_repo: Repo) -> None:
    repo = worktree_project(git_repo, '{"shared.txt": "written by {item}\\n"}')
    add_items(repo, "First writer", "Second writer")
    result = repo.pg("run")
    assert result.code in (0, 1), result.err
    items = items_by_id(repo)
    done = [i for i in items.values() if i["status"] == "done"]
    blocked = [i for i in items.values() if i["status"] == "blocked"]
    assert len(done) == 1 and len(blocked) == 1
    loser = blocked[0]
    assert "shared.txt" in loser["blocked_reason"] and loser["blocked_type"] == "decision"
    winner = done[0]["id"]
    assert git(repo, "show", "main:shared.txt") == f"written by {winner}\n"
    # The loser's work is kept on its branch and in its worktree, never lost.
    branch = f"phase-golem/{loser['id']}"
    assert git(repo, "show", f"{branch}:shared.txt") == f"written by {loser['id']}\n"
    assert (repo.root / ".phase-golem" / "worktrees" / loser["id"]).is_dir()


def test_merge_agent_outside_worktree_isolation_is_a_config_error(git_repo: Repo) -> None:
    (git_repo.root / "phase-golem.toml").write_text(
        '[project]\nprefix = "WRK"\n\n' + WORKTREE_PIPELINE, encoding="utf-8"
    )
    result = git_repo.pg("init")
    assert result.code == 2
    assert 'agent = "merge"' in result.err and "worktree" in result.err
