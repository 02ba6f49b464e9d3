"""Durable waiting (issue 5 parts 1 and 3): leases renewed while an agent lives, agents paused
after a rate-limit streak or when unavailable until `resume-agent`, and backoffs and wake-ups
that survive a SIGKILL of the orchestrator without using attempts."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from tests.conftest import Repo
from tests.e2e import (
    add_items,
    chain_of,
    commit_all,
    items_by_id,
    run_dir,
    runs_of,
    start_run,
    wait_for_agents,
    write_project,
)
from tests.waiting import DEADLINE_SECONDS, state_rows, wait_until

T = TypeVar("T")

TWO_PIPELINES = """\
[pipelines.feature]
phases = [
    { name = "plan", is_destructive = false, agent = "sim" },
    { name = "build", is_destructive = false },
]

[pipelines.other]
phases = [
    { name = "build", is_destructive = false },
]
"""
OTHER_TRIAGE = """\
  - match: {phase: triage, title: "^Other"}
    assessments: {size: small, risk: low, complexity: low, impact: medium}
    pipeline_type: other
"""


def _events(repo: Repo, kind: str) -> list[dict[str, Any]]:
    return [e for e in repo.ok("log", "--json").json_lines() if e["kind"] == kind]


def _two_agents(git_repo: Repo, rules: str, execution: str) -> Repo:
    """`plan` runs on the `sim` agent; triage and `build` on another (the same simulator
    behind `cli = "command"`), so pausing `sim` leaves the other agent's work going."""
    command = f"{sys.executable} -m phase_golem.agents.sim --scenario scenario.yaml"
    return write_project(
        git_repo,
        OTHER_TRIAGE + rules,
        execution=execution,
        pipelines=TWO_PIPELINES,
        agent=f'cli = "command"\ncommand = "{command}"\nscenario = "scenario.yaml"',
    )


def _plans(repo: Repo) -> list[dict[str, Any]]:
    return [r for r in runs_of(repo) if r["phase"] == "plan"]


def test_a_rate_limit_streak_pauses_the_agent_not_the_item_until_resume_agent(
    git_repo: Repo,
) -> None:
    rules = "  - match: {phase: plan}\n    behave: rate_limit\n    times: 3\n"
    backoff = "max_wip = 2\n[execution.backoff]\nbase_seconds = 0.1\nmax_transient = 2"
    repo = _two_agents(git_repo, rules, backoff)
    add_items(repo, "Throttled", "Other work")
    first = repo.pg("run")
    assert first.code == 0, first.err  # the other agent's item completed meanwhile
    assert "Agent sim is paused" in first.out and "rate-limited 2 times in a row" in first.out
    items = items_by_id(repo)
    assert items["WRK-002"]["status"] == "done"
    assert (items["WRK-001"]["status"], items["WRK-001"]["phase"]) == ("in_progress", "plan")
    assert [r["status"] for r in _plans(repo)] == ["paused:transient", "paused:transient", "active"]
    assert "Agent sim is paused" in repo.ok("status").out

    again = repo.pg("run")  # still paused: nothing of its starts, and it says why
    assert again.code == 1 and "resume-agent sim" in again.out
    assert len(_plans(repo)) == 3

    for name, message in (("gpt", "unknown agent 'gpt'"), ("codex", "agent codex is not paused")):
        refused = repo.pg("resume-agent", name)
        assert refused.code == 2 and message in refused.err
    resumed = repo.pg("resume-agent", "sim")
    assert resumed.code == 0 and "agent sim resumed" in resumed.out
    assert repo.pg("run").code == 0
    plans = _plans(repo)
    # The streak starts again after the resume: one more limit is waited out, not paused.
    assert [r["status"] for r in plans] == ["paused:transient"] * 3 + ["committed"]
    assert {r["attempt"] for r in plans} == {1} and chain_of(plans, "plan").linked()
    assert items_by_id(repo)["WRK-001"]["status"] == "done"
    assert [e["data"]["agent"] for e in _events(repo, "agent.paused")] == ["sim"]
    assert [e["data"]["agent"] for e in _events(repo, "agent.resumed")] == ["sim"]


def test_an_unavailable_agent_is_paused_without_using_attempts(git_repo: Repo) -> None:
    repo = write_project(
        git_repo, "  - match: {phase: plan}\n    behave: unavailable\n    times: 1\n"
    )
    add_items(repo, "Logged out")
    result = repo.pg("run")
    assert result.code == 1 and "Agent sim is paused" in result.out
    plan, retry = _plans(repo)
    assert (plan["status"], plan["error_class"]) == ("paused:approval", "unavailable")
    assert (retry["status"], retry["retry_of"], retry["attempt"]) == ("active", plan["id"], 1)
    item = items_by_id(repo)["WRK-001"]
    assert (item["status"], item["phase"]) == ("in_progress", "plan")
    repo.ok("resume-agent", "sim")
    assert repo.pg("run").code == 0
    assert items_by_id(repo)["WRK-001"]["status"] == "done"
    assert [r["status"] for r in _plans(repo)] == ["paused:approval", "committed"]


def _kill_when(repo: Repo, ready: Callable[[], T], what: str) -> T:
    """SIGKILL `run` the moment `ready` (read straight from the database) holds; its value."""
    process = start_run(repo, own_session=True)
    try:
        seen = wait_until(ready, what, process=process)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return seen


def _db_runs(repo: Repo) -> list[dict[str, Any]]:
    return state_rows(repo.root, "SELECT * FROM runs ORDER BY id")


def _wake_at(repo: Repo, item_id: str) -> str | None:
    [row] = state_rows(repo.root, "SELECT wake_at FROM items WHERE id = ?", item_id)
    value: str | None = row["wake_at"]
    return value


def test_a_backoff_survives_a_sigkill_and_burns_no_attempt(git_repo: Repo) -> None:
    rules = "  - match: {phase: plan}\n    behave: rate_limit\n    times: 1\n"
    backoff = "max_retries = 0\n[execution.backoff]\nbase_seconds = 1.5"
    repo = write_project(git_repo, rules, execution=backoff)
    add_items(repo, "Throttled, then the power goes")

    def waiting_out_a_backoff() -> bool:
        return any(r["not_before"] and r["status"] == "active" for r in _db_runs(repo))

    _kill_when(repo, waiting_out_a_backoff, "a retry waits out its backoff")
    result = repo.pg("run")
    assert result.code == 0, result.err
    first, retry = _plans(repo)
    assert (first["status"], retry["status"]) == ("paused:transient", "committed")
    assert first["attempt"] == retry["attempt"] == 1 and retry["retry_of"] == first["id"]
    started = datetime.fromisoformat(retry["started_at"])
    assert started >= datetime.fromisoformat(retry["not_before"])
    assert "[recovery]" not in result.out  # a queued retry needs no recovery


def test_a_sleeping_item_survives_a_sigkill_and_wakes_with_the_reason(git_repo: Repo) -> None:
    rules = "  - match: {phase: plan}\n    retry_after_seconds: 2.5\n    times: 1\n"
    repo = write_project(git_repo, rules, execution="[execution.wake]\nmin_seconds = 1")
    add_items(repo, "Wait for CI, then crash")
    # The kill follows the moment the database shows the item asleep (the value seen then is
    # the one compared below, never a second read that a slow machine could make too late).
    seen = _kill_when(repo, lambda: _wake_at(repo, "WRK-001"), "the item is asleep")
    assert _wake_at(repo, "WRK-001") == seen  # the sleep survived the kill
    assert [r["status"] for r in _plans(repo)] == ["committed"]
    wake_at = datetime.fromisoformat(seen)
    assert repo.pg("run").code == 0
    first, second = _plans(repo)
    assert (first["status"], second["status"]) == ("committed", "committed")
    assert datetime.fromisoformat(second["started_at"]) >= wake_at
    assert "## Why You Were Woken" in (run_dir(repo, second["id"]) / "prompt.md").read_text()
    assert items_by_id(repo)["WRK-001"]["status"] == "done"


def test_the_lease_is_renewed_while_the_agent_lives(git_repo: Repo, tmp_path: Path) -> None:
    release = tmp_path / "release-plan"
    repo = write_project(
        git_repo,
        f"  - match: {{phase: plan}}\n    wait_for: {str(release)!r}\n",
        execution="lease_seconds = 0.6",
    )
    add_items(repo, "Slow plan")
    process = start_run(repo)
    leases: list[str] = []

    def renewed_twice() -> bool:
        [row] = state_rows(repo.root, "SELECT lease_until FROM runs WHERE id = ?", live["id"])
        if not leases or row["lease_until"] != leases[-1]:
            leases.append(row["lease_until"])
        return len(leases) >= 3

    try:
        [live] = wait_for_agents(repo, "plan", 1, process=process)
        wait_until(renewed_twice, "the lease renewed twice while the agent held", process=process)
        release.touch()
        out, _ = process.communicate(timeout=DEADLINE_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert leases == sorted(leases) and len(set(leases)) == 3, leases
    # Renewed, the lease never expired under its own orchestrator: no sweep took it over.
    assert [r["status"] for r in _plans(repo)] == ["committed"]
    assert "[recovery]" not in out


def test_reconcile_config_is_checked(git_repo: Repo) -> None:
    bad = (
        "[pipelines.feature]\nphases = [\n"
        '    { name = "plan", is_destructive = false, reconcile = "true" },\n'
        '    { name = "ship", is_destructive = false, side_effect = true, reconcile = "x \'" },\n'
        "]\n"
    )
    repo = write_project(git_repo, pipelines=MINIMAL_OK)
    (repo.root / "phase-golem.toml").write_text(
        '[agent]\ncli = "sim"\nscenario = "scenario.yaml"\n\n' + bad, encoding="utf-8"
    )
    commit_all(repo, "a config with bad reconcile keys")
    result = repo.pg("run")
    assert result.code == 2, result.err
    assert "phases[0].reconcile: only a side_effect = true phase has one" in result.err
    assert "phases[1].reconcile: cannot be split into words" in result.err


MINIMAL_OK = '[pipelines.feature]\nphases = [{ name = "plan", is_destructive = false }]\n'


def test_a_run_whose_owner_stopped_renewing_its_lease_is_swept_during_run(
    git_repo: Repo, tmp_path: Path
) -> None:
    release = tmp_path / "release-plan"
    rules = f"  - match: {{item: WRK-001, phase: plan}}\n    wait_for: {str(release)!r}\n"
    repo = write_project(
        git_repo, rules, execution="max_wip = 2\nmax_concurrent = 1\nlease_seconds = 1"
    )
    add_items(repo, "Slow", "Owned by a worker that died")
    repo.ok("triage")
    process = start_run(repo)
    try:
        # WRK-001 holds the only slot until the ghost below has been swept.
        assert wait_for_agents(repo, "plan", 1, process=process)
        with contextlib.closing(sqlite3.connect(repo.root / ".phase-golem" / "state.db")) as db:
            db.execute(
                "INSERT INTO runs (id, item_id, phase, pool, kind, attempt, visit, step, "
                "status, idempotency_key, worker_id, lease_until, queued_at) VALUES "
                "('run-900001', 'WRK-002', 'plan', 'main', 'phase', 1, 1, 'claimed', "
                "'active', 'ik:ghost', 'elsewhere:1', '2026-01-01T00:00:00.000000+00:00', "
                "'2026-01-01T00:00:00.000000+00:00')"
            )
            db.commit()
        wait_until(
            lambda: state_rows(
                repo.root, "SELECT id FROM runs WHERE id = 'run-900001' AND status = 'crashed'"
            ),
            "the ghost run was swept",
            process=process,
        )
        release.touch()
        out, _ = process.communicate(timeout=DEADLINE_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "run-900001: its lease expired" in out
    plans = {r["id"]: r for r in runs_of(repo, "WRK-002") if r["phase"] == "plan"}
    ghost = plans.pop("run-900001")
    [retry] = plans.values()
    assert ghost["status"] == "crashed"
    assert (retry["retry_of"], retry["idempotency_key"], retry["status"]) == (
        "run-900001",
        "ik:ghost",
        "committed",
    )
    assert {i["status"] for i in items_by_id(repo).values()} == {"done"}
