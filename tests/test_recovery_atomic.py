"""Start-up recovery ends a lost run and records what it left in ONE transaction (issue 13,
part 4): a kill between the two used to leave a crashed run whose file nobody owned, and
every later start then refused the "uncommitted" tree."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from phase_golem.domain.runs import RunStatus
from phase_golem.engine import recovery
from phase_golem.engine.git_view import leftovers_of
from phase_golem.project import load_project
from tests.conftest import Repo, git_in
from tests.e2e import (
    add_items,
    items_by_id,
    kill_mid_phase,
    runs_of,
    start_run,
    wait_for_agents,
    write_project,
)
from tests.waiting import DEADLINE_SECONDS, state_rows, wait_until

pytestmark = pytest.mark.slow

# The first plan writes its file and dies before its result (the power loss of the test).
HALF_WRITTEN = """\
  - match: {phase: plan}
    times: 1
    write: {"notes/half.md": "half\\n"}
    linger: 600
"""


class KilledMidTransaction(Exception):
    """What a SIGKILL inside the transaction amounts to: nothing of it is committed."""


def test_a_kill_while_recovery_records_leftovers_undoes_the_crash_too(
    git_repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = write_project(git_repo, HALF_WRITTEN)
    add_items(repo, "Alpha")
    lost = kill_mid_phase(repo, "plan", agent_too=True, once_exists="notes/half.md")

    def killed(*_args: object, **_kwargs: object) -> None:
        raise KilledMidTransaction

    monkeypatch.setattr(recovery, "remember_leftovers_in", killed)
    project = load_project(repo.root, None)
    try:
        with pytest.raises(KilledMidTransaction):
            recovery.recover_interrupted_runs(
                project.store(), project.config.settings, project.root
            )
        with project.store().reader() as tx:
            run = tx.get_run(lost["id"])
        assert run is not None and run.status is RunStatus.ACTIVE  # the crash was undone too
        assert leftovers_of(project.store()) == {}
    finally:
        project.close()
    monkeypatch.undo()
    result = repo.pg("run")  # the next start recovers it whole: no refusal
    assert result.code == 0, result.err
    assert items_by_id(repo)["WRK-001"]["status"] == "done"
    statuses = [r["status"] for r in runs_of(repo, "WRK-001") if r["phase"] == "plan"]
    assert statuses == ["crashed", "committed"]
    # The retry of the same visit took the leftover: committed once, under WRK-001.
    log = git_in(repo.root, "log", "--format=%s", "--name-only", "--", "notes/half.md")
    assert log.split("\n")[0].startswith("[WRK-001][plan]") and log.count("notes/half.md") == 1
    assert git_in(repo.root, "status", "--porcelain") == ""


def test_start_up_recovery_records_the_crash_and_its_leftover_together(git_repo: Repo) -> None:
    repo = write_project(git_repo, HALF_WRITTEN)
    add_items(repo, "Alpha")
    lost = kill_mid_phase(repo, "plan", agent_too=True, once_exists="notes/half.md")
    project = load_project(repo.root, None)
    try:
        recovered = recovery.recover_interrupted_runs(
            project.store(), project.config.settings, project.root
        )
        assert recovered.runs == [lost["id"]]
        with project.store().reader() as tx:
            run = tx.get_run(lost["id"])
        assert run is not None and run.status is RunStatus.CRASHED
        assert "notes/half.md" in leftovers_of(project.store(), "WRK-001")
    finally:
        project.close()


ONE_PHASE = """\
[pipelines.feature]
phases = [{ name = "plan", is_destructive = false }]
"""


def test_start_up_commits_no_batch_while_an_adopted_agent_that_overlapped_it_works(
    git_repo: Repo, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    rules = f"""\
  - match: {{item: WRK-001, phase: plan}}
    write: {{"notes/a-of-WRK-001.md": "a\\n"}}
    wait_for: '{release}'
  - match: {{item: WRK-002, phase: plan}}
    wait_before_write: notes/a-of-WRK-001.md
    write: {{"notes/b-of-WRK-002.md": "b\\n"}}
"""
    execution = "max_concurrent = 2\nmax_wip = 2"
    repo = write_project(git_repo, rules, execution=execution, pipelines=ONE_PHASE)
    add_items(repo, "Alpha", "Beta")
    first = start_run(repo, own_session=True)
    second = None
    try:
        # WRK-002 finishes while WRK-001's agent still works in the same tree: its batch
        # waits for WRK-001; then the orchestrator dies and WRK-001's agent lives on.
        wait_until(
            lambda: state_rows(
                repo.root,
                "SELECT id FROM runs WHERE item_id = 'WRK-002' AND phase = 'plan' "
                "AND status != 'active'",
            ),
            "WRK-002's plan finished",
            process=first,
        )
        live = wait_for_agents(repo, "plan", 1, process=first)
        [orphan] = [run for run in live if run["item_id"] == "WRK-001"]
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        second = start_run(repo)
        wait_until(
            lambda: state_rows(
                repo.root,
                "SELECT seq FROM ledger WHERE run_id = ? AND data LIKE '%adopted_by%'",
                orphan["id"],
            ),
            "the restarted run adopted WRK-001's agent",
            process=second,
        )
        # Past start-up, the agent still at work: nothing of the batch it overlapped is in.
        assert "notes/b-of-WRK-002.md" not in committed(repo)
        release.touch()
        second.communicate(timeout=DEADLINE_SECONDS)
        assert second.returncode == 0
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    assert {i["status"] for i in items_by_id(repo).values()} == {"done"}
    assert committed(repo).count("notes/b-of-WRK-002.md") == 1
    assert committed(repo).count("notes/a-of-WRK-001.md") == 1
    subject = git_in(repo.root, "log", "-1", "--format=%B", "--", "notes/b-of-WRK-002.md")
    assert "[WRK-002][plan]" in subject
    assert git_in(repo.root, "status", "--porcelain") == ""


def committed(repo: Repo) -> list[str]:
    return git_in(repo.root, "log", "--all", "--format=", "--name-only").split()
