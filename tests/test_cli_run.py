"""The commands around `run`: triage, step, approve, reject, runs, demo, and their errors."""

from __future__ import annotations

import fcntl
import os
import pty
import stat
import subprocess
import sys
from pathlib import Path

from tests.conftest import EXE, Repo
from tests.e2e import add_items, items_by_id, run_dir, runs_of, write_project
from tests.test_agents import FAKE_CLAUDE
from tests.waiting import DEADLINE_SECONDS


def test_triage_triages_every_new_item_and_nothing_else(git_repo: Repo) -> None:
    repo = write_project(git_repo, "", execution="max_wip = 5")
    add_items(repo, "One", "Two")
    result = repo.pg("triage")
    assert result.code == 0, result.err
    assert {i["status"] for i in items_by_id(repo).values()} == {"ready"}
    assert {r["phase"] for r in runs_of(repo)} == {"triage"}


def test_step_runs_exactly_one_phase_past_the_guardrails(git_repo: Repo) -> None:
    rules = (
        "  - match: {phase: triage}\n    assessments: {size: large, risk: high}\n    summary: big\n"
    )
    pipelines = (
        '[pipelines.feature]\npre_phases = [{ name = "research", is_destructive = false }]\n'
        'phases = [{ name = "build", is_destructive = true }]\n'
    )
    repo = write_project(git_repo, rules, pipelines=pipelines)
    add_items(repo, "Huge change")
    assert repo.pg("step", "WRK-001").code == 0
    item = items_by_id(repo)["WRK-001"]
    assert (item["status"], item["phase"]) == ("scoping", "research")
    assert len(runs_of(repo)) == 1
    assert repo.pg("step", "WRK-001").code == 0
    assert items_by_id(repo)["WRK-001"]["status"] == "ready"  # guardrails bypassed
    # A normal run would have stopped the same item at the guardrail gate:
    assert repo.ok("add", "Another huge one").code == 0
    repo.pg("run", "--target", "WRK-002")
    blocked = items_by_id(repo)["WRK-002"]
    assert blocked["status"] == "blocked" and blocked["blocked_type"] == "decision"
    assert blocked["blocked_reason"].startswith("Exceeds autonomous guardrail thresholds")


def test_approve_lets_a_gated_item_go_and_reject_closes_one(git_repo: Repo) -> None:
    rules = "  - match: {phase: triage}\n    requires_human_review: true\n"
    repo = write_project(git_repo, rules, execution="max_wip = 2")
    add_items(repo, "Needs review", "Also needs review")
    assert repo.pg("triage").code == 1
    items = items_by_id(repo)
    assert {i["blocked_reason"] for i in items.values()} == {
        "Requires human review before entering pipeline"
    }
    approved = repo.ok("approve", "WRK-001", "--notes", "Fine by me")
    assert "ready" in approved.out
    item = items_by_id(repo)["WRK-001"]
    assert (item["status"], item["requires_human_review"]) == ("ready", False)
    assert item["unblock_context"] == "Fine by me"
    assert repo.ok("reject", "WRK-002", "--reason", "Not worth it").code == 0
    closed = items_by_id(repo)["WRK-002"]
    assert closed["archived"] and closed["closed_reason"] == "rejected: Not worth it"
    again = repo.pg("approve", "WRK-001")
    assert again.code == 2 and "not waiting for a decision" in again.err
    assert repo.pg("reject", "WRK-001", "--reason", " ").code == 2
    kinds = [e["kind"] for e in repo.ok("log", "--json").json_lines()]
    assert "approval.granted" in kinds and "approval.rejected" in kinds


def test_runs_filters_and_rejects_an_unknown_status(project: Repo) -> None:
    result = project.pg("runs", "--status", "exploded")
    assert result.code == 2 and "committed" in result.err
    assert project.pg("runs", "--item", "WRK-404").code == 2
    assert project.ok("runs", "--json").json() == []


def test_run_argument_errors_are_one_line_and_change_nothing(git_repo: Repo) -> None:
    repo = write_project(git_repo, "")
    add_items(repo, "Something")
    cases = {
        ("--only", "size=huge"): "valid values",
        ("--only", "size=small", "--only", "size=large"): "use commas",
        ("--target", "WRK-001", "--only", "size=small"): "cannot be used together",
        ("--target", "nope"): "invalid item ID",
        ("--target", "WRK-001", "--target", "WRK-001"): "given twice",
        ("--auto-advance",): "needs --target",
        ("--cap", "0"): "--cap",
    }
    for args, message in cases.items():
        result = repo.pg("run", *args)
        assert result.code == 2, args
        assert message in result.err and result.err.count("\n") == 1, (args, result.err)
    assert runs_of(repo) == []


def test_only_runs_the_matching_items(git_repo: Repo) -> None:
    repo = write_project(git_repo, "", execution="max_wip = 3")
    add_items(repo, "Tagged")
    repo.ok("add", "Other")
    repo.ok("edit", "WRK-001", "--add-tag", "api")
    result = repo.pg("run", "--only", "tag=api")
    assert result.code == 0, result.err
    assert "Filter: tag=api" in result.out and "FilterExhausted" in result.out
    items = items_by_id(repo)
    assert items["WRK-001"]["status"] == "done" and items["WRK-002"]["status"] == "new"
    assert "NoMatchingItems" in repo.pg("run", "--only", "tag=nothing").out


def test_targets_run_in_order_and_auto_advance_past_a_block(git_repo: Repo) -> None:
    rules = "  - match: {item: WRK-001, phase: plan}\n    result: blocked\n    context: stuck\n"
    repo = write_project(git_repo, rules)
    add_items(repo, "First", "Second", "Third")
    stopped = repo.pg("run", "--target", "WRK-001", "--target", "WRK-002")
    assert stopped.code == 1 and "Halt reason: TargetBlocked" in stopped.out
    assert items_by_id(repo)["WRK-002"]["status"] == "new"
    repo.ok("unblock", "WRK-001")
    moved = repo.pg("run", "--target", "WRK-001", "--target", "WRK-002", "--auto-advance")
    assert "Halt reason: TargetCompleted" in moved.out
    items = items_by_id(repo)
    assert items["WRK-002"]["status"] == "done" and items["WRK-003"]["status"] == "new"


def test_a_second_orchestrator_is_refused_with_the_holder_named(git_repo: Repo) -> None:
    repo = write_project(git_repo, "")
    state = repo.root / ".phase-golem"
    (state / "phase-golem.pid").write_text(f"{os.getpid()}\n")
    with (state / "phase-golem.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = repo.pg("run")
    assert result.code == 3 and f"PID {os.getpid()}" in result.err


def test_preflight_names_a_missing_agent_and_a_broken_scenario(git_repo: Repo) -> None:
    repo = write_project(git_repo, "", agent='cli = "codex"')
    result = repo.pg("run")
    assert result.code == 3 and "npm install -g @openai/codex" in result.err
    (repo.root / "phase-golem.toml").write_text(
        '[agent]\ncli = "sim"\nscenario = "broken.yaml"\n', encoding="utf-8"
    )
    (repo.root / "broken.yaml").write_text("rules: [{behave: explode}]\n", encoding="utf-8")
    result = repo.pg("run")
    assert result.code == 3 and "rules[0].behave" in result.err


def test_a_rate_limit_waits_without_using_an_attempt(git_repo: Repo) -> None:
    rules = "  - match: {phase: plan}\n    behave: rate_limit\n    times: 2\n"
    backoff = "max_retries = 0\n[execution.backoff]\nbase_seconds = 0.2\nfactor = 2.0"
    repo = write_project(git_repo, rules, execution=backoff)
    add_items(repo, "Popular agent")
    result = repo.pg("run")
    assert result.code == 0, result.out
    plans = [r for r in runs_of(repo) if r["phase"] == "plan"]
    assert [r["status"] for r in plans] == ["paused:transient", "paused:transient", "committed"]
    assert {r["attempt"] for r in plans} == {1}
    assert plans[1]["not_before"] is not None


def test_claude_adapter_end_to_end_with_a_stand_in_binary(git_repo: Repo) -> None:
    repo = write_project(git_repo, "", agent='cli = "claude"\nmodel = "sonnet"')
    bin_dir = repo.root.parent / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "claude"
    fake.write_text(f"#!{sys.executable}\n{FAKE_CLAUDE}", encoding="utf-8")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    repo.ok("add", "Real adapter")
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    try:
        result = repo.pg("step", "WRK-001")
    finally:
        os.environ["PATH"] = os.environ["PATH"].split(os.pathsep, 1)[1]
    assert result.code == 0, result.err
    [run] = runs_of(repo)
    assert (run["agent"], run["model"], run["session_id"]) == ("claude", "sonnet", "sess-42")
    assert run["cost_usd"] == 0.125 and run["tokens_in"] == 120
    assert items_by_id(repo)["WRK-001"]["cost_usd"] == 0.125


def test_demo_shows_the_whole_pipeline(tmp_path: Path) -> None:
    target = tmp_path / "demo"
    result = Repo(tmp_path).pg("demo", str(target), timeout=DEADLINE_SECONDS)
    assert result.code == 0, result.err
    for expected in (
        "[WRK-001][triage] Complete",
        "WRK-002 merged into WRK-001",
        "attempt 1/3 failed",
        "$ phase-golem sources run inbox",
        "[source inbox] fired: 1 created, 0 updated, 0 closed",
        "Follow-ups: WRK-006",
        "skipped: duplicates WRK-001",
        "Blocked: Needs a decision",
        "Halt reason: AllDoneOrBlocked",
        "6 item(s) total",
    ):
        assert expected in result.out, expected
    (from_inbox,) = [line for line in result.out.splitlines() if "Add request IDs" in line]
    assert from_inbox.split()[:2] == ["WRK-005", "done"]  # the inbox's item went all the way
    assert not (target / "BACKLOG_INBOX.yaml").exists()  # taken, and gone once committed
    assert (target / ".phase-golem" / "state.db").exists()
    # The closing lines say what to do next, and doing it finishes the blocked item.
    assert "Next: WRK-004 waits for your decision." in result.out
    assert 'approve WRK-004 --notes "use provider X"' in result.out
    project = Repo(target)
    project.ok("approve", "WRK-004", "--notes", "use provider X")
    rerun = project.pg("run", "--no-sources", timeout=DEADLINE_SECONDS)
    assert rerun.code == 0, rerun.out + rerun.err
    assert "Items completed: 1 (WRK-004)" in rerun.out
    again = Repo(tmp_path).pg("demo", str(target))
    assert again.code == 2 and "is not empty" in again.err


GATED = """\
[pipelines.feature]
phases = [
    { name = "plan", is_destructive = false, approval = "before" },
    { name = "build", is_destructive = true, approval = "after" },
]
"""


def test_phase_approval_gates_wait_for_a_human(git_repo: Repo) -> None:
    repo = write_project(git_repo, "", pipelines=GATED)
    add_items(repo, "Gated work")
    first = repo.pg("run")
    assert first.code == 1 and "waits for approval before plan" in first.out
    item = items_by_id(repo)["WRK-001"]
    assert item["blocked_reason"] == "Awaiting approval before phase plan"
    assert [r["phase"] for r in runs_of(repo)] == ["triage"]  # plan never started
    repo.ok("approve", "WRK-001")
    second = repo.pg("run")
    assert second.code == 1
    item = items_by_id(repo)["WRK-001"]
    assert (item["phase"], item["blocked_reason"]) == (
        "build",
        "Awaiting approval of the output of phase build",
    )
    rejected = repo.ok("reject", "WRK-001", "--reason", "Tests are missing")
    assert "sent back to build" in rejected.out
    repo.pg("run")
    builds = [r for r in runs_of(repo) if r["phase"] == "build"]
    assert len(builds) == 2
    assert "Tests are missing" in (run_dir(repo, builds[1]["id"]) / "prompt.md").read_text()
    repo.ok("approve", "WRK-001")
    done = items_by_id(repo)["WRK-001"]
    assert done["status"] == "done" and done["archived"]


def test_on_a_terminal_run_shows_a_live_panel_and_plain_turns_it_off(git_repo: Repo) -> None:
    repo = write_project(git_repo, "  - match: {phase: plan}\n    delay: 0.6\n")
    add_items(repo, "Watched")

    def on_a_terminal(*args: str) -> str:
        leader, follower = pty.openpty()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PHASE_GOLEM")}
        process = subprocess.Popen(
            [str(EXE), *args],
            cwd=repo.root,
            stdin=follower,
            stdout=follower,
            stderr=follower,
            env={**env, "COLUMNS": "100"},
            close_fds=True,
        )
        os.close(follower)
        chunks: list[bytes] = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closes when the process exits
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait(timeout=DEADLINE_SECONDS)
        os.close(leader)
        assert process.returncode == 0
        return b"".join(chunks).decode(errors="replace")

    live = on_a_terminal("run", "--cap", "2")
    assert "agents now" in live and "latest events" in live and "Halt reason: CapReached" in live
    plain = on_a_terminal("run", "--plain")
    assert "agents now" not in plain and "[WRK-001][build] Starting" in plain


def test_no_git_identity_is_one_preflight_line_before_any_run(
    git_repo: Repo, tmp_path: Path
) -> None:
    repo = write_project(git_repo, "")
    repo.ok("add", "Would be done, then never committed")
    for key in ("user.name", "user.email"):
        subprocess.run(["git", "-C", str(repo.root), "config", "--unset", key], check=True)
    # Nothing to guess from either: no global config, and git told not to invent one.
    subprocess.run(
        ["git", "-C", str(repo.root), "config", "user.useConfigOnly", "true"], check=True
    )
    home = tmp_path / "home"
    home.mkdir()
    repo.env.update({"HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1", "XDG_CONFIG_HOME": str(home)})
    for name in ("AUTHOR", "COMMITTER"):
        repo.env.update({f"GIT_{name}_NAME": "", f"GIT_{name}_EMAIL": ""})
    result = repo.pg("run")
    assert result.code == 3
    assert result.err.strip().splitlines() == [
        "phase-golem: error: git has no identity to commit with; set one: "
        'git config user.name "Your Name" && git config user.email you@example.com'
    ]
    assert repo.ok("runs", "--json").json() == []  # nothing started


def test_preflight_reports_every_problem_at_once_with_the_repository_state(
    git_repo: Repo,
) -> None:
    repo = write_project(git_repo, "", agent='cli = "codex"')
    repo.ok("add", "Blocked by setup")
    subprocess.run(["git", "-C", str(repo.root), "checkout", "-q", "--detach"], check=True)
    result = repo.pg("run")
    assert result.code == 3
    [line] = result.err.strip().splitlines()
    assert line.startswith("phase-golem: error: preflight failed: ")
    assert "npm install -g @openai/codex" in line and "HEAD is detached" in line


def test_a_failed_runs_stderr_tail_is_in_its_ledger_line_and_in_show(git_repo: Repo) -> None:
    script = git_repo.root / "agent.py"
    script.write_text(
        "import sys\nprint('starting up', file=sys.stderr)\n"
        "print('Error: ANTHROPIC_API_KEY missing', file=sys.stderr)\nsys.exit(1)\n",
        encoding="utf-8",
    )
    agent = f'cli = "command"\ncommand = "{sys.executable} agent.py {{prompt_file}}"'
    repo = write_project(git_repo, "", agent=agent, execution="max_retries = 0")
    repo.ok("add", "Needs a key")
    repo.pg("run")
    [finished] = [e for e in repo.ok("log", "--json").json_lines() if e["kind"] == "run.finished"]
    assert "stderr: starting up | Error: ANTHROPIC_API_KEY missing" in finished["data"]["error"]
    line = next(x for x in repo.ok("log").out.splitlines() if "run.finished" in x)
    assert "ANTHROPIC_API_KEY missing" in line
    assert "Error: ANTHROPIC_API_KEY missing" in repo.ok("show", "WRK-001").out


def test_run_only_that_can_start_nothing_because_wip_is_full_says_so(git_repo: Repo) -> None:
    repo = write_project(git_repo, "", execution="max_wip = 1")
    add_items(repo, "Holds the one WIP slot", "Ready, matched by --only")
    repo.ok("run", "--target", "WRK-001", "--cap", "2")  # triage and plan: in progress
    repo.ok("run", "--target", "WRK-002", "--cap", "1")  # triaged: ready
    statuses = {i: v["status"] for i, v in items_by_id(repo).items()}
    assert statuses == {"WRK-001": "in_progress", "WRK-002": "ready"}
    result = repo.pg("run", "--only", "status=ready")
    said = result.out + result.err
    assert (
        "--only: WRK-002 cannot start: max_wip = 1 is full with WRK-001, which --only does "
        "not match; finish or block those, or raise [execution] max_wip"
    ) in said
    assert said.count("cannot start") == 1
    assert items_by_id(repo)["WRK-002"]["status"] == "ready"
