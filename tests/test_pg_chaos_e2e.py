"""Workers in separate clones on one PostgreSQL database and one bare remote, SIGKILLed at
random (the worker alone, or its whole process group with its agents) and started again:
nothing is lost, nothing done twice (DESIGN §14, §6).

Checked at the end: every item done; each phase of each item committed by exactly one run;
every side effect once; on the remote's main each item's file, with its content, committed
under that item once; no run left live.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
from typing import Any

import pytest

from tests.conftest import EXE, Repo, git_in
from tests.test_pg_workers_e2e import WORKTREES, Fleet
from tests.test_pg_workers_e2e import fleet as fleet  # noqa: PLC0414 (the fixture)
from tests.waiting import DEADLINE_SECONDS, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.serial]

ITEMS = int(os.environ.get("CHAOS_ITEMS", "10"))
KILLS = int(os.environ.get("CHAOS_KILLS", "8"))
WORKERS = int(os.environ.get("CHAOS_WORKERS", "3"))  # more by hand: CHAOS_WORKERS=6
CHAOS = (WORKTREES + "max_concurrent = 2\nmax_wip = 4\nlease_seconds = 3", False, 0.4)


class Workers:
    """One `run` process per clone, each its own process group, started again at will."""

    def __init__(self, fleet: Fleet, clones: list[Repo]) -> None:
        self.fleet, self.clones = fleet, clones
        self.live: dict[int, subprocess.Popen[str]] = {}

    def start(self, index: int) -> None:
        repo = self.clones[index]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PHASE_GOLEM")}
        log = (self.fleet.tmp / f"{repo.root.name}.out").open("a", encoding="utf-8")
        self.live[index] = subprocess.Popen(
            [str(EXE), "run", "--plain"],
            cwd=repo.root,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def kill(self, index: int, *, group: bool) -> None:
        worker = self.live[index]
        if group:
            os.killpg(worker.pid, signal.SIGKILL)  # the worker and the agents it started
        else:
            worker.send_signal(signal.SIGKILL)  # its agents live on, as orphans
        worker.wait(timeout=DEADLINE_SECONDS)

    def any_live(self) -> bool:
        return any(worker.poll() is None for worker in self.live.values())

    def stop_all(self) -> None:
        for worker in self.live.values():
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=DEADLINE_SECONDS)

    def output(self, index: int) -> str:
        return (self.fleet.tmp / f"{self.clones[index].root.name}.out").read_text("utf-8")


def _runs(repo: Repo) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = repo.ok("runs", "--json").json()
    return runs


def _committed(repo: Repo) -> int:
    return sum(1 for r in _runs(repo) if r["status"] == "committed")


@pytest.mark.parametrize("fleet", [CHAOS], indirect=True)
@pytest.mark.parametrize("seed", [7, 23])
def test_workers_killed_at_random_lose_nothing_and_repeat_nothing(fleet: Fleet, seed: int) -> None:
    rng = random.Random(seed)
    clones = [fleet.clone() for _ in range(WORKERS)]
    for n in range(1, ITEMS + 1):
        clones[0].ok("add", f"Feature {n}")
    workers = Workers(fleet, clones)
    try:
        for index in range(len(clones)):
            workers.start(index)
        kills = 0
        while kills < KILLS and workers.any_live():
            done = _committed(clones[0])
            # Some progress between kills, so every kill lands somewhere new.
            wait_until(
                lambda: _committed(clones[0]) > done or not workers.any_live(),  # noqa: B023
                "a run to commit",
            )
            victim = rng.randrange(len(clones))
            if workers.live[victim].poll() is None:  # an exited worker stays exited
                workers.kill(victim, group=rng.random() < 0.5)
                kills += 1
                workers.start(victim)
        assert kills >= KILLS // 2, f"only {kills} kills landed: the backlog was too short"
        for index, worker in workers.live.items():
            code = worker.wait(timeout=DEADLINE_SECONDS)
            assert code == 0, (index, code, workers.output(index)[-3000:])
    finally:
        workers.stop_all()
    _check_nothing_lost_nothing_twice(fleet, clones[1])


def _check_nothing_lost_nothing_twice(fleet: Fleet, repo: Repo) -> None:
    items = repo.ok("status", "--all", "--json").json()
    stuck = {i["id"]: repo.ok("log", "--item", i["id"]).out for i in items if i["status"] != "done"}
    for item_id, log in stuck.items():
        print(f"--- {item_id}\n{log}")  # shown with the failure: how it got stuck
    assert len(items) == ITEMS and not stuck, sorted(stuck)
    runs = _runs(repo)
    assert not [r for r in runs if r["status"] in ("active", "queued")], runs
    committed = collections.Counter(
        (r["item_id"], r["phase"]) for r in runs if r["status"] == "committed"
    )
    assert len(committed) == ITEMS * 5 and set(committed.values()) == {1}, committed
    assert sorted(fleet.side_effects()) == sorted(f"{i['id']} ship" for i in items)
    on_main = set(git_in(fleet.origin, "ls-tree", "-r", "--name-only", "main").split())
    for item in items:
        path = f"src/{item['id']}.txt"
        if path not in on_main:  # shown with the failure: where its work went
            print(git_in(fleet.origin, "log", "--graph", "--all", "--format=%h %d %s"))
            print(repo.ok("log", "--item", item["id"]).out)
        assert git_in(fleet.origin, "show", f"main:{path}") == f"built {item['id']}\n"
        touching = git_in(fleet.origin, "log", "--format=%s", "--no-merges", "main", "--", path)
        subjects = touching.splitlines()
        assert len(subjects) == 1 and subjects[0].startswith(f"[{item['id']}]"), subjects
