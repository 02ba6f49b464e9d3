"""`phase-golem run` on PostgreSQL, end to end: one worker in a clone of a shared remote."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.conftest import Repo, git_in
from tests.e2e import add_items, commit_all, write_project
from tests.test_worktrees_e2e import WORKTREE_PIPELINE

pytest.importorskip("psycopg")

BUILD_WRITES = '  - match: {phase: build}\n    write: {"src/{item}.txt": "x"}\n'


def use_postgres(repo: Repo, url: str, *, remote: bool = True) -> None:
    config = repo.root / "phase-golem.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text + f'\n[storage]\nurl = "{url}"\n', encoding="utf-8")
    commit_all(repo, "store on PostgreSQL")
    if remote:  # the remote every worker's clone shares item branches through
        bare = repo.root.parent / "origin.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(repo.root), str(bare)], check=True)
        git_in(repo.root, "remote", "add", "origin", str(bare))


def status_items(repo: Repo) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for i in repo.ok("status", "--json", "--all").json()}


def test_one_worker_finishes_a_backlog_on_postgresql(git_repo: Repo, pg_url: str) -> None:
    repo = write_project(
        git_repo, BUILD_WRITES, execution='isolation = "worktree"', pipelines=WORKTREE_PIPELINE
    )
    use_postgres(repo, pg_url)
    add_items(repo, "Add a login page", "Write the changelog")
    result = repo.pg("run")
    assert result.code == 0, result.err
    assert "Items completed: 2" in result.out, result.out
    items = status_items(repo)
    assert {i["status"] for i in items.values()} == {"done"}
    bare = repo.root.parent / "origin.git"
    on_remote = git_in(bare, "ls-tree", "-r", "--name-only", "main").split()
    assert {"src/WRK-001.txt", "src/WRK-002.txt"} <= set(on_remote)


def _refused(result: Any, *words: str) -> None:
    assert result.code == 3, (result.out, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.err, result.err
    for word in words:
        assert word in lines[0], lines[0]


def test_postgresql_with_a_shared_tree_is_refused_before_any_run(
    git_repo: Repo, pg_url: str
) -> None:
    repo = write_project(git_repo, BUILD_WRITES)
    use_postgres(repo, pg_url)
    add_items(repo, "Add a login page")
    _refused(repo.pg("run"), "storage.url is PostgreSQL", 'isolation = "worktree"')
    assert status_items(repo)["WRK-001"]["status"] == "new"


def test_postgresql_without_the_shared_remote_is_refused_before_any_run(
    git_repo: Repo, pg_url: str
) -> None:
    repo = write_project(
        git_repo, BUILD_WRITES, execution='isolation = "worktree"', pipelines=WORKTREE_PIPELINE
    )
    use_postgres(repo, pg_url, remote=False)
    add_items(repo, "Add a login page")
    _refused(repo.pg("run"), "execution.remote", "'origin'", "git remote add origin")
    assert status_items(repo)["WRK-001"]["status"] == "new"
