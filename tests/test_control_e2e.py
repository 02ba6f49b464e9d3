"""Steering a real `run` from a second process (DESIGN §9): pause, resume and retry through
the real CLI while `run` works with the simulated agent."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import EXE, Repo
from tests.e2e import add_items, items_by_id, run_dir, runs_of, write_project
from tests.waiting import DEADLINE_SECONDS, live_agents, state_rows, wait_until


class Lines:
    """The `run --plain` output, read as it comes (one line per event)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str) -> str:
        def found() -> str | None:
            with self._lock:
                return next((line for line in self.lines if text in line), None)

        return wait_until(found, f"run says {text!r}", process=self.process)

    def finish(self) -> int:
        code = self.process.wait(timeout=DEADLINE_SECONDS)
        self._thread.join(timeout=60)
        return code


@contextmanager
def running(repo: Repo) -> Iterator[Lines]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHASE_GOLEM")}
    process = subprocess.Popen(
        [str(EXE), "run", "--plain"],
        cwd=repo.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        yield Lines(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _started_runs(repo: Repo) -> list[dict[str, object]]:
    """Live runs past `queued`: claimed by a worker, or with an agent started."""
    return state_rows(repo.root, "SELECT id FROM runs WHERE status = 'active' AND step != 'queued'")


def test_pause_from_another_terminal_lets_the_running_agent_finish_and_starts_nothing(
    git_repo: Repo, tmp_path: Path
) -> None:
    gate = tmp_path / "let-the-plan-finish"
    rules = f"  - match: {{item: WRK-001, phase: plan}}\n    wait_for: {str(gate)!r}\n"
    repo = write_project(git_repo, rules, execution="max_wip = 2\nmax_concurrent = 1")
    add_items(repo, "Held plan", "Waits its turn")
    with running(repo) as run:
        wait_until(lambda: live_agents(repo.root, "plan"), "the plan agent runs")
        said = repo.ok("pause", "--reason", "deploy freeze").out
        known = {r["id"] for r in runs_of(repo)}  # queued or running when the flag went up
        assert "Scheduler paused since" in said and "deploy freeze" in said
        assert "Already paused." in repo.ok("pause").out
        run.wait_for("no new runs start; 1 running agent(s) will finish")
        assert "deploy freeze" in repo.ok("status").out
        gate.write_text("go")
        run.wait_for("[WRK-001][plan] ")  # the running agent finished its phase
        # Its completion is followed by decisions under the flag: nothing new is queued,
        # and what was queued before stays queued.
        assert {r["id"] for r in runs_of(repo)} <= known
        assert _started_runs(repo) == []
        assert repo.ok("resume").out.strip() == "Scheduler resumed"
        run.wait_for("Scheduler resumed: starting runs again")
        assert run.finish() == 0
    assert {i["status"] for i in items_by_id(repo).values()} == {"done"}
    assert repo.ok("resume").out.strip() == "The scheduler was not paused"


def test_a_run_started_while_paused_waits_and_says_so(git_repo: Repo) -> None:
    repo = write_project(git_repo)
    add_items(repo, "Not yet")
    repo.ok("pause")
    with running(repo) as run:
        run.wait_for("Scheduler paused since")
        assert runs_of(repo) == []  # not even triage started
        repo.ok("resume")
        assert run.finish() == 0
    assert items_by_id(repo)["WRK-001"]["status"] == "done"


def test_retry_gives_an_exhausted_item_a_fresh_visit_with_its_failure_in_the_prompt(
    git_repo: Repo,
) -> None:
    rules = (
        "  - match: {phase: plan}\n    times: 2\n    result: failed\n"
        "    summary: 'the schema migration would drop a column'\n"
    )
    repo = write_project(git_repo, rules, execution="max_retries = 1")
    add_items(repo, "Exhausts its retries")
    assert repo.pg("run").code == 1
    assert items_by_id(repo)["WRK-001"]["status"] == "blocked"
    said = repo.ok("retry", "WRK-001", "--notes", "keep the column").out
    assert "WRK-001 → in_progress at plan: a fresh visit, retries reset" in said
    refused = repo.pg("retry", "WRK-001")
    assert refused.code == 2 and refused.err.count("\n") == 1
    assert "not blocked" in refused.err
    assert repo.pg("run").code == 0
    plans = [r for r in runs_of(repo, "WRK-001") if r["phase"] == "plan"]
    fresh = plans[-1]
    assert fresh["status"] == "committed" and fresh["attempt"] == 1  # retries were reset
    prompt = (run_dir(repo, fresh["id"]) / "prompt.md").read_text(encoding="utf-8")
    assert "A human asked for a retry. The previous attempt failed" in prompt
    assert "the schema migration would drop a column" in prompt and "keep the column" in prompt
    assert items_by_id(repo)["WRK-001"]["status"] == "done"
    kinds = [e["kind"] for e in repo.ok("log", "--json", "--item", "WRK-001").json_lines()]
    assert "item.retried" in kinds
