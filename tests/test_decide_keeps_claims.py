"""A decision that claims runs and also keys new visits keeps its claims.

Keying new visits made the decision drop what it had claimed and claim again; the runs
it had claimed were ours in the store already, so no later claim took them and nobody
started them: each waited out its lease and was recovered as crashed (a lost lease of
stall per item, and a crash that never happened). Now every run ends committed.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path

from phase_golem.agents.base import AgentAdapter, AgentRequest, StreamInfo
from phase_golem.agents.runner import AgentOutcome
from phase_golem.domain.items import Assessments, Level, Size
from phase_golem.domain.results import PhaseResult, ResultCode
from phase_golem.domain.runs import RunStatus
from phase_golem.engine.backlog import NewItemRequest, add_item
from phase_golem.engine.executor import EngineContext
from phase_golem.engine.scheduler import Scheduler
from phase_golem.engine.selection import RunOptions
from phase_golem.project import init_project, load_project
from tests.conftest import make_git_repo

CONFIG = """\
[execution]
max_wip = 4
max_concurrent = 4
lease_seconds = 600
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


async def _instant(
    adapter: AgentAdapter,
    request: AgentRequest,
    *,
    max_result_bytes: int,
    on_start: Callable[[int], None] | None = None,
) -> AgentOutcome:
    assessments = Assessments(Size.SMALL, None, Level.LOW, None)
    result = PhaseResult(
        item_id=request.item_id,
        phase=request.phase,
        result=ResultCode.PHASE_COMPLETE,
        summary="done",
        assessments=assessments if request.phase == "triage" else None,
    )
    return AgentOutcome(result, None, None, StreamInfo())


def test_every_claimed_run_is_started_none_waits_out_its_lease(tmp_path: Path) -> None:
    root = make_git_repo(tmp_path / "repo")
    (root / "phase-golem.toml").write_text(CONFIG, encoding="utf-8")
    init_project(root, "WRK", None)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "start"], cwd=root, check=True)
    project = load_project(root, None)
    store, settings = project.store(), project.config.settings
    for n in range(5):
        add_item(store, settings, NewItemRequest(f"Item {n}"))
    ctx = EngineContext(root, root, settings, store, "test", agent_runner=_instant)
    # A dropped claim would hold its run for the 600 s lease: far past this deadline.
    summary = asyncio.run(
        asyncio.wait_for(
            Scheduler(ctx, RunOptions(cap=100_000), lambda line: None).run(), timeout=120
        )
    )
    with store.reader() as tx:
        runs = tx.list_runs()
    assert len(summary.items_completed) == 5
    assert {r.status for r in runs} == {RunStatus.COMMITTED}, [
        (r.id, r.status.value, r.error) for r in runs if r.status is not RunStatus.COMMITTED
    ]
    project.close()
