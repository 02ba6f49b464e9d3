"""`phase-golem run` on PostgreSQL, end to end: one worker, then several in separate processes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Repo
from tests.e2e import add_items, commit_all, write_project

pytest.importorskip("psycopg")


def use_postgres(repo: Repo, url: str) -> None:
    config = repo.root / "phase-golem.toml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text + f'\n[storage]\nurl = "{url}"\n', encoding="utf-8")
    commit_all(repo, "store on PostgreSQL")


def status_items(repo: Repo) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for i in repo.ok("status", "--json", "--all").json()}


def test_one_worker_finishes_a_backlog_on_postgresql(git_repo: Repo, pg_url: str) -> None:
    rules = '  - match: {phase: build}\n    write: {"src/{item}.txt": "x"}\n'
    repo = write_project(git_repo, rules)
    use_postgres(repo, pg_url)
    add_items(repo, "Add a login page", "Write the changelog")
    result = repo.pg("run")
    assert result.code == 0, result.err
    assert "Items completed: 2" in result.out, result.out
    items = status_items(repo)
    assert {i["status"] for i in items.values()} == {"done"}
