"""Helpers for end-to-end runs: a git project driven by the real CLI and the simulated agent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from tests.conftest import EXE, Repo
from tests.waiting import live_agents, wait_for_file, wait_until

MINI_PIPELINE = """\
[pipelines.feature]
phases = [
    { name = "plan", is_destructive = false },
    { name = "build", is_destructive = true },
    { name = "review", is_destructive = false },
]
"""
TRIAGE_SMALL = """\
  - match: {phase: triage}
    assessments: {size: small, risk: low, complexity: low, impact: medium}
"""


def write_project(
    repo: Repo,
    rules: str = "",
    *,
    execution: str = "",
    pipelines: str = MINI_PIPELINE,
    agent: str = 'cli = "sim"\nscenario = "scenario.yaml"',
    defaults: str = '{result: phase_complete, summary: "{phase} done for {item}"}',
) -> Repo:
    config = f'[project]\nprefix = "WRK"\n\n[execution]\n{execution}\n\n[agent]\n{agent}\n\n'
    (repo.root / "phase-golem.toml").write_text(config + pipelines, encoding="utf-8")
    scenario = f"defaults: {defaults}\nrules:\n{rules}{TRIAGE_SMALL}"
    (repo.root / "scenario.yaml").write_text(scenario, encoding="utf-8")
    repo.ok("init")
    commit_all(repo, "project set-up")
    return repo


def commit_all(repo: Repo, message: str) -> None:
    """Commit whatever the test wrote, so `run` finds the clean tree it requires."""
    subprocess.run(["git", "-C", str(repo.root), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(repo.root), "commit", "-q", "--allow-empty", "-m", message], check=True
    )


def add_items(repo: Repo, *titles: str) -> None:
    for title in titles:
        repo.ok("add", title)


def runs_of(repo: Repo, item: str | None = None) -> list[dict[str, Any]]:
    args = ["runs", "--json"] + (["--item", item] if item else [])
    runs: list[dict[str, Any]] = repo.ok(*args).json()
    return sorted(runs, key=lambda r: int(r["id"].split("-")[1]))


def items_by_id(repo: Repo) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for i in repo.ok("status", "--all", "--json").json()}


def interval(run: dict[str, Any]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(run["started_at"]), datetime.fromisoformat(run["ended_at"])


def overlaps(a: dict[str, Any], b: dict[str, Any]) -> bool:
    start_a, end_a = interval(a)
    start_b, end_b = interval(b)
    return start_a < end_b and start_b < end_a


def run_dir(repo: Repo, run_id: str) -> Path:
    return repo.root / ".phase-golem" / "runs" / run_id


@dataclass
class Chain:
    runs: list[dict[str, Any]]

    def linked(self) -> bool:
        return all(later["retry_of"] == earlier["id"] for earlier, later in pairwise(self.runs))


def chain_of(runs: list[dict[str, Any]], phase: str) -> Chain:
    return Chain([r for r in runs if r["phase"] == phase])


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


SIGINT = signal.SIGINT


def start_run(repo: Repo, *, own_session: bool = False) -> subprocess.Popen[str]:
    """`phase-golem run` in the background, output captured, our own env vars dropped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHASE_GOLEM")}
    return subprocess.Popen(
        [str(EXE), "run"],
        cwd=repo.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=own_session,
    )


def wait_for_agents(
    repo: Repo, phase: str, count: int, *, process: subprocess.Popen[str] | None = None
) -> list[dict[str, Any]]:
    """Runs of `phase` whose agent has started and not ended, once there are `count`."""

    def enough() -> list[dict[str, Any]] | None:
        live = live_agents(repo.root, phase)
        return live if len(live) >= count else None

    return wait_until(enough, f"{count} {phase} agent(s) running", process=process)


def wait_until_begun(
    repo: Repo, run_id: str, *, process: subprocess.Popen[str] | None = None
) -> None:
    """Wait until the simulated agent of `run_id` has counted its invocation (it says so
    on its stream): a kill before that would make its retry the first invocation again."""
    stdout = run_dir(repo, run_id) / "stdout.log"
    wait_until(
        lambda: stdout.exists() and b'"subtype": "init"' in stdout.read_bytes(),
        f"the agent of {run_id} has begun",
        process=process,
    )


def kill_mid_phase(
    repo: Repo, phase: str, *, agent_too: bool, once_exists: str | None = None
) -> dict[str, Any]:
    """Start `run`, SIGKILL it once an agent of `phase` is running; return that run.

    The kill waits until the agent has begun (counted its invocation, logged its key).
    With `agent_too` the agent dies as well (power loss); without, it lives on as an orphan.
    With `once_exists`, the kill waits until the agent has written that file; the agent's
    scenario rule should then hold it (`wait_for`) until the test lets it go.
    """
    process = start_run(repo, own_session=True)
    try:
        if once_exists is not None:
            wait_for_file(repo.root / once_exists, process=process)
        live = wait_for_agents(repo, phase, 1, process=process)
        wait_until_begun(repo, live[0]["id"], process=process)
        # The orchestrator dies first: were the agent first, a slow machine could let the
        # orchestrator see its agent die and record that, which a power loss never does.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        if agent_too:
            os.killpg(live[0]["pid"], signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return live[0]
