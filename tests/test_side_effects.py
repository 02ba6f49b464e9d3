"""Side-effect phases end to end (issue 5 part 2): an uncertain outcome is decided by the
phase's reconcile check when it has one, else by a human through `phase-golem resolve`."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Repo
from tests.e2e import (
    add_items,
    items_by_id,
    kill_mid_phase,
    runs_of,
    start_run,
    wait_for_agents,
    wait_until_begun,
    write_project,
)
from tests.waiting import DEADLINE_SECONDS, never


def _pipeline(reconcile: str | None = None, *, after: bool = False) -> str:
    check = f", reconcile = {json.dumps(reconcile)}" if reconcile is not None else ""
    tail = '\n    { name = "review", is_destructive = false },' if after else ""
    return (
        "[pipelines.feature]\nphases = [\n"
        '    { name = "plan", is_destructive = false },\n'
        f'    {{ name = "ship", is_destructive = false, side_effect = true{check} }},{tail}\n'
        "]\n"
    )


def _exits(code: int) -> str:
    return f"{sys.executable} -c 'import sys; sys.exit({code})'"


def _ships(repo: Repo) -> list[dict[str, Any]]:
    return [r for r in runs_of(repo) if r["phase"] == "ship"]


def _events(repo: Repo, kind: str) -> list[dict[str, Any]]:
    return [e for e in repo.ok("log", "--json").json_lines() if e["kind"] == kind]


def _uncertain(git_repo: Repo, log: Path, *, after: bool = False) -> tuple[Repo, dict[str, Any]]:
    """A ship phase killed mid-action with its agent, before it wrote a result."""
    rules = f"  - match: {{phase: ship}}\n    wait_for: {never(log.parent)!r}\n    times: 1\n"
    rules += f"  - match: {{phase: ship}}\n    side_effect_log: {str(log)!r}\n"
    repo = write_project(git_repo, rules, pipelines=_pipeline(after=after))
    add_items(repo, "Deploy")
    kill_mid_phase(repo, "ship", agent_too=True)
    assert repo.pg("run").code == 1
    [ship] = _ships(repo)
    return repo, ship


def test_a_side_effect_killed_mid_run_waits_for_resolve_and_approve_points_there(
    git_repo: Repo, tmp_path: Path
) -> None:
    repo, ship = _uncertain(git_repo, tmp_path / "effects.log")
    assert (ship["status"], ship["mutation"]) == ("paused:indeterminate", "indeterminate")
    item = items_by_id(repo)["WRK-001"]
    assert (item["status"], item["blocked_type"]) == ("blocked", "decision")
    assert (
        f"phase-golem resolve {ship['id']} --happened | --not-happened | --skip"
        in (item["blocked_reason"])
    )
    refused = repo.pg("approve", "WRK-001")
    assert refused.code == 2 and f"phase-golem resolve {ship['id']}" in refused.err
    assert [e["run_id"] for e in _events(repo, "run.indeterminate")] == [ship["id"]]
    assert repo.pg("run").code == 0  # nothing runs it again without a decision
    assert len(_ships(repo)) == 1


def test_resolve_happened_counts_the_phase_as_complete(git_repo: Repo, tmp_path: Path) -> None:
    repo, ship = _uncertain(git_repo, tmp_path / "effects.log", after=True)
    result = repo.pg("resolve", ship["id"], "--happened")
    assert result.code == 0, result.err
    assert "resolved as happened" in result.out and "in_progress at review" in result.out
    [paused] = _ships(repo)  # the run keeps its status; the decision is in its mutation
    assert (paused["status"], paused["mutation"]) == ("paused:indeterminate", "resolved_happened")
    [resolved] = _events(repo, "run.resolved")
    assert resolved["run_id"] == ship["id"] and resolved["data"]["decision"] == "happened"
    assert repo.pg("run").code == 0
    assert items_by_id(repo)["WRK-001"]["status"] == "done"
    assert len(_ships(repo)) == 1  # never run again


def test_resolve_not_happened_runs_a_fresh_retry_with_the_same_key(
    git_repo: Repo, tmp_path: Path
) -> None:
    log = tmp_path / "effects.log"
    repo, ship = _uncertain(git_repo, log)
    result = repo.pg("resolve", ship["id"], "--not-happened")
    assert result.code == 0, result.err
    assert repo.pg("run").code == 0
    first, retry = _ships(repo)
    assert first["mutation"] == "resolved_not_happened"
    assert (retry["retry_of"], retry["status"], retry["mutation"]) == (
        first["id"],
        "committed",
        "applied",
    )
    assert retry["idempotency_key"] == first["idempotency_key"]
    assert log.read_text().splitlines() == [f"WRK-001 ship {retry['id']}"]
    assert items_by_id(repo)["WRK-001"]["status"] == "done"


def test_resolve_skip_moves_the_item_past_the_phase(git_repo: Repo, tmp_path: Path) -> None:
    log = tmp_path / "effects.log"
    repo, ship = _uncertain(git_repo, log, after=True)
    result = repo.pg("resolve", ship["id"], "--skip")
    assert result.code == 0 and "resolved as skipped" in result.out
    assert repo.pg("run").code == 0
    [skipped] = _ships(repo)
    assert skipped["mutation"] == "resolved_skipped"
    assert [r["phase"] for r in runs_of(repo)][-1] == "review"
    assert items_by_id(repo)["WRK-001"]["status"] == "done"
    assert not log.exists()


def test_bad_resolve_input_is_one_line_exit_two_and_changes_nothing(
    git_repo: Repo, tmp_path: Path
) -> None:
    repo, ship = _uncertain(git_repo, tmp_path / "effects.log")
    plan = next(r for r in runs_of(repo) if r["phase"] == "plan")
    before = (repo.ok("runs", "--json").out, repo.ok("status", "--all", "--json").out)
    cases = [
        (("resolve", "run-999999", "--happened"), "no run run-999999"),
        (("resolve", plan["id"], "--skip"), "is committed; only a paused:indeterminate run"),
        (("resolve", ship["id"], "--happened", "--skip"), "exactly one of"),
        (("resolve", ship["id"]), "exactly one of"),
    ]
    for args, message in cases:
        result = repo.pg(*args)
        assert result.code == 2, (args, result.err)
        assert message in result.err and result.err.count("\n") == 1, result.err
    assert (repo.ok("runs", "--json").out, repo.ok("status", "--all", "--json").out) == before
    repo.ok("resolve", ship["id"], "--skip")
    again = repo.pg("resolve", ship["id"], "--happened")
    assert again.code == 2 and "resolved already (resolved_skipped)" in again.err


def test_a_reconcile_that_exits_zero_completes_the_phase_without_asking(
    git_repo: Repo, tmp_path: Path
) -> None:
    marker = tmp_path / "checked"
    check = (
        f"{sys.executable} -c \"open('{marker}', 'a').write('{{item}} {{phase}} {{run_id}}\\n')\""
    )
    rules = f"  - match: {{phase: ship}}\n    wait_for: {never(tmp_path)!r}\n    times: 1\n"
    repo = write_project(git_repo, rules, pipelines=_pipeline(check))
    add_items(repo, "Deploy, then crash")
    ship = kill_mid_phase(repo, "ship", agent_too=True)
    result = repo.pg("run")
    assert result.code == 0, result.err
    [done] = _ships(repo)
    assert (done["id"], done["status"], done["mutation"]) == (ship["id"], "committed", "applied")
    assert "the side effect happened" in done["result"]["summary"]
    assert marker.read_text() == f"WRK-001 ship {ship['id']}\n"  # placeholders filled
    [verdict] = _events(repo, "run.reconciled")
    assert verdict["data"]["verdict"] == "happened" and verdict["data"]["exit_code"] == 0
    item = items_by_id(repo)["WRK-001"]
    assert item["status"] == "done" and not _events(repo, "run.indeterminate")
    # Finished like any run of ours, although recovery did it: its worklog line is there.
    worklog = "".join(p.read_text() for p in (repo.root / "_worklog").glob("*.md"))
    assert "the side effect happened" in worklog


def test_a_reconcile_that_exits_one_retries_and_the_effect_happens_once(
    git_repo: Repo, tmp_path: Path
) -> None:
    log = tmp_path / "effects.log"
    rules = "  - match: {phase: ship}\n    behave: crash\n    times: 1\n"
    rules += f"    side_effect_log: {str(log)!r}\n"
    rules += f"  - match: {{phase: ship}}\n    side_effect_log: {str(log)!r}\n"
    repo = write_project(git_repo, rules, pipelines=_pipeline(_exits(1)))
    add_items(repo, "Deploy, crash first")
    assert repo.pg("run").code == 0
    first, retry = _ships(repo)
    assert (first["status"], first["mutation"], first["error_class"]) == (
        "failed:agent",
        "failed",
        "crashed",
    )
    assert retry["retry_of"] == first["id"] and retry["attempt"] == 2
    assert log.read_text().splitlines() == [f"WRK-001 ship {retry['id']}"]
    assert items_by_id(repo)["WRK-001"]["status"] == "done"


@pytest.mark.parametrize(
    ("check", "said"),
    [
        (_exits(2), "reconcile exited 2, which says neither yes nor no"),
        ("/nonexistent/reconcile-check {item}", "cannot run"),
        (f"{sys.executable} -c 'import time; time.sleep(30)'", "ran past its 0.5 s timeout"),
    ],
    ids=["exit-2", "missing", "hangs"],
)
def test_a_reconcile_that_cannot_tell_asks_a_human(git_repo: Repo, check: str, said: str) -> None:
    repo = write_project(
        git_repo,
        "  - match: {phase: ship}\n    behave: crash\n",
        pipelines=_pipeline(check),
        execution="reconcile_timeout_seconds = 0.5",
    )
    add_items(repo, "Deploy, unknowable")
    assert repo.pg("run").code == 1
    [ship] = _ships(repo)
    assert (ship["status"], ship["mutation"]) == ("paused:indeterminate", "indeterminate")
    reason = items_by_id(repo)["WRK-001"]["blocked_reason"]
    assert said in reason and "phase-golem resolve" in reason
    [verdict] = _events(repo, "run.reconciled")
    assert verdict["data"]["verdict"] == "unknown"


def test_an_orphaned_side_effect_is_adopted_and_never_reconciled(
    git_repo: Repo, tmp_path: Path
) -> None:
    log = tmp_path / "effects.log"
    release = tmp_path / "release-ship"
    rules = (
        f"  - match: {{phase: ship}}\n    wait_for: {str(release)!r}\n"
        f"    side_effect_log: {str(log)!r}\n"
    )
    repo = write_project(git_repo, rules, pipelines=_pipeline(_exits(1)))
    add_items(repo, "Deploy, orphaned")
    ship = kill_mid_phase(repo, "ship", agent_too=False)
    release.touch()
    assert repo.pg("run").code == 0
    assert [(r["id"], r["status"]) for r in _ships(repo)] == [(ship["id"], "committed")]
    assert log.read_text().splitlines() == [f"WRK-001 ship {ship['id']}"]
    assert not _events(repo, "run.reconciled")


@pytest.mark.parametrize(
    ("code", "status", "mutation"), [(0, "committed", "applied"), (1, "cancelled", "failed")]
)
def test_a_side_effect_stopped_by_ctrl_c_asks_its_check_first(
    git_repo: Repo, tmp_path: Path, code: int, status: str, mutation: str
) -> None:
    rules = f"  - match: {{phase: ship}}\n    wait_for: {never(tmp_path)!r}\n    times: 1\n"
    repo = write_project(git_repo, rules, pipelines=_pipeline(_exits(code)))
    add_items(repo, "Deploy, interrupted")
    process = start_run(repo)
    try:
        [ship] = wait_for_agents(repo, "ship", 1, process=process)
        wait_until_begun(repo, ship["id"], process=process)  # counted: its retry is not held
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=DEADLINE_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    [stopped] = _ships(repo)
    assert (stopped["status"], stopped["mutation"]) == (status, mutation)
    assert repo.pg("run").code == 0
    ships = _ships(repo)
    assert items_by_id(repo)["WRK-001"]["status"] == "done"
    if code == 1:  # it did not act: the visit is resumed with its key and attempt
        assert [r["status"] for r in ships] == ["cancelled", "committed"]
        assert ships[1]["idempotency_key"] == ships[0]["idempotency_key"]
        assert ships[1]["attempt"] == ships[0]["attempt"]
    else:
        assert len(ships) == 1
