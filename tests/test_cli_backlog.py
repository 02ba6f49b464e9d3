"""End to end through the real `phase-golem` executable in temporary git repositories."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from phase_golem.config import load_config, parse_config_text, render_config_template
from tests.conftest import EXE, Repo, make_git_repo
from tests.waiting import DEADLINE_SECONDS


def ledger(repo: Repo) -> list[dict[str, object]]:
    out = repo.ok("log", "--json").out
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- init ----------------------------------------------------------------------------


def test_init_creates_private_state_and_is_idempotent(git_repo: Repo) -> None:
    result = git_repo.ok("init", "--prefix", "ABC")
    root = git_repo.root
    assert mode(root / ".phase-golem") == 0o700
    assert mode(root / ".phase-golem" / "state.db") == 0o600
    for name in ("changes", "_worklog"):
        assert (root / name).is_dir()
    assert 'prefix = "ABC"' in (root / "phase-golem.toml").read_text()
    assert ".phase-golem/" in (root / ".gitignore").read_text().splitlines()
    assert "created" in result.out
    git_repo.ok("init")
    assert (root / ".gitignore").read_text().count(".phase-golem/") == 1
    assert git_repo.ok("add", "First").out.startswith("Added ABC-001")


SETUP_COMMIT = "git add phase-golem.toml .gitignore && git commit -m 'Set up phase-golem'"


def test_the_config_init_writes_loads_through_the_real_loader(git_repo: Repo) -> None:
    git_repo.ok("init", "--prefix", "ABC")
    loaded = load_config(git_repo.root, None)  # what every command reads, unchanged
    defaults = parse_config_text(render_config_template("ABC"), "template")
    assert loaded.settings == defaults
    assert loaded.settings.project.prefix == "ABC"
    assert set(loaded.settings.pipelines) == {"feature", "simple"}


def test_init_says_how_to_commit_what_it_wrote_and_run_insists_on_it(git_repo: Repo) -> None:
    # The simulated agent, so that `run` gets past its agent checks to the tree check.
    (git_repo.root / "phase-golem.toml").write_text('[agent]\ncli = "sim"\n', encoding="utf-8")
    first = git_repo.ok("init")
    assert f"Next: commit the set-up (`run` needs a clean tree): {SETUP_COMMIT}" in first.out
    refused = git_repo.pg("run")
    assert refused.code == 3
    assert refused.err.strip() == (
        "phase-golem: error: phase-golem.toml and .gitignore from `phase-golem init` are not "
        f"committed yet; run: {SETUP_COMMIT}"
    )
    # The command it names is the one that works, copied as printed.
    command = refused.err.strip().rsplit("run: ", 1)[1]
    subprocess.run(command, shell=True, cwd=git_repo.root, check=True, capture_output=True)
    assert git_repo.pg("run").code == 0
    assert "Next:" not in git_repo.ok("init").out  # nothing left to commit


def test_init_outside_git_is_a_precondition_error(tmp_path: Path) -> None:
    repo = Repo(tmp_path)
    result = repo.pg("init")
    assert result.code == 3
    assert result.err.strip().count("\n") == 0
    assert "not inside a git repository" in result.err
    assert not (tmp_path / ".phase-golem").exists()


def test_commands_before_init_say_so(git_repo: Repo) -> None:
    result = git_repo.pg("status")
    assert result.code == 3
    assert "phase-golem init" in result.err


# --- add / status / show ----------------------------------------------------------------


def test_add_status_show(project: Repo) -> None:
    project.ok("add", "Add auth", "--size", "M", "-r", "l", "--impact", "h", "--tag", "auth")
    project.ok("add", "Typo", "-s", "s", "--pipeline", "simple", "--dep", "WRK-001")
    project.ok(
        "add",
        "Described",
        "--description",
        "Context: we have none\nProblem: users wait\nSolution: add a cache",
    )
    items = project.ok("status", "--json").json()
    by_id = {i["id"]: i for i in items}
    assert set(by_id) == {"WRK-001", "WRK-002", "WRK-003"}
    assert by_id["WRK-001"]["size"] == "medium"
    assert by_id["WRK-001"]["risk"] == "low"
    assert by_id["WRK-001"]["impact"] == "high"
    assert by_id["WRK-001"]["tags"] == ["auth"]
    assert by_id["WRK-002"]["pipeline_type"] == "simple"
    assert by_id["WRK-002"]["dependencies"] == ["WRK-001"]
    assert by_id["WRK-003"]["description"]["problem"] == "users wait"
    assert all(i["status"] == "new" for i in items)

    table = project.ok("status").out
    assert table.splitlines()[0].split() == [
        "ID",
        "STATUS",
        "PHASE",
        "PIPELINE",
        "IMPACT",
        "SIZE",
        "RISK",
        "TITLE",
    ]
    assert "3 item(s) total" in table

    shown = project.ok("show", "WRK-001", "--json").json()
    assert set(shown) == {"item", "source", "runs", "events", "receipts", "git"}
    assert shown["source"] is None  # added by hand, not by an intake source
    assert shown["git"] == {"commits": [], "touched": {}, "leftovers": {}}
    assert shown["receipts"] == []
    assert shown["item"]["title"] == "Add auth"
    assert shown["runs"] == []
    assert [e["kind"] for e in shown["events"]] == ["item.created"]


def test_status_on_empty_backlog(project: Repo) -> None:
    assert project.ok("status").out.strip() == "No items in backlog."
    assert project.ok("status", "--json").json() == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["add", "X", "--size", "huge"], "invalid size 'huge'"),
        (["add", "X", "--risk", "extreme"], "invalid risk"),
        (["add", "   "], "title must not be empty"),
        (["add", "X", "--pipeline", "nope"], "unknown pipeline 'nope'"),
        (["add", "X", "--dep", "WRK-999"], "unknown dependency: WRK-999"),
        (["add", "X", "--dep", "not an id"], "invalid item ID"),
        (["add"], "Missing argument"),
        (["add", "X", "--bogus"], "No such option"),
        (["show", "WRK-404"], "no item WRK-404"),
        (["advance", "WRK-404"], "no item WRK-404"),
        (["--log-level", "loud", "status"], "loud"),
        (["nonsense"], "No such command"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    project: Repo, args: list[str], needle: str
) -> None:
    project.ok("add", "Existing")
    before = ledger(project)
    result = project.pg(*args)
    assert result.code == 2, result
    assert needle in result.err
    assert result.err.startswith("phase-golem: error:")
    assert result.err.strip().count("\n") == 0, result.err
    assert ledger(project) == before


# --- edit / advance / unblock / close ------------------------------------------------------


def test_edit_fields(project: Repo) -> None:
    project.ok("add", "A", "--size", "s", "--tag", "x")
    project.ok("add", "B")
    item = project.ok(
        "edit",
        "WRK-001",
        "--title",
        "A2",
        "--size",
        "none",
        "--risk",
        "h",
        "--add-tag",
        "y",
        "--remove-tag",
        "x",
        "--add-dep",
        "WRK-002",
        "--json",
    ).json()
    assert item["title"] == "A2"
    assert item["size"] is None
    assert item["risk"] == "high"
    assert item["tags"] == ["y"]
    assert item["dependencies"] == ["WRK-002"]
    cycle = project.pg("edit", "WRK-002", "--add-dep", "WRK-001")
    assert cycle.code == 2 and "dependency cycle: " in cycle.err
    events = [e for e in ledger(project) if e["kind"] == "item.updated"]
    assert len(events) == 1
    assert events[0]["data"]["fields"] == ["dependencies", "risk", "size", "tags", "title"]


def import_items(repo: Repo, tmp_path: Path, body: str) -> None:
    path = tmp_path / "in.yaml"
    path.write_text(body)
    repo.ok("import", str(path))


BLOCKED_AND_IN_PROGRESS = """\
schema_version: 3
next_item_id: 2
items:
  - id: WRK-001
    title: Building
    status: in_progress
    phase: prd
    phase_pool: main
    pipeline_type: feature
    created: "2026-01-01T00:00:00+00:00"
    updated: "2026-01-01T00:00:00+00:00"
  - id: WRK-002
    title: Stuck
    status: blocked
    phase: design
    phase_pool: main
    blocked_from_status: in_progress
    blocked_reason: needs a decision
    blocked_type: decision
    last_phase_commit: abc123
    created: "2026-01-02T00:00:00+00:00"
    updated: "2026-01-02T00:00:00+00:00"
"""


def test_advance_unblock_close(project: Repo, tmp_path: Path) -> None:
    import_items(project, tmp_path, BLOCKED_AND_IN_PROGRESS)
    assert project.ok("advance", "WRK-001").out.strip() == "WRK-001 → design"
    assert project.ok("advance", "WRK-001", "--to", "review").out.strip() == "WRK-001 → review"
    final = project.pg("advance", "WRK-001")
    assert final.code == 2 and "final phase" in final.err
    wrong = project.pg("advance", "WRK-001", "--to", "research")
    assert wrong.code == 2 and "not a main phase" in wrong.err
    not_in_progress = project.pg("advance", "WRK-002")
    assert not_in_progress.code == 2 and "only in_progress" in not_in_progress.err

    project.ok("unblock", "WRK-002", "--notes", "Go with option B")
    item = project.ok("show", "WRK-002", "--json").json()["item"]
    assert item["status"] == "in_progress"
    assert item["phase"] == "design"
    assert item["unblock_context"] == "Go with option B"
    assert item["last_phase_commit"] is None
    assert item["blocked_reason"] is None
    again = project.pg("unblock", "WRK-002")
    assert again.code == 2 and "not blocked" in again.err

    project.ok("close", "WRK-002", "--reason", "superseded")
    assert [i["id"] for i in project.ok("status", "--json").json()] == ["WRK-001"]
    everything = project.ok("status", "--json", "--all").json()
    closed = next(i for i in everything if i["id"] == "WRK-002")
    assert closed["archived"] and closed["closed_reason"] == "superseded"
    assert "closed" in project.ok("status", "--all").out
    no_reason = project.pg("close", "WRK-001", "--reason", " ")
    assert no_reason.code == 2


# --- the ledger ---------------------------------------------------------------------------


def test_log_json_is_ndjson_in_order_and_filterable(project: Repo) -> None:
    project.ok("add", "A")
    project.ok("add", "B")
    project.ok("edit", "WRK-002", "--title", "B2")
    events = ledger(project)
    assert [e["seq"] for e in events] == sorted(e["seq"] for e in events)
    assert [e["kind"] for e in events] == ["item.created", "item.created", "item.updated"]
    only = project.ok("log", "--json", "--item", "WRK-002").out.splitlines()
    assert [json.loads(line)["item_id"] for line in only] == ["WRK-002", "WRK-002"]
    assert len(project.ok("log", "--limit", "1").out.splitlines()) == 1


def test_log_follow_streams_new_events(project: Repo) -> None:
    project.ok("add", "Before")
    follower = subprocess.Popen(
        [str(EXE), "log", "--json", "--follow"],
        cwd=project.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        first = json.loads(follower.stdout.readline())
        assert first["data"]["title"] == "Before"
        project.ok("add", "After")
        second = json.loads(follower.stdout.readline())
        assert second["data"]["title"] == "After"
    finally:
        follower.terminate()
        follower.wait(timeout=DEADLINE_SECONDS)
    assert follower.returncode == 0


# --- concurrency ---------------------------------------------------------------------------


@pytest.mark.serial
def test_many_concurrent_adds_never_duplicate_an_id(project: Repo) -> None:
    count = 16
    env = {**os.environ, "NO_COLOR": "1"}
    procs = [
        subprocess.Popen(
            [str(EXE), "add", f"Parallel {n}", "--json"],
            cwd=project.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(count)
    ]
    ids = []
    for proc in procs:
        out, err = proc.communicate(timeout=DEADLINE_SECONDS)
        assert proc.returncode == 0, err
        ids.append(json.loads(out)["id"])
    assert len(set(ids)) == count
    assert sorted(ids) == [f"WRK-{n:03d}" for n in range(1, count + 1)]
    assert len(project.ok("status", "--json").json()) == count
    assert sum(1 for e in ledger(project) if e["kind"] == "item.created") == count


def test_ids_are_not_reused_after_close(project: Repo) -> None:
    project.ok("add", "A")
    project.ok("close", "WRK-001", "--reason", "no")
    assert project.ok("add", "B").out.startswith("Added WRK-002")


def test_database_stays_private_after_writes(project: Repo) -> None:
    project.ok("add", "A")
    for path in (project.root / ".phase-golem").glob("state.db*"):
        assert mode(path) == 0o600, path


def test_two_repos_do_not_interfere(tmp_path: Path) -> None:
    first = Repo(make_git_repo(tmp_path / "one"))
    second = Repo(make_git_repo(tmp_path / "two"))
    for repo in (first, second):
        repo.ok("init")
        repo.ok("add", "Same")
    assert first.ok("status", "--json").json()[0]["id"] == "WRK-001"
    assert second.ok("--root", str(first.root), "status", "--json").json()[0]["id"] == "WRK-001"


# --- failures of our own and of the environment ----------------------------------------


def test_internal_error_is_one_line_and_logged_privately(
    project: Repo, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from phase_golem.cli import app
    from phase_golem.engine import backlog

    def explode(*_: object, **__: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(backlog, "add_item", explode)
    code = app.main(["--root", str(project.root), "add", "Boom"])
    err = capsys.readouterr().err
    assert code == 4
    assert err.strip().count("\n") == 0
    assert "internal error (RuntimeError: simulated bug)" in err
    log_file = project.root / ".phase-golem" / "logs" / "errors.log"
    assert str(log_file) in err
    assert "Traceback" in log_file.read_text() and "simulated bug" in log_file.read_text()
    assert mode(log_file) == 0o600
    assert mode(log_file.parent) == 0o700


def test_unusable_database_is_a_precondition_error(project: Repo) -> None:
    db = project.root / ".phase-golem" / "state.db"
    for sidecar in db.parent.glob("state.db-*"):
        sidecar.unlink()
    db.write_bytes(b"this is not a database" * 100)
    result = project.pg("status")
    assert result.code == 3
    assert "state.db" in result.err
    assert result.err.strip().count("\n") == 0


def test_log_level_error_silences_import_warnings(project: Repo, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox.yaml"
    inbox.write_text("- title: Good\n- title: ''\n")
    loud = project.ok("import", str(inbox))
    assert "WARNING" in loud.err and "no title" in loud.err
    inbox.write_text("- title: Also good\n- title: ''\n")
    quiet = project.ok("--log-level", "error", "import", str(inbox))
    assert quiet.err == ""
