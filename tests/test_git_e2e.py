"""Git through the real CLI (issue 4): one commit per phase with exactly its files, leftovers
of failed runs never swept into another item's commit, preconditions, staleness."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.conftest import Repo, git_in
from tests.e2e import (
    add_items,
    items_by_id,
    kill_mid_phase,
    overlaps,
    runs_of,
    write_project,
)

pytestmark = pytest.mark.slow

WRITES = """\
  - match: {phase: plan}
    write: {"docs/{item}-plan.md": "plan of {item}\\n"}
  - match: {phase: build}
    write: {"src/{item}.txt": "built {item}\\n"}
  - match: {phase: review}
    write: {"docs/{item}-review.md": "reviewed {item}\\n"}
"""


def git(repo: Repo, *args: str) -> str:
    return git_in(repo.root, *args)


def commits(repo: Repo) -> list[tuple[str, str, list[str]]]:
    """(sha, subject, files) of every commit, oldest first."""
    found = []
    for line in git(repo, "log", "--reverse", "--format=%H %s").splitlines():
        sha, _, subject = line.partition(" ")
        files = git(repo, "show", "--format=", "--name-only", sha).split()
        found.append((sha, subject, sorted(files)))
    return found


def by_subject(repo: Repo) -> dict[str, list[str]]:
    return {subject: files for _, subject, files in commits(repo)}


def test_each_phase_commits_exactly_the_files_it_wrote(git_repo: Repo) -> None:
    repo = write_project(git_repo, WRITES)
    add_items(repo, "First thing", "Second thing")
    repo.ok("run")
    made = by_subject(repo)
    for item in ("WRK-001", "WRK-002"):
        assert made[f"[{item}][plan] plan done for {item}"] == [f"docs/{item}-plan.md"]
        assert made[f"[{item}][build] build done for {item}"] == [f"src/{item}.txt"]
        assert made[f"[{item}][review] review done for {item}"] == [f"docs/{item}-review.md"]
    halt = [s for s in made if s.startswith("[phase-golem] Save task state on halt")]
    assert halt == ["[phase-golem] Save task state on halt (AllDoneOrBlocked)"]
    assert all(f.startswith("_worklog/") for f in made[halt[0]])
    assert git(repo, "status", "--porcelain") == ""
    runs = runs_of(repo)
    assert all(r["snapshot_before"].startswith("ws:") for r in runs)
    assert all(r["snapshot_after"].startswith("ws:") for r in runs)
    builds = [r for r in runs if r["phase"] == "build"]
    assert all(r["snapshot_before"] != r["snapshot_after"] for r in builds)
    assert "ws:" in repo.ok("runs").out


def test_files_of_a_failed_run_never_land_in_another_items_commit(git_repo: Repo) -> None:
    rules = """\
  - match: {item: WRK-001, phase: build}
    fail_times: 9
    write: {"src/partial.txt": "half done\\n"}
"""
    repo = write_project(git_repo, rules + WRITES, execution="max_retries = 1")
    add_items(repo, "Fails its build", "Builds fine")
    result = repo.pg("run")
    assert result.code in (0, 1), result.err
    everything = [f for _, _, files in commits(repo) for f in files]
    assert "src/partial.txt" not in everything
    assert (repo.root / "src" / "partial.txt").read_text() == "half done\n"
    assert by_subject(repo)["[WRK-002][build] build done for WRK-002"] == ["src/WRK-002.txt"]
    shown = repo.ok("show", "WRK-001", "--json").json()
    assert "src/partial.txt" in shown["git"]["leftovers"]
    assert "src/partial.txt" in repo.ok("show", "WRK-001").out
    # The leftover is ours and recorded: the next run does not call the tree dirty.
    again = repo.pg("run")
    assert "uncommitted changes" not in again.err


def test_a_retry_that_succeeds_commits_its_visits_leftovers(git_repo: Repo) -> None:
    rules = """\
  - match: {item: WRK-001, phase: build}
    fail_times: 1
    write: {"src/WRK-001.txt": "built WRK-001\\n"}
"""
    repo = write_project(git_repo, rules + WRITES)
    add_items(repo, "Fails once")
    repo.ok("run")
    # The second attempt wrote the same bytes: its own difference is empty, yet the file
    # lands with the build that succeeded, not in limbo.
    assert by_subject(repo)["[WRK-001][build] build done for WRK-001"] == ["src/WRK-001.txt"]
    assert git(repo, "status", "--porcelain") == ""
    assert repo.ok("show", "WRK-001", "--json").json()["git"]["leftovers"] == {}


def test_a_dirty_tree_stops_run_with_one_line(git_repo: Repo) -> None:
    repo = write_project(git_repo, WRITES)
    add_items(repo, "Anything")
    (repo.root / "notes.txt").write_text("mine\n", encoding="utf-8")
    result = repo.pg("run")
    assert result.code == 3
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and "uncommitted changes" in lines[0] and "notes.txt" in lines[0]
    assert items_by_id(repo)["WRK-001"]["status"] == "new"


def test_a_detached_head_stops_run(git_repo: Repo) -> None:
    repo = write_project(git_repo, WRITES)
    add_items(repo, "Anything")
    git(repo, "checkout", "-q", "--detach")
    result = repo.pg("run")
    assert result.code == 3
    assert "detached" in result.err and len(result.err.strip().splitlines()) == 1
    triage = repo.pg("triage")
    assert triage.code == 3 and "detached" in triage.err


def test_a_merge_in_progress_stops_run(git_repo: Repo) -> None:
    repo = write_project(git_repo, WRITES)
    add_items(repo, "Anything")
    head = git(repo, "rev-parse", "HEAD").strip()
    (repo.root / ".git" / "MERGE_HEAD").write_text(head + "\n", encoding="utf-8")
    result = repo.pg("run")
    assert result.code == 3 and "a merge is in progress" in result.err


STALE_PIPELINE = """\
[pipelines.feature]
phases = [
    { name = "plan", is_destructive = false },
    { name = "build", is_destructive = true, staleness = "block" },
]
"""


def test_rewritten_history_blocks_the_next_destructive_phase(git_repo: Repo) -> None:
    repo = write_project(git_repo, WRITES, pipelines=STALE_PIPELINE)
    add_items(repo, "Will go stale")
    repo.ok("run", "--cap", "2")  # triage, then plan
    item = items_by_id(repo)["WRK-001"]
    assert item["phase"] == "build" and item["last_phase_commit"]
    # Rewrite history: the same files, but none of the old commits.
    git(repo, "checkout", "-q", "--orphan", "rewritten")
    git(repo, "commit", "-q", "-m", "history rewritten")
    git(repo, "branch", "-q", "-M", "rewritten", "main")
    repo.pg("run")
    item = items_by_id(repo)["WRK-001"]
    assert item["status"] == "blocked"
    assert item["blocked_reason"].startswith("Stale: prior phase based on commit")
    assert "src/WRK-001.txt" not in git(repo, "ls-files")


def test_an_unknown_anchor_blocks_even_when_staleness_is_ignore(git_repo: Repo) -> None:
    pipeline = STALE_PIPELINE.replace('staleness = "block"', 'staleness = "ignore"')
    repo = write_project(git_repo, WRITES, pipelines=pipeline)
    add_items(repo, "Unknown anchor")
    repo.ok("run", "--cap", "2")
    with sqlite3.connect(repo.root / ".phase-golem" / "state.db") as db:
        db.execute("UPDATE items SET last_phase_commit = ? WHERE id = 'WRK-001'", ("0" * 40,))
    repo.pg("run")
    item = items_by_id(repo)["WRK-001"]
    assert item["status"] == "blocked"
    assert item["blocked_reason"].startswith("Staleness check failed")


def test_runs_that_share_the_tree_batch_what_they_cannot_tell_apart(git_repo: Repo) -> None:
    # Each plan holds until the other has written its file: they overlap on any machine.
    rules = """\
  - match: {item: WRK-001, phase: plan}
    write: {"changes/WRK-001_alpha/plan.md": "a\\n", "notes.md": "written during both\\n"}
    wait_for: changes/WRK-002_beta/plan.md
  - match: {item: WRK-002, phase: plan}
    write: {"changes/WRK-002_beta/plan.md": "b\\n"}
    wait_for: changes/WRK-001_alpha/plan.md
"""
    repo = write_project(git_repo, rules, execution="max_concurrent = 2\nmax_wip = 2")
    add_items(repo, "Alpha", "Beta")
    repo.ok("run")
    plans = [r for r in runs_of(repo) if r["phase"] == "plan"]
    assert overlaps(plans[0], plans[1])
    made = {subject: files for _, subject, files in commits(repo)}
    batch = "[WRK-001][plan] plan done for WRK-001 | [WRK-002][plan] plan done for WRK-002"
    assert made[batch] == [
        "changes/WRK-001_alpha/plan.md",
        "changes/WRK-002_beta/plan.md",
        "notes.md",
    ]
    body = git(repo, "log", "--format=%B", "--grep", "Phase outputs")
    assert "[WRK-001][plan][WRK-002][plan] Phase outputs" in body
    # Which of the two wrote notes.md cannot be told: show says it was shared.
    view = repo.ok("show", "WRK-001", "--json").json()["git"]
    shared = [c for c in view["commits"] if c.get("shared_with_overlapping_runs")]
    assert shared and shared[0]["shared_with_overlapping_runs"] == ["notes.md"]


def test_a_done_items_file_is_committed_under_it_when_a_failed_run_overlapped(
    git_repo: Repo, tmp_path: Path
) -> None:
    # WRK-001's first plan fails and spans WRK-002's plan, which writes its file meanwhile:
    # the failed run saw that file change too, yet it is WRK-002's work and must not stay
    # behind as WRK-001's leftover (nor be committed later by WRK-001's retry).
    started = tmp_path / "wrk1-started.log"
    rules = f"""\
  - match: {{item: WRK-001, phase: plan}}
    key_log: {str(started)!r}
    wait_for: docs/WRK-002-plan.md
    fail_times: 1
  - match: {{item: WRK-002, phase: plan}}
    wait_before_write: {str(started)!r}
    write: {{"docs/WRK-002-plan.md": "plan of WRK-002\\n"}}
"""
    repo = write_project(
        git_repo, rules, execution="max_concurrent = 2\nmax_wip = 2\nmax_retries = 2"
    )
    add_items(repo, "Fails its first plan", "Plans fine")
    repo.ok("run")
    plans = [r for r in runs_of(repo) if r["phase"] == "plan"]
    first_of_1 = next(r for r in plans if r["item_id"] == "WRK-001")
    plan_of_2 = next(r for r in plans if r["item_id"] == "WRK-002")
    assert first_of_1["status"].startswith("failed") and overlaps(first_of_1, plan_of_2)
    holding = [
        (subject, sha) for sha, subject, files in commits(repo) if "docs/WRK-002-plan.md" in files
    ]
    assert len(holding) == 1, holding
    subject, sha = holding[0]
    assert subject.startswith("[WRK-002][plan]"), subject
    # Which of the two wrote it cannot be proved: the commit and show say who overlapped.
    body = git(repo, "log", "-1", "--format=%B", sha)
    assert "[WRK-001][plan]" in body
    view = repo.ok("show", "WRK-002", "--json").json()["git"]
    assert any(
        "docs/WRK-002-plan.md" in c.get("shared_with_overlapping_runs", []) for c in view["commits"]
    )
    assert repo.ok("show", "WRK-001", "--json").json()["git"]["leftovers"] == {}
    assert git(repo, "status", "--porcelain") == ""
    assert {i["status"] for i in items_by_id(repo).values()} == {"done"}


def crashy_build(gate: Path) -> str:
    """The first build writes its file, then holds (no result yet) until `gate` exists."""
    return (
        "  - match: {phase: build}\n    times: 1\n"
        '    write: {"src/{item}.txt": "built {item}\\n"}\n'
        f"    wait_for: {str(gate)!r}\n"
    )


def test_after_a_power_loss_mid_build_the_retry_commits_the_build(
    git_repo: Repo, tmp_path: Path
) -> None:
    repo = write_project(git_repo, crashy_build(tmp_path / "never-opened") + WRITES)
    add_items(repo, "Survives")
    kill_mid_phase(repo, "build", agent_too=True, once_exists="src/WRK-001.txt")
    repo.ok("run")  # the dead run's file is its leftover, not "your uncommitted change"
    assert by_subject(repo)["[WRK-001][build] build done for WRK-001"] == ["src/WRK-001.txt"]
    assert git(repo, "status", "--porcelain") == ""
    assert items_by_id(repo)["WRK-001"]["status"] == "done"


def test_an_adopted_agents_output_is_committed_under_its_phase(
    git_repo: Repo, tmp_path: Path
) -> None:
    release = tmp_path / "release-build"
    repo = write_project(git_repo, crashy_build(release) + WRITES)
    add_items(repo, "Adopted")
    kill_mid_phase(repo, "build", agent_too=False, once_exists="src/WRK-001.txt")
    release.touch()  # the orphan finishes before the next start or while it adopts it
    repo.ok("run")
    builds = [r for r in runs_of(repo, "WRK-001") if r["phase"] == "build"]
    assert len(builds) == 1 and builds[0]["status"] == "committed"  # adopted, not retried
    assert by_subject(repo)["[WRK-001][build] build done for WRK-001"] == ["src/WRK-001.txt"]
    assert git(repo, "status", "--porcelain") == ""


def test_warn_staleness_runs_the_phase_and_says_so_in_the_ledger(git_repo: Repo) -> None:
    pipeline = STALE_PIPELINE.replace('staleness = "block"', 'staleness = "warn"')
    repo = write_project(git_repo, WRITES, pipelines=pipeline)
    add_items(repo, "Goes stale, runs anyway")
    repo.ok("run", "--cap", "2")
    git(repo, "checkout", "-q", "--orphan", "rewritten")
    git(repo, "commit", "-q", "-m", "history rewritten")
    git(repo, "branch", "-q", "-M", "rewritten", "main")
    repo.ok("run")
    assert items_by_id(repo)["WRK-001"]["status"] == "done"
    events = repo.ok("log", "--item", "WRK-001", "--json").json_lines()
    stale = [e for e in events if e["kind"] == "item.stale"]
    assert len(stale) == 1 and stale[0]["data"]["ran_anyway"] is True
