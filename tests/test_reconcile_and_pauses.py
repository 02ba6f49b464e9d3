"""The reconcile check's verdicts, and agent pauses kept in the store, at their own layer."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import pytest

from phase_golem.domain.endings import Verdict
from phase_golem.domain.errors import DomainError
from phase_golem.domain.events import EventKind
from phase_golem.domain.items import Item, ItemStatus, PhasePool, new_item
from phase_golem.domain.pipelines import AgentCli, PhaseConfig, PipelineConfig, Settings
from phase_golem.domain.runs import Run, RunKind
from phase_golem.engine.agent_pauses import (
    agent_for_item,
    last_resumed,
    pause_agent,
    paused_agents,
    resume_agent,
)
from phase_golem.engine.reconcile import reconcile_argv, run_reconcile
from phase_golem.store import Store
from phase_golem.store.memory import MemoryStore
from phase_golem.store.sqlite import SqliteStore

PY = sys.executable


def _run() -> Run:
    return Run(
        id="run-000007",
        item_id="WRK-001",
        phase="ship",
        kind=RunKind.PHASE,
        queued_at="2026-12-01T00:00:00.000000+00:00",
        idempotency_key="ik:abc",
    )


def _item(branch: str | None = None) -> Item:
    return new_item("WRK-001", "Deploy", datetime(2026, 12, 1, tzinfo=UTC)).replace(branch=branch)


def test_placeholders_are_filled_per_word_and_no_shell_runs(tmp_path: Path) -> None:
    argv = reconcile_argv("check {item} {phase} {run_id} {branch} {key} 'a;b'", _run(), _item("b"))
    assert argv == ["check", "WRK-001", "ship", "run-000007", "b", "ik:abc", "a;b"]
    marker = tmp_path / "never"
    found = run_reconcile(f"{PY} -c 'print(1)' ; touch {marker}", _run(), _item(), tmp_path, 5)
    assert found.verdict is Verdict.HAPPENED and not marker.exists()  # `;` is just a word


@pytest.mark.parametrize(
    ("code", "verdict"),
    [(0, Verdict.HAPPENED), (1, Verdict.NOT_HAPPENED), (2, Verdict.UNKNOWN), (-9, Verdict.UNKNOWN)],
)
def test_the_exit_code_is_the_verdict(tmp_path: Path, code: int, verdict: Verdict) -> None:
    script = (
        "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
        if code < 0
        else f"import sys; print('looked'); sys.exit({code})"
    )
    found = run_reconcile(f'{PY} -c "{script}"', _run(), _item(), tmp_path, 5)
    assert (found.verdict, found.exit_code) == (verdict, code)
    assert found.ledger_data()["verdict"] == verdict.value


def test_a_check_that_cannot_run_or_hangs_is_unknown(tmp_path: Path) -> None:
    missing = run_reconcile("/no/such/check {item}", _run(), _item(), tmp_path, 5)
    assert missing.verdict is Verdict.UNKNOWN and "cannot run" in missing.detail
    unsplittable = run_reconcile("check 'open", _run(), _item(), tmp_path, 5)
    assert unsplittable.verdict is Verdict.UNKNOWN
    hung = run_reconcile(f"{PY} -c 'import time; time.sleep(30)'", _run(), _item(), tmp_path, 0.3)
    assert hung.verdict is Verdict.UNKNOWN and "timeout" in hung.detail


def test_the_check_sees_the_run_but_cannot_pass_for_its_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "env"
    script = (
        "import os; open(os.environ['OUT'], 'w').write(' '.join(sorted("
        "k for k in os.environ if k.startswith('PHASE_GOLEM_'))))"
    )
    monkeypatch.setenv("OUT", str(out))
    run_reconcile(f'{PY} -c "{script}"', _run(), _item(), tmp_path, 5)
    names = out.read_text().split()
    assert "PHASE_GOLEM_RUN_ID" in names and "PHASE_GOLEM_ROOT" not in names


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "memory":
        return MemoryStore()
    return SqliteStore(tmp_path / "state.db")


def test_a_pause_is_stored_with_its_event_and_resume_records_when(store: Store) -> None:
    with store.transaction() as tx:
        tx.create_item(_item())
        tx.create_run(_run())  # the pause names the run that caused it (a foreign key)
        assert pause_agent(tx, "claude", "rate-limited 5 times in a row", _run())
        assert not pause_agent(tx, "claude", "again", _run())  # paused already
    with store.reader() as tx:
        [pause] = paused_agents(tx).values()
        kinds = [e.kind for e in tx.events()]
    assert (pause.agent, pause.run_id) == ("claude", "run-000007")
    assert "resume-agent claude" in pause.line()
    assert kinds.count(EventKind.AGENT_PAUSED) == 1
    with pytest.raises(DomainError, match="unknown agent 'gpt'"):
        resume_agent(store, "gpt")
    with pytest.raises(DomainError, match=r"agent codex is not paused \(paused agents: claude\)"):
        resume_agent(store, "codex")
    assert resume_agent(store, " Claude ").reason == "rate-limited 5 times in a row"
    with store.reader() as tx:
        assert paused_agents(tx) == {}
        assert last_resumed(tx, "claude") is not None
        assert tx.events()[-1].kind is EventKind.AGENT_RESUMED


def test_the_old_meta_key_is_no_longer_read(store: Store) -> None:
    with store.transaction() as tx:  # the pauses live in their own tables now
        tx.set_meta("agent_pauses", '{"paused": {"claude": {"reason": "x", "since": "t"}}}')
    with store.reader() as tx:
        assert paused_agents(tx) == {}


def test_the_agent_an_item_needs_next() -> None:
    sim_plan = PhaseConfig("plan", False, agent=AgentCli.SIM)
    pipeline = PipelineConfig("feature", (sim_plan, PhaseConfig("build", False)))
    settings = Settings(pipelines=MappingProxyType({"feature": pipeline}))
    item = _item()
    assert agent_for_item(settings, item) == "claude"  # new: triage, the default agent
    ready = item.replace(status=ItemStatus.READY)
    assert agent_for_item(settings, ready) == "sim"  # promoted straight into plan
    at_build = item.replace(status=ItemStatus.IN_PROGRESS, phase="build", phase_pool=PhasePool.MAIN)
    assert agent_for_item(settings, at_build) == "claude"
    assert agent_for_item(settings, item.replace(status=ItemStatus.BLOCKED)) is None
