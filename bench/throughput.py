"""Phase runs per second through the real engine and SQLite store, next to the raw SQLite
commit rate on the same file settings, measured side by side in one run.

The agent answers at once (in process), so what is measured is the orchestrator itself:
decide, enqueue, claim, start, prompt, complete (one transaction each), ledger events,
change folders and worklog lines. The ratio says how many raw commits one phase run costs.

    python bench/throughput.py            # 40 items x 4 phases (+ triage)
    python bench/throughput.py --quick    # a fast smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from phase_golem.agents.base import AgentAdapter, AgentRequest, StreamInfo
from phase_golem.agents.runner import AgentOutcome
from phase_golem.domain.items import Assessments, Level, Size
from phase_golem.domain.results import PhaseResult, ResultCode
from phase_golem.engine.backlog import NewItemRequest, add_item
from phase_golem.engine.context import EngineContext
from phase_golem.engine.scheduler import Scheduler
from phase_golem.engine.selection import RunOptions
from phase_golem.project import init_project, load_project

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


async def instant_agent(
    adapter: AgentAdapter,
    request: AgentRequest,
    *,
    max_result_bytes: int,
    on_start: Callable[[int], None] | None = None,
) -> AgentOutcome:
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


def engine_runs_per_second(
    root: Path, items: int, storage_url: str | None = None
) -> tuple[float, int]:
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    storage = f'\n[storage]\nurl = "{storage_url}"\n' if storage_url else ""
    (root / "phase-golem.toml").write_text(CONFIG + storage, encoding="utf-8")
    init_project(root, "WRK", None)
    project = load_project(root, None)
    store, settings = project.store(), project.config.settings
    for n in range(items):
        add_item(store, settings, NewItemRequest(f"Item {n}"))
    ctx = EngineContext(root, root, settings, store, "bench", agent_runner=instant_agent)
    scheduler = Scheduler(ctx, RunOptions(cap=100_000), lambda line: None)
    start = time.perf_counter()
    summary = asyncio.run(scheduler.run())
    elapsed = time.perf_counter() - start
    project.close()
    if len(summary.items_completed) != items:
        raise SystemExit(f"engine finished {len(summary.items_completed)} of {items} items")
    return summary.phases_executed / elapsed, summary.phases_executed


def raw_commits_per_second(path: Path, commits: int) -> float:
    """The same file settings as our store: WAL, synchronous=FULL, BEGIN IMMEDIATE."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data TEXT NOT NULL)")
    start = time.perf_counter()
    for n in range(commits):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (data) VALUES (?)", (f"row {n}",))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return commits / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    args = parser.parse_args()
    items = 5 if args.quick else 40
    with tempfile.TemporaryDirectory(prefix="pg-bench-") as tmp:
        engine_rate, runs = engine_runs_per_second(Path(tmp) / "engine", items)
        raw_rate = raw_commits_per_second(Path(tmp) / "raw.db", 200 if args.quick else 2000)
    print("measure value")
    print(f"phase_runs {runs}")
    print(f"engine_runs_per_s {engine_rate:.1f}")
    print(f"raw_sqlite_commits_per_s {raw_rate:.1f}")
    print(f"raw_commits_per_phase_run {raw_rate / engine_rate:.1f}x")


if __name__ == "__main__":
    main()
