"""More of `run` end to end: cap, circuit breaker, sleeping, subphases, crashes, recovery."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from tests.conftest import Repo
from tests.e2e import (
    add_items,
    chain_of,
    commit_all,
    items_by_id,
    kill_mid_phase,
    run_dir,
    runs_of,
    write_project,
)
from tests.waiting import never


def test_cap_stops_after_that_many_phases(git_repo: Repo) -> None:
    repo = write_project(git_repo, "")
    add_items(repo, "Capped")
    result = repo.pg("run", "--cap", "2")
    assert result.code == 0
    assert "Phases executed: 2" in result.out and "Halt reason: CapReached" in result.out
    assert [r["phase"] for r in runs_of(repo)] == ["triage", "plan"]


def test_two_exhausted_items_in_a_row_trip_the_circuit_breaker(git_repo: Repo) -> None:
    repo = write_project(
        git_repo, "  - match: {phase: plan}\n    behave: crash\n", execution="max_retries = 0"
    )
    add_items(repo, "One", "Two", "Three")
    result = repo.pg("run")
    assert result.code == 1
    assert "Halt reason: CircuitBreakerTripped" in result.out
    items = items_by_id(repo)
    assert [items[i]["status"] for i in ("WRK-001", "WRK-002")] == ["blocked", "blocked"]
    assert items["WRK-003"]["status"] in ("new", "ready")
    reasons = items["WRK-001"]["blocked_reason"]
    assert "agent ended without writing a result (exit code 3)" in reasons


def test_come_back_later_sleeps_and_reruns_the_phase_when_woken(git_repo: Repo) -> None:
    rules = "  - match: {phase: plan}\n    retry_after_seconds: 1\n    times: 1\n"
    repo = write_project(
        git_repo, rules, execution="[execution.wake]\nmin_seconds = 1\nmax_seconds = 5"
    )
    add_items(repo, "Wait for CI")
    assert repo.pg("run").code == 0
    plans = chain_of(runs_of(repo), "plan").runs
    assert [r["status"] for r in plans] == ["committed", "committed"]
    # Woken no earlier than asked: the sleep is counted from the first plan's completion.
    slept = datetime.fromisoformat(plans[1]["started_at"]) - datetime.fromisoformat(
        plans[0]["ended_at"]
    )
    assert slept >= timedelta(seconds=1)
    assert plans[1]["visit"] == 2 and plans[0]["idempotency_key"] != plans[1]["idempotency_key"]
    prompt = (run_dir(repo, plans[1]["id"]) / "prompt.md").read_text()
    assert "## Why You Were Woken" in prompt
    assert items_by_id(repo)["WRK-001"]["status"] == "done"


def test_subphases_rerun_the_phase_as_new_visits(git_repo: Repo) -> None:
    repo = write_project(git_repo, "  - match: {phase: build}\n    subphases: 2\n")
    add_items(repo, "Three-part build")
    assert repo.pg("run").code == 0
    builds = chain_of(runs_of(repo), "build").runs
    assert [r["result"]["result"] for r in builds] == [
        "subphase_complete",
        "subphase_complete",
        "phase_complete",
    ]
    assert [r["visit"] for r in builds] == [1, 2, 3]
    assert all(r["retry_of"] is None for r in builds)
    prompt = (run_dir(repo, builds[1]["id"]) / "prompt.md").read_text()
    assert "## Previous Phase Summary" in prompt and "subphase 1 of 2" in prompt


def test_an_oversized_result_is_an_invalid_result(git_repo: Repo) -> None:
    rules = "  - match: {phase: plan}\n    behave: oversized\n    times: 1\n"
    repo = write_project(git_repo, rules)
    add_items(repo, "Chatty")
    assert repo.pg("run").code == 0
    first = chain_of(runs_of(repo), "plan").runs[0]
    assert first["error_class"] == "invalid_result" and "byte limit" in first["error"]


def test_after_kill_9_the_next_run_recovers_the_interrupted_run(
    git_repo: Repo, tmp_path: Path
) -> None:
    hold = f"  - match: {{phase: plan}}\n    wait_for: {never(tmp_path)!r}\n    times: 1\n"
    repo = write_project(git_repo, hold)
    add_items(repo, "Interrupted")
    kill_mid_phase(repo, "plan", agent_too=True)  # as when the machine loses power
    result = repo.pg("run")
    assert result.code == 0, result.err
    assert "[recovery]" in result.out
    plans = chain_of(runs_of(repo), "plan").runs
    assert [r["status"] for r in plans] == ["crashed", "committed"]
    assert plans[1]["retry_of"] == plans[0]["id"] and plans[1]["attempt"] == 1
    assert plans[1]["idempotency_key"] == plans[0]["idempotency_key"]
    assert items_by_id(repo)["WRK-001"]["status"] == "done"
    assert not [r for r in runs_of(repo) if r["status"] == "active"]


def test_a_budget_stops_an_item_that_spends_too_much(git_repo: Repo) -> None:
    repo = write_project(git_repo, "  - match: {phase: plan}\n    cost: 0.5\n")
    with (repo.root / "phase-golem.toml").open("a") as config:
        config.write("\n[budget]\nmax_cost_usd_per_item = 0.3\n")
    commit_all(repo, "budget")
    add_items(repo, "Expensive")
    assert repo.pg("run").code == 1
    item = items_by_id(repo)["WRK-001"]
    assert item["status"] == "blocked" and item["blocked_type"] == "decision"
    assert "over the per-item budget $0.3000" in item["blocked_reason"]
    assert item["cost_usd"] == 0.51  # triage 0.01 + plan 0.5
