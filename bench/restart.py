"""Restart after a crash with a large backlog and many runs in flight, through the real CLI.

A project with 10,000 items of a realistic mix and 100 items whose runs were in flight when
the orchestrator died. Two cases, each a fresh copy of the project:

- dead: their agents are gone. Every run is recovered (crashed, retried with the same key)
  and the 100 retries start again; measured: the first agent start and the 100th, counted
  from the moment `phase-golem run` holds its lock.
- live: their agents still run (real processes carrying the run's environment). Every one
  is adopted; measured: the 100th adoption, from the lock.

Next to them, in the same run: one `git status` of the same repository, and the
orchestrator's peak RSS while the 100 agents are in flight. Times come from the ledger's
own timestamps and the lock's pid file, so nothing here polls on a fast-machine schedule.

    python bench/restart.py            # 10,000 items, 100 runs in flight
    python bench/restart.py --quick    # 1,000 items, 10 runs (a smoke run)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backlogs import make_backlog
from phase_golem.domain.items import ItemStatus, PhasePool, format_timestamp, new_item
from phase_golem.domain.runs import Run, RunKind, Step
from phase_golem.store.sqlite import SqliteStore

CONFIG = """\
[project]
prefix = "WRK"

[execution]
max_wip = {slots}
max_concurrent = {slots}
phase_timeout_minutes = 30
lease_seconds = 60

[agent]
cli = "command"
command = "sleep 600"
"""
DEADLINE_SECONDS = 120.0


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def build_project(root: Path, items: int, in_flight: int) -> list[str]:
    """The repository, the config and the store: `items` items plus `in_flight` runs that
    were started by an orchestrator that is gone. Returns the in-flight run ids."""
    root.mkdir(parents=True)
    _git(root, "init", "-q", "-b", "main")
    (root / "phase-golem.toml").write_text(CONFIG.format(slots=in_flight), encoding="utf-8")
    (root / "README.md").write_text("bench\n", encoding="utf-8")
    (root / ".gitignore").write_text(".phase-golem/\n", encoding="utf-8")
    for n in range(200):  # a repository with some files in it, for git status to read
        folder = root / "src" / f"pkg{n % 20}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"mod{n}.py").write_text(f"VALUE = {n}\n" * 20, encoding="utf-8")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "start")
    state = root / ".phase-golem"
    state.mkdir(mode=0o700)
    store = SqliteStore(state / "state.db", synchronous="OFF")
    backlog = make_backlog(items - in_flight, seed=11)
    started = datetime.now(UTC) - timedelta(minutes=1)
    run_ids = []
    with store.transaction() as tx:
        for item in backlog:
            tx.create_item(item)
        for n in range(in_flight):
            item_id = tx.allocate_item_id("WRK")
            item = new_item(item_id, f"In flight {n}", started).replace(
                status=ItemStatus.IN_PROGRESS,
                phase="prd",
                phase_pool=PhasePool.MAIN,
                pipeline_type="feature",
            )
            tx.create_item(item)
            run = Run(
                id=tx.allocate_run_id(),
                item_id=item_id,
                phase="prd",
                kind=RunKind.PHASE,
                queued_at=format_timestamp(started),
                pool=PhasePool.MAIN,
                step=Step.STARTED,
                started_at=format_timestamp(started),
                worker_id="gone-host:1",
                lease_until=format_timestamp(started + timedelta(seconds=60)),
                idempotency_key=f"ik:bench-{n}",
            )
            tx.create_run(run)
            run_ids.append(run.id)
    store.close()
    return run_ids


def start_live_agents(root: Path, run_ids: list[str]) -> list[subprocess.Popen[bytes]]:
    """Agents that outlived their orchestrator: each in its own group, with its run's
    environment (what recovery checks before it adopts), its pid recorded on the run."""
    agents = []
    store = SqliteStore(root / ".phase-golem" / "state.db")
    for run_id in run_ids:
        env = {**os.environ, "PHASE_GOLEM_RUN_ID": run_id, "PHASE_GOLEM_ROOT": str(root)}
        agents.append(subprocess.Popen(["sleep", "600"], env=env, start_new_session=True, cwd=root))
    with store.transaction() as tx:
        for run_id, agent in zip(run_ids, agents, strict=True):
            run = tx.get_run(run_id)
            assert run is not None
            tx._update_run(run.replace(pid=agent.pid), tx._stamp())  # type: ignore[attr-defined]
    store.close()
    return agents


@contextlib.contextmanager
def orchestrator(root: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b"}
    env |= {"GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}
    exe = Path(sys.executable).parent / "phase-golem"
    log = (root.parent / f"{root.name}.log").open("wb")
    process = subprocess.Popen(
        [str(exe), "run", "--plain"],
        cwd=root,
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _moments(db: Path, key: str) -> list[float]:
    """Wall-clock times (epoch seconds) of the ledger's run.updated events carrying `key`."""
    conn_store = SqliteStore(db)
    with conn_store.reader() as tx:
        found = [
            datetime.fromisoformat(e.at).timestamp()
            for e in tx.events(after_seq=0)
            if e.kind.value == "run.updated" and key in e.data
        ]
    conn_store.close()
    return sorted(found)


def measure(root: Path, run_ids: list[str], key: str) -> dict[str, float]:
    """Run the orchestrator until `key` (pid: an agent started; adopted_by: adopted) was
    recorded for every in-flight run, then stop it. Times are from the lock."""
    db = root / ".phase-golem" / "state.db"
    pid_file = root / ".phase-golem" / "phase-golem.pid"
    peak = 0.0
    with orchestrator(root) as process:
        deadline = time.monotonic() + DEADLINE_SECONDS
        moments: list[float] = []
        while time.monotonic() < deadline and process.poll() is None:
            peak = max(peak, _rss_mb(process.pid))
            moments = _moments(db, key)
            if len(moments) >= len(run_ids):
                break
            time.sleep(0.5)
        peak = max(peak, _rss_mb(process.pid))
        locked = pid_file.stat().st_mtime if pid_file.exists() else float("nan")
    if len(moments) < len(run_ids):
        log = (root.parent / f"{root.name}.log").read_text(errors="replace")[-2000:]
        raise SystemExit(f"only {len(moments)} of {len(run_ids)} runs got {key!r}:\n{log}")
    return {"first": moments[0] - locked, "all": moments[len(run_ids) - 1] - locked, "rss": peak}


def git_status_seconds(root: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["git", "status", "--porcelain"], cwd=root, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    args = parser.parse_args()
    items, in_flight = (1_000, 10) if args.quick else (10_000, 100)
    with tempfile.TemporaryDirectory(prefix="pg-restart-") as tmp:
        template = Path(tmp) / "template"
        run_ids = build_project(template, items, in_flight)
        dead_root, live_root = Path(tmp) / "dead", Path(tmp) / "live"
        shutil.copytree(template, dead_root, symlinks=True)
        shutil.copytree(template, live_root, symlinks=True)
        status = git_status_seconds(dead_root)
        dead = measure(dead_root, run_ids, "pid")
        agents = start_live_agents(live_root, run_ids)
        try:
            live = measure(live_root, run_ids, "adopted_by")
        finally:
            for agent in agents:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(agent.pid, signal.SIGKILL)
                agent.wait()
    print("measure value")
    print(f"items {items}")
    print(f"runs_in_flight {in_flight}")
    print(f"git_status_s {status:.3f}")
    print(f"dead_first_agent_start_s {dead['first']:.3f}")
    print(f"dead_all_slots_full_s {dead['all']:.3f}")
    print(f"live_all_adopted_s {live['all']:.3f}")
    print(f"dead_first_start_in_git_status {dead['first'] / status:.1f}x")
    print(f"peak_rss_mb {max(dead['rss'], live['rss']):.1f}")
    print(json.dumps({"dead": dead, "live": live}), file=sys.stderr)


if __name__ == "__main__":
    main()
