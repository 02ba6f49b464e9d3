"""The engine's hot path reads the snapshot, never the tables (DESIGN §3 "Snapshots").

The real scheduler, store and git run a backlog to done with an in-process agent while
another connection to the same database (what a `phase-golem add` in another terminal is)
adds and edits items. Every change is seen and worked, and the whole backlog is decoded
exactly once — the full load — however many decisions, starts and waits there were.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from phase_golem.agents.base import AgentAdapter, AgentRequest, StreamInfo
from phase_golem.agents.runner import AgentOutcome
from phase_golem.domain.events import EventKind
from phase_golem.domain.items import Assessments, Level, Size, new_item, touch
from phase_golem.domain.results import PhaseResult, ResultCode
from phase_golem.engine.backlog import NewItemRequest, add_item
from phase_golem.engine.context import EngineContext
from phase_golem.engine.scheduler import Scheduler
from phase_golem.engine.selection import RunOptions
from phase_golem.project import Project, init_project, load_project
from phase_golem.store.sqlite import SqliteStore, SqliteTransaction
from tests.conftest import make_git_repo

CONFIG = """\
[execution]
max_wip = 3
max_concurrent = 3
default_phase_cap = 100000

[agent]
cli = "sim"

[pipelines.feature]
phases = [
    { name = "plan", is_destructive = false },
    { name = "ship", is_destructive = false },
]
"""


def _project(tmp_path: Path, items: int) -> Project:
    """A committed project in a fresh git repository with `items` new items."""
    root = make_git_repo(tmp_path / "repo")
    (root / "phase-golem.toml").write_text(CONFIG, encoding="utf-8")
    init_project(root, "WRK", None)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "start"], cwd=root, check=True)
    project = load_project(root, None)
    for n in range(items):
        add_item(project.store(), project.config.settings, NewItemRequest(f"Item {n}"))
    return project


def _phase_complete(request: AgentRequest) -> AgentOutcome:
    """What an agent that finishes every phase at once answers (triage: small, low risk)."""
    triage = request.phase == "triage"
    result = PhaseResult(
        item_id=request.item_id,
        phase=request.phase,
        result=ResultCode.PHASE_COMPLETE,
        summary="done",
        assessments=Assessments(Size.SMALL, None, Level.LOW, None) if triage else None,
    )
    return AgentOutcome(result, None, None, StreamInfo())


def test_other_writers_are_seen_and_the_backlog_is_decoded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project(tmp_path, 12)
    root, store, settings = project.root, project.store(), project.config.settings
    other = SqliteStore(project.state_dir / "state.db")  # another writer on the same file
    calls = {"agent": 0, "full": 0}
    listing = SqliteTransaction._load_items

    def counted(self: SqliteTransaction, include_archived: bool) -> object:
        calls["full"] += 1
        return listing(self, include_archived)

    monkeypatch.setattr(SqliteTransaction, "_load_items", counted)

    async def agent(
        adapter: AgentAdapter,
        request: AgentRequest,
        *,
        max_result_bytes: int,
        on_start: Callable[[int], None] | None = None,
    ) -> AgentOutcome:
        calls["agent"] += 1
        if calls["agent"] in (3, 9):  # meanwhile, someone adds work and edits an item
            with other.transaction() as tx:
                tx.create_item(new_item(tx.allocate_item_id("WRK"), "Added meanwhile", tx.now))
                first = tx.require_item("WRK-012")
                tx.save_item(touch(first, tx.now, title="Renamed"), EventKind.ITEM_UPDATED)
        return _phase_complete(request)

    ctx = EngineContext(root, root, settings, store, "test", agent_runner=agent)
    summary = asyncio.run(Scheduler(ctx, RunOptions(), lambda line: None).run())
    assert sorted(summary.items_completed) == [f"WRK-{n:03d}" for n in range(1, 15)]
    assert calls["full"] == 1  # the full load at the first snapshot, and never again
    assert store.full_loads == 1  # type: ignore[attr-defined]
    with store.reader() as tx:
        renamed = tx.require_item("WRK-012")
    assert renamed.title == "Renamed" and renamed.archived
    other.close()
    project.close()


def test_no_run_claimed_by_the_scheduler_waits_without_its_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs a decide claims and then keys more are all started, not left claimed until a
    lease sweep finds them (that once cost a second per phase run)."""
    project = _project(tmp_path, 6)
    root, store, settings = project.root, project.store(), project.config.settings
    stranded: list[str] = []
    real_wait = Scheduler._wait

    async def checked_wait(self: Scheduler, due: object) -> bool:
        running = {run.id for run in self.tasks.values()}
        stranded.extend(
            run.id
            for run in self.ctx.store.snapshot().runs()
            if run.worker_id == self.ctx.worker_id and run.id not in running
        )
        return await real_wait(self, due)  # type: ignore[arg-type]

    monkeypatch.setattr(Scheduler, "_wait", checked_wait)

    async def agent(
        adapter: AgentAdapter,
        request: AgentRequest,
        *,
        max_result_bytes: int,
        on_start: Callable[[int], None] | None = None,
    ) -> AgentOutcome:
        return _phase_complete(request)

    ctx = EngineContext(root, root, settings, store, "test", agent_runner=agent)
    summary = asyncio.run(Scheduler(ctx, RunOptions(), lambda line: None).run())
    project.close()
    assert len(summary.items_completed) == 6
    assert stranded == []
