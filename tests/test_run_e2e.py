"""`phase-golem run` end to end: the real CLI, the simulated agent as a subprocess, real git."""

from __future__ import annotations

import signal
import stat
from pathlib import Path

import pytest

from tests.conftest import Repo
from tests.e2e import (
    SIGINT,
    add_items,
    chain_of,
    items_by_id,
    overlaps,
    run_dir,
    runs_of,
    start_run,
    wait_for_agents,
    write_project,
)
from tests.waiting import DEADLINE_SECONDS, group_alive, never


def test_a_backlog_flows_through_triage_and_the_pipeline_to_done(git_repo: Repo) -> None:
    repo = write_project(
        git_repo, '  - match: {phase: build}\n    write: {"src/{item}.txt": "x"}\n'
    )
    add_items(repo, "Add a login page", "Write the changelog")
    result = repo.pg("run")
    assert result.code == 0, result.err
    assert "Halt reason: AllDoneOrBlocked" in result.out
    assert "Items completed: 2" in result.out
    items = items_by_id(repo)
    assert {i["status"] for i in items.values()} == {"done"}
    assert all(i["archived"] for i in items.values())
    for item_id in items:
        phases = [(r["phase"], r["status"]) for r in runs_of(repo, item_id)]
        assert phases == [
            ("triage", "committed"),
            ("plan", "committed"),
            ("build", "committed"),
            ("review", "committed"),
        ]
        assert (repo.root / "src" / f"{item_id}.txt").exists()
        assert list((repo.root / "changes").glob(f"{item_id}_*"))
    worklog = next((repo.root / "_worklog").glob("*.md")).read_text()
    assert worklog.count("**Outcome:** Complete") == 8
    first = runs_of(repo)[0]
    directory = run_dir(repo, first["id"])
    for name in ("prompt.md", "result.json", "stdout.log", "stderr.log"):
        assert stat.S_IMODE((directory / name).stat().st_mode) == 0o600, name
    assert first["session_id"] == f"sim-{first['id']}"
    assert first["cost_usd"] > 0


# Each plan writes its file, then holds until both are there: only agents that really run
# side by side can both finish (one at a time, the first would wait for ever).
BOTH_PLANS = (
    "  - match: {phase: plan}\n"
    '    write: {"plans/{item}.md": "planned\\n"}\n'
    "    wait_for: [plans/WRK-001.md, plans/WRK-002.md]\n"
)


def test_two_agents_really_overlap_when_max_concurrent_is_two(git_repo: Repo) -> None:
    repo = write_project(git_repo, BOTH_PLANS, execution="max_wip = 2\nmax_concurrent = 2")
    add_items(repo, "First", "Second")
    assert repo.pg("run", "--cap", "4").code == 0
    plans = [r for r in runs_of(repo) if r["phase"] == "plan"]
    assert len(plans) == 2
    assert overlaps(plans[0], plans[1])


def test_a_destructive_phase_never_overlaps_anything(git_repo: Repo) -> None:
    # Builds linger, so a scheduler that let anything beside one would be caught; two plans
    # wait for each other, so the non-destructive ones are seen side by side.
    repo = write_project(
        git_repo,
        "  - match: {phase: build}\n    delay: 0.4\n"
        '  - match: {phase: plan, title: "^(One|Two)$"}\n'
        '    write: {"plans/{item}.md": "planned\\n"}\n'
        "    wait_for: [plans/WRK-001.md, plans/WRK-002.md]\n",
        execution="max_wip = 3\nmax_concurrent = 3",
    )
    add_items(repo, "One", "Two", "Three")
    assert repo.pg("run").code == 0
    runs = runs_of(repo)
    builds = [r for r in runs if r["phase"] == "build"]
    assert len(builds) == 3
    for build in builds:
        others = [r for r in runs if r["id"] != build["id"]]
        assert not [o["id"] for o in others if overlaps(build, o)], build["id"]
    # The non-destructive phases did run side by side, so the limit is not just max 1.
    plans = [r for r in runs if r["phase"] in ("plan", "triage")]
    assert any(overlaps(a, b) for a in plans for b in plans if a["id"] < b["id"])


def test_fail_twice_then_succeed_leaves_three_linked_runs(git_repo: Repo) -> None:
    repo = write_project(git_repo, "  - match: {phase: build}\n    fail_times: 2\n")
    add_items(repo, "Flaky build")
    assert repo.pg("run").code == 0
    chain = chain_of(runs_of(repo, "WRK-001"), "build")
    assert [r["attempt"] for r in chain.runs] == [1, 2, 3]
    assert [r["status"] for r in chain.runs] == ["failed:logic", "failed:logic", "committed"]
    assert chain.runs[0]["retry_of"] is None and chain.linked()
    assert len({r["idempotency_key"] for r in chain.runs}) == 1
    second_prompt = (run_dir(repo, chain.runs[1]["id"]) / "prompt.md").read_text()
    assert "## Previous Failure" in second_prompt
    assert "simulated failure 1 of 2" in second_prompt
    assert items_by_id(repo)["WRK-001"]["status"] == "done"


def test_exhausted_retries_block_the_item_and_exit_one(git_repo: Repo) -> None:
    repo = write_project(
        git_repo, "  - match: {phase: plan}\n    fail_times: 9\n", execution="max_retries = 1"
    )
    add_items(repo, "Never works")
    result = repo.pg("run")
    assert result.code == 1
    assert "no items completed" in result.err
    item = items_by_id(repo)["WRK-001"]
    assert item["status"] == "blocked"
    assert item["blocked_reason"].startswith("Phase plan failed after 2 attempts")


def test_a_hanging_agent_is_killed_at_its_timeout_with_nothing_left_behind(
    git_repo: Repo,
) -> None:
    pipelines = (
        "[pipelines.feature]\nphases = [\n"
        '    { name = "plan", is_destructive = false, timeout_seconds = 1.5, max_retries = 0 },\n'
        "]\n"
    )
    repo = write_project(
        git_repo, "  - match: {phase: plan}\n    behave: hang\n", pipelines=pipelines
    )
    add_items(repo, "Hangs forever")
    result = repo.pg("run")  # returns at all only because the timeout stopped the agent
    assert result.code == 1
    [plan] = [r for r in runs_of(repo) if r["phase"] == "plan"]
    assert plan["status"] == "failed:agent" and plan["error_class"] == "timeout"
    assert "timed out after 1.5 seconds" in plan["error"]
    assert plan["pid"] and not group_alive(plan["pid"])
    assert items_by_id(repo)["WRK-001"]["status"] == "blocked"


def test_a_garbage_result_is_retried_with_the_validation_error(git_repo: Repo) -> None:
    repo = write_project(git_repo, "  - match: {phase: plan}\n    behave: garbage\n    times: 1\n")
    add_items(repo, "Garbled")
    assert repo.pg("run").code == 0
    chain = chain_of(runs_of(repo, "WRK-001"), "plan")
    assert [r["error_class"] for r in chain.runs] == ["invalid_result", None]
    prompt = (run_dir(repo, chain.runs[1]["id"]) / "prompt.md").read_text()
    assert "result is not valid JSON" in prompt


def test_a_result_for_another_item_blocks_at_once(git_repo: Repo) -> None:
    repo = write_project(git_repo, "  - match: {phase: plan}\n    behave: wrong_item\n")
    add_items(repo, "Confused agent")
    assert repo.pg("run").code == 1
    plans = [r for r in runs_of(repo) if r["phase"] == "plan"]
    assert len(plans) == 1 and plans[0]["error_class"] == "mismatch"
    assert "identity mismatch" in items_by_id(repo)["WRK-001"]["blocked_reason"]


def test_a_blocked_result_blocks_with_its_context(git_repo: Repo) -> None:
    rules = (
        "  - match: {phase: plan}\n    result: blocked\n"
        '    context: "Which database?"\n    blocked_type: decision\n'
    )
    repo = write_project(git_repo, rules)
    add_items(repo, "Needs a decision")
    result = repo.pg("run")
    assert result.code == 1
    item = items_by_id(repo)["WRK-001"]
    assert (item["status"], item["blocked_reason"], item["blocked_type"]) == (
        "blocked",
        "Which database?",
        "decision",
    )
    assert item["blocked_from_status"] == "in_progress" and item["phase"] == "plan"
    assert repo.ok("approve", "WRK-001", "--notes", "Use PostgreSQL").code == 0
    assert items_by_id(repo)["WRK-001"]["status"] == "in_progress"


def test_duplicates_merge_into_the_lower_id(git_repo: Repo) -> None:
    rules = "  - match: {item: WRK-002, phase: triage}\n    duplicates: [WRK-001]\n"
    repo = write_project(git_repo, rules, execution="max_wip = 2\nmax_concurrent = 2")
    add_items(repo, "Add search", "Add a search box")
    result = repo.pg("run")
    assert result.code == 0
    assert "Items merged: 1" in result.out
    items = items_by_id(repo)
    assert items["WRK-002"]["archived"] and items["WRK-002"]["closed_reason"] == (
        "merged into WRK-001"
    )
    assert "[Merged from WRK-002] Add a search box" in items["WRK-001"]["description"]["context"]


def test_follow_ups_appear_with_their_origin_and_duplicates_are_skipped(git_repo: Repo) -> None:
    rules = (
        "  - match: {item: WRK-001, phase: plan}\n"
        '    follow_ups: ["Write docs", {title: "Add metrics", suggested_size: small}, '
        '"add  METRICS!", "Ship it"]\n'
    )
    repo = write_project(git_repo, rules)
    add_items(repo, "Ship it")
    result = repo.pg("run")
    assert result.code == 0, result.err
    assert "Follow-ups created: 2" in result.out
    items = items_by_id(repo)
    created = {i["title"]: i for i in items.values() if i["origin"]}
    assert set(created) == {"Write docs", "Add metrics"}
    assert {i["origin"] for i in created.values()} == {"WRK-001/plan"}
    assert created["Add metrics"]["size"] == "small"


@pytest.mark.parametrize(("sig", "code"), [(SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_signal_mid_run_exits_128_plus_it_leaving_items_where_they_were(
    git_repo: Repo, tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    """SIGINT ends `run` with 130 and SIGTERM with 143 (the shell's 128 + signal), after
    its agents were stopped; no item moved, and no agent is left alive."""
    repo = write_project(
        git_repo,
        f"  - match: {{phase: plan}}\n    wait_for: {never(tmp_path)!r}\n",
        execution="max_wip = 2\nmax_concurrent = 2",
    )
    add_items(repo, "Slow one", "Slow two")
    process = start_run(repo)
    try:
        started = wait_for_agents(repo, "plan", 2, process=process)
        assert len(started) == 2
        before = items_by_id(repo)
        process.send_signal(sig)
        out, err = process.communicate(timeout=DEADLINE_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == code, err
    assert "Halt reason: ShutdownRequested" in out and f"Stopped by {sig.name}" in out
    assert "All targets blocked" not in err
    after = items_by_id(repo)
    for item_id, item in before.items():
        assert (after[item_id]["status"], after[item_id]["phase"]) == (
            item["status"],
            item["phase"],
        )
    plans = [r for r in runs_of(repo) if r["phase"] == "plan"]
    assert {r["status"] for r in plans} == {"cancelled"}
    assert not [r["pid"] for r in plans if group_alive(r["pid"])]
    assert not (repo.root / ".phase-golem" / "phase-golem.pid").exists()
