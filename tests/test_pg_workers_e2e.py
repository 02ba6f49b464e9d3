"""Many `phase-golem run` workers on one PostgreSQL database (DESIGN §14), end to end.

Each worker is a real `phase-golem run` process in its own clone of one bare origin
repository, with the simulated agent; the database and the remote are all they share.
Four of them finish one backlog: every item done once, no run claimed twice, every side
effect exactly once, and every item's work on the remote's main once, under its own item,
whichever workers ran its phases. Then
a worker is SIGKILLed while its agent is in the middle of a side effect: another worker on
this host leaves the run alone while that orphan agent lives (under the dead worker's
clone, not adoptable from its own), even after the lease expired, and once it has exited
finishes the item, its reconcile check saying the side effect happened: done once, never
retried.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXE, Repo, git_in, make_git_repo
from tests.e2e import commit_all
from tests.waiting import DEADLINE_SECONDS, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.serial]

CHECK = """\
import sys
item, log = sys.argv[1], sys.argv[2]
try:
    with open(log, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
except FileNotFoundError:
    sys.exit(1)
sys.exit(0 if any(line.split()[:2] == [item, "ship"] for line in lines) else 1)
"""


def _config(url: str, log: Path, execution: str) -> str:
    reconcile = json.dumps(f"{sys.executable} check.py {{item}} {log}")
    return (
        f'[project]\nprefix = "WRK"\n\n[storage]\nurl = "{url}"\n\n'
        f"[execution]\n{execution}\n\n"
        '[agent]\ncli = "sim"\nscenario = "scenario.yaml"\n\n'
        "[pipelines.feature]\nphases = [\n"
        '    { name = "plan", is_destructive = false },\n'
        '    { name = "build", is_destructive = true },\n'
        '    { name = "ship", is_destructive = false, side_effect = true, '
        f"reconcile = {reconcile} }},\n"
        '    { name = "merge", is_destructive = true, side_effect = true, agent = "merge" },\n'
        "]\n"
    )


def _scenario(log: Path, ship_gate: Path | None, delay: float = 0.1) -> str:
    gate = f"    wait_for: {str(ship_gate)!r}\n" if ship_gate else ""
    return (
        f'defaults: {{result: phase_complete, summary: "{{phase}} done for {{item}}", '
        f"delay: {delay}}}\n"
        "rules:\n"
        "  - match: {phase: triage}\n"
        "    assessments: {size: small, risk: low, complexity: low, impact: medium}\n"
        "  - match: {phase: build}\n"
        '    write: {"src/{item}.txt": "built {item}\\n"}\n'
        "  - match: {phase: ship}\n"
        f"{gate}"
        f"    side_effect_log: {str(log)!r}\n"
    )


class Fleet:
    """A bare origin repository, its clones (one per worker) and their `run` processes."""

    def __init__(
        self, tmp_path: Path, url: str, *, execution: str, gated: bool, delay: float = 0.1
    ) -> None:
        self.tmp = tmp_path
        self.log = tmp_path / "side-effects.log"
        self.gate = tmp_path / "ship-gate"  # a ship agent acts once the test opens it
        seed = Repo(make_git_repo(tmp_path / "seed"))
        (seed.root / "phase-golem.toml").write_text(
            _config(url, self.log, execution), encoding="utf-8"
        )
        scenario = _scenario(self.log, self.gate if gated else None, delay)
        (seed.root / "scenario.yaml").write_text(scenario, "utf-8")
        (seed.root / "check.py").write_text(CHECK, encoding="utf-8")
        seed.ok("init")
        commit_all(seed, "project set-up")
        self.origin = tmp_path / "origin.git"
        subprocess.run(
            ["git", "clone", "-q", "--bare", str(seed.root), str(self.origin)], check=True
        )
        self.clones: list[Repo] = []
        self.workers: list[subprocess.Popen[str]] = []

    def clone(self) -> Repo:
        path = self.tmp / f"clone-{len(self.clones)}"
        subprocess.run(["git", "clone", "-q", str(self.origin), str(path)], check=True)
        git_in(path, "config", "user.email", "t@example.com")
        git_in(path, "config", "user.name", "Test")
        repo = Repo(path)
        repo.ok("init")
        assert not git_in(path, "status", "--porcelain").strip(), "init dirtied the clone"
        self.clones.append(repo)
        return repo

    def start(self, repo: Repo) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PHASE_GOLEM")}
        name = repo.root.name
        out = (self.tmp / f"{name}.out").open("w", encoding="utf-8")
        err = (self.tmp / f"{name}.err").open("w", encoding="utf-8")
        worker = subprocess.Popen(
            [str(EXE), "run", "--plain"],
            cwd=repo.root,
            stdout=out,
            stderr=err,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        self.workers.append(worker)
        return worker

    def finish(self, worker: subprocess.Popen[str]) -> None:
        code = worker.wait(timeout=DEADLINE_SECONDS)
        index = self.workers.index(worker)
        name = self.clones[index].root.name if index < len(self.clones) else "?"
        err = (self.tmp / f"{name}.err").read_text(encoding="utf-8")
        out = (self.tmp / f"{name}.out").read_text(encoding="utf-8")
        assert code == 0, f"worker {name} exited {code}:\n{out[-3000:]}\n{err[-3000:]}"
        assert "Traceback" not in err, err

    def stop_all(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=DEADLINE_SECONDS)

    def side_effects(self) -> list[str]:
        if not self.log.exists():
            return []
        return [" ".join(line.split()[:2]) for line in self.log.read_text().splitlines()]


@pytest.fixture
def fleet(tmp_path: Path, pg_url: str, request: pytest.FixtureRequest) -> Iterator[Fleet]:
    execution, gated, *delay = request.param
    made = Fleet(tmp_path, pg_url, execution=execution, gated=gated, delay=(delay or [0.1])[0])
    yield made
    made.gate.touch()  # a held agent never outlives its test
    made.stop_all()


def _runs(repo: Repo) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = repo.ok("runs", "--json").json()
    return runs


WORKTREES = 'isolation = "worktree"\n'
FOUR = (WORKTREES + "max_concurrent = 2\nmax_wip = 8\nlease_seconds = 20", False)


@pytest.mark.parametrize("fleet", [FOUR], indirect=True)
def test_four_workers_finish_one_backlog_each_item_once(fleet: Fleet) -> None:
    clones = [fleet.clone() for _ in range(4)]
    titles = [f"Feature {n}" for n in range(1, 9)]
    for title in titles:
        clones[0].ok("add", title)
    workers = [fleet.start(clone) for clone in clones]
    for worker in workers:
        fleet.finish(worker)
    items = clones[1].ok("status", "--all", "--json").json()
    assert sorted(i["title"] for i in items) == titles
    assert {i["status"] for i in items} == {"done"}
    runs = _runs(clones[2])
    assert {r["status"] for r in runs} == {"committed"}, [
        r for r in runs if r["status"] != "committed"
    ]
    visits = collections.Counter((r["item_id"], r["phase"]) for r in runs)
    assert set(visits.values()) == {1}, visits  # each phase of each item ran once
    assert len(visits) == 8 * 5  # triage, plan, build, ship, merge
    events = clones[3].ok("log", "--json").json_lines()
    claims = collections.Counter(e["run_id"] for e in events if e["kind"] == "run.claimed")
    assert set(claims.values()) == {1} and len(claims) == len(runs)  # no double claim
    assert len({r["worker_id"] for r in runs}) >= 2, "the work was not shared at all"
    assert sorted(fleet.side_effects()) == sorted(f"{i['id']} ship" for i in items)
    # Every item's work is on the remote's main, committed once under its own item.
    on_main = git_in(fleet.origin, "ls-tree", "-r", "--name-only", "main").split()
    subjects = git_in(fleet.origin, "log", "--format=%s", "main").splitlines()
    for item in items:
        assert f"src/{item['id']}.txt" in on_main, (item["id"], on_main)
        built = [s for s in subjects if s.startswith(f"[{item['id']}][build]")]
        assert len(built) == 1, (item["id"], subjects)
        assert git_in(fleet.origin, "show", f"main:src/{item['id']}.txt") == f"built {item['id']}\n"
    # The phases of one item ran on more than one worker, and still met on its branch.
    by_item = collections.defaultdict(set)
    for r in runs:
        by_item[r["item_id"]].add(r["worker_id"])
    assert any(len(workers) > 1 for workers in by_item.values()), by_item


KILL = (WORKTREES + "max_concurrent = 1\nmax_wip = 1\nlease_seconds = 4", True)


@pytest.mark.parametrize("fleet", [KILL], indirect=True)
def test_a_killed_workers_side_effect_is_finished_by_another_not_repeated(
    fleet: Fleet,
) -> None:
    first, second = fleet.clone(), fleet.clone()
    first.ok("add", "Ship the release")
    doomed = fleet.start(first)

    def shipping() -> dict[str, Any] | None:
        live = [r for r in _runs(second) if r["phase"] == "ship" and r["status"] == "active"]
        return live[0] if live and live[0]["pid"] else None

    run = wait_until(shipping, "the ship agent to start", process=doomed)
    doomed.send_signal(signal.SIGKILL)  # the worker only: its agent lives on, at the gate
    doomed.wait(timeout=DEADLINE_SECONDS)
    assert run["host_id"] and run["boot_id"], run
    survivor = fleet.start(second)
    out_file = fleet.tmp / f"{second.root.name}.out"

    def waits_for_the_orphan() -> bool:
        return "still runs in another clone on this host" in out_file.read_text("utf-8")

    # The lease expired, the agent still acts: retrying now would race it, so it waits.
    wait_until(waits_for_the_orphan, "the survivor to wait for the orphan", process=survivor)
    assert fleet.side_effects() == [] and len(_runs(second)) == len(_runs(first))
    fleet.gate.touch()  # the orphan acts, writes its result and exits
    fleet.finish(survivor)
    items = second.ok("status", "--all", "--json").json()
    assert [i["status"] for i in items] == ["done"]
    assert fleet.side_effects() == [f"{items[0]['id']} ship"]  # acted once, not again
    ships = [r for r in _runs(second) if r["phase"] == "ship"]
    assert [r["id"] for r in ships] == [run["id"]]  # finished, not retried
    events = second.ok("log", "--json").json_lines()
    reconciled = [e for e in events if e["kind"] == "run.reconciled" and e["run_id"] == run["id"]]
    assert reconciled and reconciled[-1]["data"].get("verdict") == "happened", reconciled
    assert "its lease expired" in out_file.read_text(encoding="utf-8")
