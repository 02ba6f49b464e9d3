"""Hostile agents through the real CLI: whatever an agent leaves, the run ends classified
(`invalid_result`, never `failed:internal`), nothing outside the project is read or
changed, and one result cannot flood the backlog or merge away work in progress."""

from __future__ import annotations

import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Repo
from tests.e2e import add_items, commit_all, items_by_id, runs_of, write_project

HOSTILE_AGENT = r"""
import json, os, sys
result = os.environ["PHASE_GOLEM_RESULT_FILE"]
item, phase = os.environ["PHASE_GOLEM_ITEM_ID"], os.environ["PHASE_GOLEM_PHASE"]
base = {"item_id": item, "phase": phase, "result": "phase_complete", "summary": "ok"}
if phase == "triage":
    base.update(updated_assessments={"size": "small", "risk": "low", "complexity": "low"})
    open(result, "w").write(json.dumps(base))
    sys.exit(0)
mode = open(os.path.join(os.environ["PHASE_GOLEM_ROOT"], "mode.txt")).read().strip()
outside = os.environ["OUTSIDE_FILE"]
if mode == "symlink":
    open(outside, "w").write(json.dumps(base))
    os.chmod(outside, 0o644)
    os.symlink(outside, result)
elif mode == "fifo":
    os.mkfifo(result)
elif mode == "directory":
    os.mkdir(result)
elif mode == "deep":
    open(result, "w").write('{"item_id": ' * 20000 + '"x"' + "}" * 20000)
elif mode == "bigint":
    open(result, "w").write(json.dumps(base)[:-1] + ', "n": ' + "7" * 5000 + "}")
elif mode == "surrogate":
    open(result, "w").write(json.dumps(base).replace('"ok"', '"ok \\ud800"'))
elif mode == "nul_follow_up":
    base["follow_ups"] = ["fine", "bad\u0000title"]
    open(result, "w").write(json.dumps(base))
elif mode == "stdout_link":
    log_dir = os.path.dirname(result)
    os.unlink(os.path.join(log_dir, "stdout.log"))
    os.symlink(outside, os.path.join(log_dir, "stdout.log"))
    open(result, "w").write(json.dumps(base))
"""
PIPELINE = """\
[pipelines.feature]
phases = [{ name = "plan", is_destructive = false, max_retries = 0 }]
"""


def hostile_project(git_repo: Repo, mode: str, outside: Path) -> Repo:
    script = git_repo.root / "agent.py"
    script.write_text(HOSTILE_AGENT, encoding="utf-8")
    agent = f'cli = "command"\ncommand = "{sys.executable} {script}"\npass_env = ["OUTSIDE_FILE"]'
    repo = write_project(git_repo, agent=agent, pipelines=PIPELINE)
    (repo.root / "mode.txt").write_text(mode, encoding="utf-8")
    commit_all(repo, "mode")
    add_items(repo, "Anything")
    return repo


@pytest.mark.parametrize(
    ("mode", "needle"),
    [
        ("symlink", "symbolic link"),
        ("fifo", "FIFO"),
        ("directory", "directory"),
        ("deep", "nested"),
        ("bigint", "not usable JSON"),
        ("surrogate", "result.summary contains an invalid character"),
        ("nul_follow_up", "result.follow_ups[1] contains a NUL"),
    ],
)
def test_whatever_an_agent_leaves_the_run_is_classified_never_internal(
    git_repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, needle: str
) -> None:
    outside = tmp_path / "outside.json"
    monkeypatch.setenv("OUTSIDE_FILE", str(outside))
    repo = hostile_project(git_repo, mode, outside)
    result = repo.pg("run", "--plain", timeout=300)
    assert "Traceback" not in result.err and "internal" not in result.out, result.out
    plan = [r for r in runs_of(repo) if r["phase"] == "plan"]
    assert len(plan) == 1, plan
    assert (plan[0]["status"], plan[0]["error_class"]) == ("failed:agent", "invalid_result")
    assert needle in plan[0]["error"], plan[0]["error"]
    item = items_by_id(repo)["WRK-001"]
    assert item["status"] == "blocked" and "WRK-002" not in items_by_id(repo)
    if mode == "symlink":
        assert stat.S_IMODE(outside.stat().st_mode) == 0o644  # never chmod-ed through the link


def test_a_transcript_the_agent_replaced_with_a_link_is_never_read_through(
    git_repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "outside.log"
    outside.write_text('{"type": "result", "session_id": "stolen-session"}\n', encoding="utf-8")
    outside.chmod(0o644)
    monkeypatch.setenv("OUTSIDE_FILE", str(outside))
    repo = hostile_project(git_repo, "stdout_link", outside)
    repo.ok("run", "--plain")
    plan = [r for r in runs_of(repo) if r["phase"] == "plan"]
    assert plan[0]["status"] == "committed" and plan[0]["session_id"] is None
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644
    runs_dir = repo.root / ".phase-golem" / "runs"
    assert stat.S_IMODE(runs_dir.stat().st_mode) == 0o700


FLOOD = (
    "  - match: {phase: plan}\n    follow_ups: ["
    + ", ".join(f'"Follow-up number {n}"' for n in range(30))
    + ', "Anything"]\n'
)


def test_one_result_creates_at_most_max_follow_ups_and_reports_the_rest(git_repo: Repo) -> None:
    repo = write_project(git_repo, FLOOD, execution="max_follow_ups = 5", pipelines=PIPELINE)
    add_items(repo, "Anything")
    result = repo.ok("run", "--plain", "--cap", "2")
    items = items_by_id(repo)
    assert sorted(items) == ["WRK-001", "WRK-002", "WRK-003", "WRK-004", "WRK-005", "WRK-006"]
    assert "Follow-up number 5" not in {i["title"] for i in items.values()}
    assert "'Follow-up number 5 and 25 more' skipped: over the limit of 5" in result.out
    events = repo.ok("log", "--item", "WRK-001", "--json").json_lines()
    over = [e["data"] for e in events if "follow_ups_over_limit" in e["data"]]
    assert over == [
        {
            "follow_ups_over_limit": 26,
            "limit": 5,
            "titles": [f"Follow-up number {n}" for n in range(5, 25)],
        }
    ]


DUPLICATE_OF_WORK_IN_PROGRESS = """\
  - match: {item: WRK-001, phase: triage}
    assessments: {size: small, risk: low, complexity: low, impact: medium}
    duplicates: [WRK-002, WRK-404]
"""


def test_triage_never_merges_away_an_item_that_is_past_triage(git_repo: Repo) -> None:
    pipeline = PIPELINE.replace(
        '{ name = "plan", is_destructive = false, max_retries = 0 }',
        '{ name = "plan", is_destructive = false }, { name = "build", is_destructive = false }',
    )
    repo = write_project(git_repo, DUPLICATE_OF_WORK_IN_PROGRESS, pipelines=pipeline)
    add_items(repo, "Older idea", "Work already under way")
    repo.ok("run", "--target", "WRK-002", "--cap", "2")
    assert items_by_id(repo)["WRK-002"]["status"] == "in_progress"
    repo.ok("run", "--target", "WRK-001", "--cap", "1")
    items = items_by_id(repo)
    assert not items["WRK-002"]["archived"] and items["WRK-002"]["status"] == "in_progress"
    events = repo.ok("log", "--item", "WRK-001", "--json").json_lines()
    refused: dict[str, Any] = {
        e["data"]["duplicate_not_merged"]: e["data"]["why"]
        for e in events
        if "duplicate_not_merged" in e["data"]
    }
    assert refused.keys() == {"WRK-002", "WRK-404"}
    assert "in_progress, past triage" in refused["WRK-002"]
    assert refused["WRK-404"] == "no such item"


def test_a_duplicate_of_an_archived_item_is_recorded_with_the_reason(git_repo: Repo) -> None:
    rules = """\
  - match: {item: WRK-002, phase: triage}
    assessments: {size: small, risk: low, complexity: low, impact: medium}
    duplicates: [WRK-001]
"""
    repo = write_project(git_repo, rules, pipelines=PIPELINE)
    add_items(repo, "The first idea", "The same idea again")
    repo.ok("close", "WRK-001", "--reason", "done elsewhere")
    repo.ok("run", "--target", "WRK-002", "--cap", "1")
    items = items_by_id(repo)
    assert not items["WRK-002"]["archived"]  # not dropped: it goes on, with the reason kept
    [why] = [
        e["data"]["why"]
        for e in repo.ok("log", "--item", "WRK-002", "--json").json_lines()
        if e["data"].get("duplicate_not_merged") == "WRK-001"
    ]
    assert (
        why == "it is already done or archived (archived: done elsewhere); the item stays as it is"
    )
    assert f"duplicate WRK-001 not merged: {why}" in repo.ok("show", "WRK-002").out
