"""Regressions found by review of the git work: output lost, `run` wedged, or a failed run's
files committed under another item's message."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Repo, git_in
from tests.e2e import add_items, items_by_id, overlaps, runs_of, start_run, write_project
from tests.test_worktrees_e2e import WORKTREE_PIPELINE
from tests.waiting import DEADLINE_SECONDS, state_rows, wait_until

pytestmark = pytest.mark.slow

# The retry writes the same bytes as the attempt that failed: its own difference is empty.
PLAN_FAILS_ONCE = """\
  - match: {phase: plan}
    fail_times: 1
    write: {"docs/{item}-plan.md": "the plan\\n"}
"""


def git(repo: Repo, *args: str) -> str:
    return git_in(repo.root, *args)


def all_committed_files(repo: Repo, ref: str = "--all") -> list[str]:
    return git(repo, "log", ref, "--format=", "--name-only").split()


def test_a_non_destructive_retry_with_the_same_bytes_still_commits_them(git_repo: Repo) -> None:
    repo = write_project(git_repo, PLAN_FAILS_ONCE, execution="max_retries = 1")
    add_items(repo, "Planned")
    repo.ok("run")
    subjects = git(repo, "log", "--format=%s", "--name-only")
    assert "[WRK-001][plan] plan done for WRK-001\n\ndocs/WRK-001-plan.md" in subjects
    assert git(repo, "status", "--porcelain") == ""


def test_in_a_worktree_the_same_bytes_reach_the_base_branch(git_repo: Repo) -> None:
    execution = 'isolation = "worktree"\nmax_retries = 1'
    repo = write_project(
        git_repo, PLAN_FAILS_ONCE, execution=execution, pipelines=WORKTREE_PIPELINE
    )
    add_items(repo, "Planned")
    repo.ok("run")
    assert items_by_id(repo)["WRK-001"]["status"] == "done"
    assert git(repo, "show", "main:docs/WRK-001-plan.md") == "the plan\n"


def test_a_closed_items_worktree_goes_but_its_leftovers_are_saved(git_repo: Repo) -> None:
    rules = """\
  - match: {phase: build}
    fail_times: 9
    write: {"src/{item}-partial.txt": "half a day of work\\n"}
"""
    execution = 'isolation = "worktree"\nmax_retries = 0'
    repo = write_project(git_repo, rules, execution=execution, pipelines=WORKTREE_PIPELINE)
    add_items(repo, "Hard")
    repo.pg("run")
    worktree = repo.root / ".phase-golem" / "worktrees" / "WRK-001"
    assert (worktree / "src" / "WRK-001-partial.txt").exists()
    repo.ok("close", "WRK-001", "--reason", "giving up")
    repo.pg("run")
    assert not worktree.exists()
    salvaged = git(repo, "show", "phase-golem/WRK-001:src/WRK-001-partial.txt")
    assert salvaged == "half a day of work\n"
    assert "[WRK-001][salvage]" in git(repo, "log", "-1", "--format=%s", "phase-golem/WRK-001")


def test_a_leftover_the_user_deleted_does_not_wedge_later_runs(git_repo: Repo) -> None:
    rules = """\
  - match: {item: WRK-001, phase: build}
    times: 1
    result: failed
    write: {"src/partial.txt": "half\\n"}
  - match: {phase: build}
    write: {"src/ok.txt": "whole\\n"}
"""
    repo = write_project(git_repo, rules, execution="max_retries = 0")
    add_items(repo, "Fails its build")
    repo.pg("run")
    assert items_by_id(repo)["WRK-001"]["status"] == "blocked"
    (repo.root / "src" / "partial.txt").unlink()  # the person cleans up the junk
    repo.ok("unblock", "WRK-001")
    second = repo.pg("run")
    assert second.code == 0, second.err
    assert items_by_id(repo)["WRK-001"]["status"] == "done"
    assert "src/ok.txt" in all_committed_files(repo)
    assert git(repo, "status", "--porcelain") == ""
    assert repo.pg("run").code == 0


def test_a_file_a_failed_and_a_successful_run_both_saw_is_committed_naming_both(
    git_repo: Repo, tmp_path: Path
) -> None:
    # Issue 13 changed the rule: the junk was written while both runs were in the tree, so
    # either could have written it (a success's file looks exactly the same to snapshots).
    # A success's file must never be left behind, so the path goes into the batch, and the
    # commit and `show` name the failed run that overlapped (DESIGN §8).
    # The order a slow machine need not keep is enforced: WRK-002's plan begins, WRK-001's
    # writes its junk and fails, and only then does WRK-002's write its file and succeed.
    # (The junk must wait for WRK-002's start: written before it, it is WRK-001's alone.)
    began, failed = tmp_path / "began", tmp_path / "wrk-001-failed"
    rules = f"""\
  - match: {{item: WRK-001, phase: plan}}
    fail_times: 9
    wait_before_write: '{began}-WRK-002'
    write: {{"notes/junk-of-WRK-001.md": "half-baked\\n"}}
  - match: {{item: WRK-002, phase: plan}}
    key_log: '{began}-{{item}}'
    wait_before_write: '{failed}'
    write: {{"changes/WRK-002_beta/plan.md": "b\\n"}}
"""
    execution = "max_concurrent = 2\nmax_wip = 2\nmax_retries = 0"
    repo = write_project(git_repo, rules, execution=execution)
    add_items(repo, "Alpha", "Beta")
    process = start_run(repo)
    try:
        wait_until(
            lambda: state_rows(
                repo.root,
                "SELECT id FROM runs WHERE item_id = 'WRK-001' AND phase = 'plan' "
                "AND status = 'failed:logic'",
            ),
            "WRK-001's plan failed",
            process=process,
        )
        failed.touch()
        process.communicate(timeout=DEADLINE_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    plans = [r for r in runs_of(repo) if r["phase"] == "plan"]
    assert overlaps(plans[0], plans[1])
    assert all_committed_files(repo).count("notes/junk-of-WRK-001.md") == 1
    assert "changes/WRK-002_beta/plan.md" in all_committed_files(repo)
    body = git(repo, "log", "-1", "--format=%B", "--", "notes/junk-of-WRK-001.md")
    assert body.startswith("[WRK-002][plan]")
    assert "Shared with overlapping runs that did not succeed: [WRK-001][plan]" in body
    shown = repo.ok("show", "WRK-001", "--json").json()["git"]
    assert shown["leftovers"] == {}
    assert any(
        c.get("shared_with_overlapping_runs") == ["notes/junk-of-WRK-001.md"]
        for c in shown["commits"]
    )
    assert git(repo, "status", "--porcelain") == ""


def test_a_leftover_two_items_could_have_written_is_taken_by_neither(
    git_repo: Repo, tmp_path: Path
) -> None:
    # WRK-002's agent writes its file only once WRK-001's run has begun, and WRK-001's run
    # fails only once that file is there: it was in the tree while the file was written.
    began = tmp_path / "began"
    rules = f"""\
  - match: {{item: WRK-001, phase: plan}}
    key_log: '{began}-{{item}}'
    fail_times: 1
    write: {{"notes/a.md": "a\\n"}}
    wait_for: notes/b-of-WRK-002.md
  - match: {{item: WRK-002, phase: plan}}
    wait_before_write: '{began}-WRK-001'
    fail_times: 9
    write: {{"notes/b-of-WRK-002.md": "b\\n"}}
"""
    execution = "max_concurrent = 2\nmax_wip = 2\nmax_retries = 0"
    repo = write_project(git_repo, rules, execution=execution)
    add_items(repo, "Alpha", "Beta")
    repo.pg("run")
    both = repo.ok("show", "WRK-002", "--json").json()["git"]["leftovers"]
    assert "notes/b-of-WRK-002.md" in both
    # WRK-001's run was in the tree when WRK-002's agent wrote it: either could have.
    assert both["notes/b-of-WRK-002.md"]["owners"] == [["WRK-001", "plan"], ["WRK-002", "plan"]]
    repo.ok("unblock", "WRK-001")
    retried = repo.pg("run", "--target", "WRK-001")
    assert retried.code in (0, 1), retried.err
    # WRK-001's retry succeeded, but a file WRK-002's run could have written is not its to take.
    assert "notes/b-of-WRK-002.md" not in all_committed_files(repo)
    assert (
        "notes/b-of-WRK-002.md" in repo.ok("show", "WRK-002", "--json").json()["git"]["leftovers"]
    )
