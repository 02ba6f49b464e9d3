"""What the review of the main job found, kept fixed: budgets, the cap, scope, side effects,
adoption of agents that outlive the orchestrator, and a bad scenario."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from phase_golem.agents.orphans import agent_processes
from phase_golem.agents.process import run_process
from phase_golem.agents.sim import ScenarioError, load_scenario
from tests.conftest import Repo
from tests.e2e import (
    add_items,
    chain_of,
    commit_all,
    items_by_id,
    kill_mid_phase,
    runs_of,
    start_run,
    wait_for_agents,
    write_project,
)
from tests.waiting import DEADLINE_SECONDS, never, wait_until_due

SIDE_EFFECT_PIPELINE = """\
[pipelines.feature]
phases = [
    { name = "plan", is_destructive = false },
    { name = "ship", is_destructive = false, side_effect = true },
]
"""


def test_an_item_over_budget_gets_no_retry(git_repo: Repo) -> None:
    repo = write_project(git_repo, "  - match: {phase: plan}\n    result: failed\n    cost: 0.5\n")
    with (repo.root / "phase-golem.toml").open("a") as config:
        config.write("\n[budget]\nmax_cost_usd_per_item = 0.3\n")
    commit_all(repo, "budget")
    add_items(repo, "Expensive failure")
    assert repo.pg("run").code == 1
    plans = [r for r in runs_of(repo) if r["phase"] == "plan"]
    assert [r["status"] for r in plans] == ["failed:logic"]
    assert items_by_id(repo)["WRK-001"]["blocked_reason"].endswith("per-item budget $0.3000")


def test_the_cap_halts_at_once_even_with_an_item_asleep(git_repo: Repo) -> None:
    rules = "  - match: {phase: plan}\n    retry_after_seconds: 3600\n"
    repo = write_project(git_repo, rules, execution="[execution.wake]\nmin_seconds = 1")
    add_items(repo, "Sleeper")
    result = repo.pg("run", "--cap", "2")  # halts long before the hour is up
    assert result.code == 0 and "Halt reason: CapReached" in result.out
    assert items_by_id(repo)["WRK-001"]["wake_at"] is not None


def test_triage_never_claims_another_items_queued_phase(git_repo: Repo) -> None:
    rules = "  - match: {phase: plan}\n    behave: rate_limit\n    times: 1\n"
    backoff = "[execution.backoff]\nbase_seconds = 0.3"
    repo = write_project(git_repo, rules, execution=backoff)
    add_items(repo, "Throttled")
    assert repo.pg("run", "--cap", "2").code == 0
    [queued] = [r for r in runs_of(repo) if r["status"] == "active"]
    wait_until_due(repo.root, queued["id"])  # only the scope can keep triage away from it now
    add_items(repo, "Fresh")
    assert repo.pg("triage").code == 0
    runs = runs_of(repo)
    assert [r["phase"] for r in runs if r["item_id"] == "WRK-002"] == ["triage"]
    assert next(r for r in runs if r["id"] == queued["id"])["status"] == "active"


def test_a_side_effect_phase_that_crashed_is_never_retried_blindly(git_repo: Repo) -> None:
    rules = "  - match: {phase: ship}\n    behave: crash\n"
    repo = write_project(git_repo, rules, pipelines=SIDE_EFFECT_PIPELINE)
    add_items(repo, "Deploy")
    assert repo.pg("run").code == 1
    ships = [r for r in runs_of(repo) if r["phase"] == "ship"]
    assert [(r["status"], r["mutation"]) for r in ships] == [
        ("paused:indeterminate", "indeterminate")
    ]
    item = items_by_id(repo)["WRK-001"]
    assert (
        item["blocked_type"] == "decision"
        and "may or may not have acted" in (item["blocked_reason"])
    )


def test_an_agent_that_outlives_the_orchestrator_is_adopted_not_repeated(
    git_repo: Repo, tmp_path: Path
) -> None:
    release = tmp_path / "release-ship"
    rules = (
        f"  - match: {{phase: ship}}\n    wait_for: {str(release)!r}\n"
        '    side_effect_log: effects.log\n    summary: "shipped by the orphan"\n'
    )
    repo = write_project(git_repo, rules, pipelines=SIDE_EFFECT_PIPELINE)
    add_items(repo, "Deploy once")
    ship = kill_mid_phase(repo, "ship", agent_too=False)  # the agent lives on, held
    assert ship["mutation"] == "in_flight"
    release.touch()  # it finishes whenever it likes: before the next start or during it
    result = repo.pg("run")
    assert result.code == 0, result.err
    assert "adopting it" in result.out
    ships = chain_of(runs_of(repo), "ship").runs
    assert [(r["id"], r["status"]) for r in ships] == [(ship["id"], "committed")]
    assert ships[0]["result"]["summary"] == "shipped by the orphan"
    lines = (repo.root / "effects.log").read_text().splitlines()
    assert lines == [f"WRK-001 ship {ship['id']}"]
    assert items_by_id(repo)["WRK-001"]["status"] == "done"


def test_a_big_prompt_to_an_agent_that_never_reads_stdin_still_times_out(
    tmp_path: Path,
) -> None:
    async def go() -> bool:
        exit = await asyncio.wait_for(
            run_process(
                [sys.executable, "-c", "import time; time.sleep(60)"],
                cwd=tmp_path,
                env=dict(os.environ),
                stdout_path=tmp_path / "out",
                stderr_path=tmp_path / "err",
                timeout=1.0,
                stdin_text="x" * 2_000_000,
                grace=1.0,
            ),
            timeout=DEADLINE_SECONDS,
        )
        return exit.timed_out

    assert asyncio.run(go())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [{match: {title: '(unclosed'}}]", "match.title: not a regular expression"),
        ("rules: [{delay: soon}]", "delay: must be a number >= 0"),
        ("rules: [{fail_times: -1}]", "fail_times: must be a number >= 0"),
        ("rules: [{write: {/etc/x: y}}]", "must stay inside the project"),
        ("rules: [{write: {../x: y}}]", "must stay inside the project"),
        ("defaults: [1, 2]", "defaults must be a mapping"),
        ("rules: [{match: {colour: red}}]", "match: keys must be among"),
        ("rules: [{delay: .inf}]", "delay: must be a number >= 0"),
        ("rules: [{times: .nan}]", "times: must be a number >= 0"),
        ("rules: [{match: {attempt: x}}]", "match.attempt: must be a whole number"),
        ("rules: [{write: {'': x}}]", "must stay inside the project"),
    ],
)
def test_a_bad_scenario_is_named_precisely(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError, match=message.replace("(", r"\(")):
        load_scenario(path)
    path.write_bytes(b"\xff\xfe rules")
    with pytest.raises(ScenarioError, match="cannot read scenario"):
        load_scenario(path)


def test_recovery_never_signals_a_process_that_only_reuses_the_agents_pid(
    git_repo: Repo, tmp_path: Path
) -> None:
    hold = f"  - match: {{phase: plan}}\n    wait_for: {never(tmp_path)!r}\n    times: 1\n"
    repo = write_project(git_repo, hold)
    add_items(repo, "Rebooted")
    dead = kill_mid_phase(repo, "plan", agent_too=True)
    stranger = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        with sqlite3.connect(repo.root / ".phase-golem" / "state.db") as db:
            db.execute("UPDATE runs SET pid = ? WHERE id = ?", (stranger.pid, dead["id"]))
        result = repo.pg("run")
        assert result.code == 0, result.err
        assert stranger.poll() is None, "recovery signalled a process that is not ours"
        assert "adopting" not in result.out
    finally:
        stranger.kill()
        stranger.wait()


def test_an_adopted_agent_still_meets_its_timeout(git_repo: Repo) -> None:
    # The kill lands as soon as the agent's pid is in the database; the timeout only has to
    # be longer than that, and the adopting orchestrator must still enforce it.
    pipelines = (
        "[pipelines.feature]\nphases = [\n"
        '    { name = "plan", is_destructive = false, timeout_seconds = 8, max_retries = 0 },\n'
        "]\n"
    )
    repo = write_project(
        git_repo, "  - match: {phase: plan}\n    behave: hang\n", pipelines=pipelines
    )
    add_items(repo, "Hangs after a crash")
    orphan = kill_mid_phase(repo, "plan", agent_too=False)
    result = repo.pg("run")
    assert "adopting it" in result.out and result.code == 1
    [plan] = [r for r in runs_of(repo) if r["phase"] == "plan"]
    assert (plan["id"], plan["error_class"]) == (orphan["id"], "timeout")
    # Killed orphans may linger as zombies of the container's init: none is alive.
    assert agent_processes(orphan["pid"], orphan["id"], repo.root) == []


def test_stopping_a_side_effect_phase_mid_action_asks_a_human(
    git_repo: Repo, tmp_path: Path
) -> None:
    hold = f"  - match: {{phase: ship}}\n    wait_for: {never(tmp_path)!r}\n"
    repo = write_project(git_repo, hold, pipelines=SIDE_EFFECT_PIPELINE)
    add_items(repo, "Deploy, interrupted")
    process = start_run(repo)
    try:
        assert wait_for_agents(repo, "ship", 1, process=process)
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=DEADLINE_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    [ship] = [r for r in runs_of(repo) if r["phase"] == "ship"]
    assert (ship["status"], ship["mutation"]) == ("paused:indeterminate", "indeterminate")
    assert items_by_id(repo)["WRK-001"]["blocked_type"] == "decision"
    repo.pg("run")  # nothing runs it again without a decision
    assert [r["phase"] for r in runs_of(repo)].count("ship") == 1


def test_step_counts_a_retry_left_queued_by_an_earlier_run(git_repo: Repo) -> None:
    rules = "  - match: {phase: plan}\n    behave: rate_limit\n    times: 1\n"
    repo = write_project(git_repo, rules, execution="[execution.backoff]\nbase_seconds = 0.3")
    add_items(repo, "Throttled once")
    assert repo.pg("run", "--cap", "2").code == 0
    [queued] = [r for r in runs_of(repo) if r["status"] == "active"]
    wait_until_due(repo.root, queued["id"])
    result = repo.pg("step", "WRK-001")
    assert result.code == 0 and "Phases executed: 1" in result.out
    assert [r["phase"] for r in runs_of(repo)] == ["triage", "plan", "plan"]
