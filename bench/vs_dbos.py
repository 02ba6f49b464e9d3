"""Our engine against DBOS's three-step workflow on SQLite (WAL), side by side in one run.

DBOS (dbos-transact, from PyPI) runs in its own virtual environment, which this script
makes on first use under bench/.venv-dbos (git-ignored). Its workflow is the one of its
own documentation: three `@DBOS.step()` functions called by one `@DBOS.workflow()`, on a
SQLite system database switched to WAL beforehand; it is given its better of sequential
calls and four threads.

Ours is the real engine (decide, claim, start, prompt, complete: every transaction and
ledger event, change folders, worklog, the git snapshots of the tree) with an in-process
agent, so the orchestrator itself is measured, in two forms:

- `none`: the agent writes nothing. Every run is still snapshotted before and after; the
  after-snapshot of one run is the next run's before-snapshot when no other run was in
  the tree and git's own state (index, HEAD) is unchanged, so a run costs about one git
  process. Target: at least 1.5x DBOS's workflows/s, at most 2 git processes per run.
- `file`: the agent writes one file per run, so every run is snapshotted, its file found
  and committed to git (which DBOS does not do). Target: at least DBOS's workflows/s.

Printed per form: runs/s, DBOS workflows/s, their ratio, git processes and write
transactions per run (both counted, not estimated).

    python bench/vs_dbos.py            # 40 items x 5 runs per form, 300 DBOS workflows
    python bench/vs_dbos.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import tempfile
import textwrap
import time
import venv
from collections.abc import Callable, Iterator
from pathlib import Path

from phase_golem.agents.base import AgentAdapter, AgentRequest, StreamInfo
from phase_golem.agents.runner import AgentOutcome
from phase_golem.domain.items import Assessments, Level, Size
from phase_golem.domain.results import PhaseResult, ResultCode
from phase_golem.engine.backlog import NewItemRequest, add_item
from phase_golem.engine.context import AgentRunner, EngineContext
from phase_golem.engine.scheduler import Scheduler
from phase_golem.engine.selection import RunOptions
from phase_golem.project import init_project, load_project

HERE = Path(__file__).resolve().parent
DBOS_VENV = HERE / ".venv-dbos"
DBOS_VERSION = "3.4.0"
CONFIG = """\
[execution]
max_wip = 4
max_concurrent = 4
default_phase_cap = 100000

[agent]
cli = "sim"

[pipelines.feature]
phases = [
    { name = "plan", is_destructive = false },
    { name = "write", is_destructive = false },
    { name = "check", is_destructive = false },
    { name = "ship", is_destructive = false },
]
"""
DBOS_SCRIPT = textwrap.dedent(
    """
    import os, sqlite3, sys, time
    from concurrent.futures import ThreadPoolExecutor
    path = os.path.abspath(sys.argv[1])
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    from dbos import DBOS
    DBOS(config={"name": "bench", "system_database_url": f"sqlite:///{path}",
                 "run_admin_server": False})

    @DBOS.step()
    def first(x):
        return x + 1

    @DBOS.step()
    def second(x):
        return x * 2

    @DBOS.step()
    def third(x):
        return x - 1

    @DBOS.workflow()
    def workflow(x):
        return third(second(first(x)))

    DBOS.launch()
    count = int(sys.argv[2])
    for n in range(20):
        workflow(n)
    start = time.perf_counter()
    for n in range(count):
        workflow(n)
    sequential = count / (time.perf_counter() - start)
    start = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(workflow, range(count)))
    threaded = count / (time.perf_counter() - start)
    conn = sqlite3.connect(path)
    mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    DBOS.destroy()
    print(f"{sequential:.3f} {threaded:.3f} {mode}")
    """
)


def dbos_python() -> Path:
    """bench/.venv-dbos with dbos installed from PyPI (made on first use)."""
    python = DBOS_VENV / "bin" / "python"
    probe = [str(python), "-c", "import dbos"]
    found = python.exists() and subprocess.run(probe, capture_output=True, check=False)
    if found and found.returncode == 0:
        return python
    print(f"installing dbos {DBOS_VERSION} into {DBOS_VENV} ...", file=sys.stderr)
    venv.EnvBuilder(with_pip=True).create(DBOS_VENV)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"dbos=={DBOS_VERSION}"], check=True
    )
    return python


def dbos_workflows_per_second(tmp: Path, count: int) -> tuple[float, str]:
    completed = subprocess.run(
        [str(dbos_python()), "-c", DBOS_SCRIPT, str(tmp / "dbos.sqlite"), str(count)],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp,
    )
    if completed.returncode != 0:
        raise SystemExit(f"DBOS failed: {completed.stderr[-2000:]}")
    sequential, threaded, mode = completed.stdout.split()[-3:]
    if mode != "wal":
        raise SystemExit(f"DBOS's database is in {mode} mode, not WAL")
    best = max(float(sequential), float(threaded))
    how = "sequential" if best == float(sequential) else "4 threads"
    return best, how


def in_process_agent(write_file: bool) -> AgentRunner:
    async def agent(
        adapter: AgentAdapter,
        request: AgentRequest,
        *,
        max_result_bytes: int,
        on_start: Callable[[int], None] | None = None,
    ) -> AgentOutcome:
        if write_file and request.phase != "triage":
            out = request.cwd / "out" / f"{request.item_id}-{request.phase}.txt"
            out.parent.mkdir(exist_ok=True)
            out.write_text(f"{request.phase} of {request.item_id}\n", encoding="utf-8")
        assessments = (
            Assessments(size=Size.SMALL, risk=Level.LOW) if request.phase == "triage" else None
        )
        result = PhaseResult(
            item_id=request.item_id,
            phase=request.phase,
            result=ResultCode.PHASE_COMPLETE,
            summary="done",
            assessments=assessments,
        )
        return AgentOutcome(result, None, None, StreamInfo())

    return agent


class Counts:
    """Git processes started and write transactions opened, counted at their source."""

    def __init__(self) -> None:
        self.git = 0
        self.transactions = 0

    @contextlib.contextmanager
    def watching(self, store: object) -> Iterator[None]:
        original_init = subprocess.Popen.__init__
        original_tx = type(store).transaction  # type: ignore[attr-defined]
        counts = self

        def popen(self: subprocess.Popen[bytes], args: object, *rest: object, **kw: object) -> None:
            argv = args if isinstance(args, list | tuple) else [args]
            if argv and Path(str(argv[0])).name == "git":
                counts.git += 1
            original_init(self, args, *rest, **kw)  # type: ignore[arg-type]

        def transaction(self: object, **kw: object) -> object:
            counts.transactions += 1
            return original_tx(self, **kw)

        subprocess.Popen.__init__ = popen  # type: ignore[assignment,method-assign]
        type(store).transaction = transaction  # type: ignore[attr-defined]
        try:
            yield
        finally:
            subprocess.Popen.__init__ = original_init  # type: ignore[method-assign]
            type(store).transaction = original_tx  # type: ignore[attr-defined]


def engine_runs_per_second(root: Path, items: int, write_file: bool) -> dict[str, float]:
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    (root / "phase-golem.toml").write_text(CONFIG, encoding="utf-8")
    for name, value in (("user.name", "bench"), ("user.email", "bench@example.com")):
        subprocess.run(["git", "config", name, value], cwd=root, check=True)
    init_project(root, "WRK", None)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "start"], cwd=root, check=True)
    project = load_project(root, None)
    store, settings = project.store(), project.config.settings
    for n in range(items):
        add_item(store, settings, NewItemRequest(f"Item {n}"))
    agent = in_process_agent(write_file)
    ctx = EngineContext(root, root, settings, store, "bench", agent_runner=agent)
    scheduler = Scheduler(ctx, RunOptions(cap=100_000), lambda line: None)
    counts = Counts()
    with counts.watching(store):
        start = time.perf_counter()
        summary = asyncio.run(scheduler.run())
        elapsed = time.perf_counter() - start
    project.close()
    if len(summary.items_completed) != items:
        raise SystemExit(f"engine finished {len(summary.items_completed)} of {items} items")
    runs = summary.phases_executed
    if write_file:
        listed = subprocess.run(
            ["git", "ls-files", "out"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.split()
        if len(listed) != items * 4:
            raise SystemExit(f"{len(listed)} files committed, not {items * 4}")
    return {
        "runs": runs,
        "rate": runs / elapsed,
        "git": counts.git / runs,
        "tx": counts.transactions / runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    args = parser.parse_args()
    items = 5 if args.quick else 40
    workflows = 40 if args.quick else 300
    with tempfile.TemporaryDirectory(prefix="pg-vs-dbos-") as tmp:
        base = Path(tmp)
        dbos_rate, how = dbos_workflows_per_second(base, workflows)
        ours = {
            form: engine_runs_per_second(base / form, items, form == "file")
            for form in ("none", "file")
        }
    print("measure value")
    print(f"dbos_workflows_per_s {dbos_rate:.1f} ({how})")
    for form, result in ours.items():
        print(f"{form}_runs {result['runs']:.0f}")
        print(f"{form}_runs_per_s {result['rate']:.1f}")
        print(f"{form}_ratio_to_dbos {result['rate'] / dbos_rate:.2f}x")
        print(f"{form}_git_processes_per_run {result['git']:.2f}")
        print(f"{form}_write_transactions_per_run {result['tx']:.2f}")


if __name__ == "__main__":
    main()
