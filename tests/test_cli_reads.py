"""The read commands through the real CLI: status sections, runs and log pages, narrow tables.

The store is filled directly (it is below the layer under test); every command runs as a
subprocess in a temporary git repository.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from phase_golem.domain.events import EventKind
from phase_golem.domain.items import ITEM_FIELDS, ItemStatus, Level, archive, new_item
from phase_golem.domain.runs import Run, RunKind, RunStatus, Step
from phase_golem.store.sqlite import SqliteStore
from tests.conftest import EXE, Repo, make_git_repo

START = datetime(2026, 3, 1, tzinfo=UTC)


def open_store(repo: Repo) -> SqliteStore:
    return SqliteStore(repo.root / ".phase-golem" / "state.db")


def fill_items(
    repo: Repo, plan: list[tuple[ItemStatus, Level | None]], prefix: str = "WRK"
) -> None:
    store = open_store(repo)
    with store.transaction() as tx:
        for n, (status, impact) in enumerate(plan):
            item = new_item(
                tx.allocate_item_id(prefix),
                f"Item {n} with a title long enough to need folding on a narrow terminal",
                START + timedelta(minutes=n),
                impact=impact,
            ).replace(status=status)
            if status is ItemStatus.DONE:
                item = archive(item, START)
            tx.create_item(item)
    store.close()


def fill_runs(repo: Repo, count: int, item_id: str = "WRK-001") -> list[str]:
    """`count` committed runs, queued one second apart (so newest first is reverse ID order)."""
    store = open_store(repo)
    ids = []
    with store.transaction() as tx:
        for n in range(count):
            run = Run(
                id=tx.allocate_run_id(),
                item_id=item_id,
                phase="build",
                kind=RunKind.PHASE,
                queued_at=(START + timedelta(seconds=n)).isoformat(),
                step=Step.COMMITTED,
                status=RunStatus.COMMITTED if n % 2 else RunStatus.FAILED_AGENT,
            )
            tx.create_run(run)
            ids.append(run.id)
    store.close()
    return ids


def seqs(result_lines: list[dict[str, Any]]) -> list[int]:
    return [int(e["seq"]) for e in result_lines]


def one_line_error(result: Any, code: int, needle: str) -> None:
    assert result.code == code, (result.code, result.err)
    assert result.err.startswith("phase-golem: error:") and needle in result.err, result.err
    assert result.err.strip().count("\n") == 0, result.err


# --- status ----------------------------------------------------------------------------


@pytest.fixture
def backlog(project: Repo) -> Repo:
    plan: list[tuple[ItemStatus, Level | None]] = [(ItemStatus.NEW, None)] * 10
    plan += [(ItemStatus.NEW, Level.HIGH)] * 3  # these sort first in their section
    plan += [(ItemStatus.IN_PROGRESS, Level.LOW)] * 2
    plan += [(ItemStatus.BLOCKED, None), (ItemStatus.DONE, Level.HIGH)]
    fill_items(project, plan)
    project.ok("close", "WRK-001", "--reason", "not needed")
    return project


def test_status_shows_counts_and_the_first_rows_of_each_section(backlog: Repo) -> None:
    lines = backlog.ok("status").out.splitlines()
    assert lines[0].split() == [
        "ID",
        "STATUS",
        "PHASE",
        "PIPELINE",
        "IMPACT",
        "SIZE",
        "RISK",
        "TITLE",
    ]
    rows = [line.split()[:2] for line in lines[1:-1]]
    assert rows[:3] == [
        ["WRK-014", "in_progress"],
        ["WRK-015", "in_progress"],
        ["WRK-016", "blocked"],
    ]
    new_rows = [r for r in rows if r[1] == "new"]
    assert [r[0] for r in new_rows[:3]] == ["WRK-011", "WRK-012", "WRK-013"]  # impact high first
    assert new_rows[-1][0] == "…" and len(new_rows) == 11  # ten shown, then the rest counted
    assert "2 more (--limit 12 shows them)" in lines[-2]
    assert lines[-1] == (
        "15 item(s) total: 2 in_progress, 1 blocked, 12 new (2 archived: --all shows them)"
    )
    every = backlog.ok("status", "--limit", "0").out
    assert "more" not in every and all(f"WRK-{n:03d}" in every for n in range(2, 17))
    one_each = backlog.ok("status", "--limit", "1").out.splitlines()
    assert [line.split()[0] for line in one_each[1:-1]] == [
        "WRK-014",
        "…",
        "WRK-016",
        "WRK-011",
        "…",
    ]


def test_status_all_adds_the_done_and_closed_sections(backlog: Repo) -> None:
    lines = backlog.ok("status", "--all").out.splitlines()
    sections = [line.split()[1] for line in lines[1:-1]]
    assert sections[-2:] == ["done", "closed"]
    assert lines[-1].endswith("12 new, 1 done, 1 closed") and "archived:" not in lines[-1]


def test_status_json_is_every_active_item_in_status_order(backlog: Repo) -> None:
    items = backlog.ok("status", "--json").json()
    assert [list(item) for item in items] == [list(ITEM_FIELDS)] * len(items)
    order = ["in_progress", "blocked", "ready", "scoping", "new", "done"]
    rank = {"high": 3, "medium": 2, "low": 1, None: 0}
    assert [i["id"] for i in items] == [
        i["id"]
        for i in sorted(
            items, key=lambda i: (order.index(i["status"]), -rank[i["impact"]], i["id"])
        )
    ]
    assert len(items) == 15 and not any(i["archived"] for i in items)
    with_archive = backlog.ok("status", "--json", "--all").json()
    assert {i["id"] for i in with_archive} - {i["id"] for i in items} == {"WRK-001", "WRK-017"}
    firsts = backlog.ok("status", "--json", "--limit", "2").json()
    assert [(i["id"], i["status"]) for i in firsts] == [
        ("WRK-014", "in_progress"),
        ("WRK-015", "in_progress"),
        ("WRK-016", "blocked"),
        ("WRK-011", "new"),
        ("WRK-012", "new"),
    ]


def test_status_bad_limit_is_one_line(backlog: Repo) -> None:
    one_line_error(backlog.pg("status", "--limit", "-1"), 2, "--limit")
    one_line_error(backlog.pg("status", "--limit", "many"), 2, "--limit")


# --- runs ------------------------------------------------------------------------------


@pytest.fixture
def with_runs(project: Repo) -> tuple[Repo, list[str]]:
    fill_items(project, [(ItemStatus.IN_PROGRESS, None), (ItemStatus.NEW, None)])
    runs = fill_runs(project, 12)
    return project, runs


def run_ids(repo: Repo, *args: str) -> list[str]:
    return [r["id"] for r in repo.ok("runs", "--json", *args).json()]


def test_runs_pages_by_run_id(with_runs: tuple[Repo, list[str]]) -> None:
    repo, runs = with_runs
    newest_first = runs[::-1]
    assert run_ids(repo) == newest_first
    assert run_ids(repo, "--limit", "5") == newest_first[:5]
    assert run_ids(repo, "--limit", "5", "--before", newest_first[4]) == newest_first[5:10]
    assert run_ids(repo, "--limit", "3", "--after", runs[2]) == [runs[5], runs[4], runs[3]]
    assert run_ids(repo, "--after", runs[2], "--before", runs[6]) == [runs[5], runs[4], runs[3]]
    assert run_ids(repo, "--status", "committed", "--limit", "2") == [runs[11], runs[9]]
    assert run_ids(repo, "--item", "WRK-002") == []


def test_runs_table_ends_with_the_command_for_the_next_page(
    with_runs: tuple[Repo, list[str]],
) -> None:
    repo, runs = with_runs
    seen: list[str] = []
    args = ["runs", "--limit", "5"]
    for _ in range(5):
        lines = repo.ok(*args).out.splitlines()
        seen += [line.split()[0] for line in lines[1:] if line.startswith("run-")]
        if not lines[-1].startswith("… more older runs: phase-golem "):
            break
        args = lines[-1].split("phase-golem ", 1)[1].split()
    assert seen == runs[::-1]
    assert repo.ok("runs", "--item", "WRK-002").out.strip() == "No runs."


def test_runs_bad_cursor_is_one_line(with_runs: tuple[Repo, list[str]]) -> None:
    repo, _ = with_runs
    one_line_error(repo.pg("runs", "--before", "run-999999"), 2, "--before run-999999")
    one_line_error(repo.pg("runs", "--item", "WRK-404"), 2, "WRK-404")
    one_line_error(repo.pg("runs", "--limit", "-2"), 2, "--limit")


# --- log -------------------------------------------------------------------------------


@pytest.fixture
def ledger(project: Repo) -> Repo:
    fill_items(project, [(ItemStatus.NEW, None)] * 3)
    store = open_store(project)
    with store.transaction() as tx:
        for n in range(27):
            tx.append_event(EventKind.ITEM_UPDATED, item_id=f"WRK-00{n % 3 + 1}", data={"n": n})
    store.close()
    return project  # 30 events, seq 1..30


def log_seqs(repo: Repo, *args: str) -> list[int]:
    return seqs(repo.ok("log", "--json", *args).json_lines())


def test_log_pages_by_seq(ledger: Repo) -> None:
    assert log_seqs(ledger) == list(range(1, 31))
    assert log_seqs(ledger, "--limit", "3") == [28, 29, 30]
    assert log_seqs(ledger, "--after", "10", "--limit", "2") == [11, 12]
    assert log_seqs(ledger, "--before", "10", "--limit", "2") == [8, 9]
    assert log_seqs(ledger, "--after", "10", "--before", "20", "--limit", "2") == [18, 19]
    assert log_seqs(ledger, "--after", "25") == [26, 27, 28, 29, 30]
    assert log_seqs(ledger, "--item", "WRK-002", "--limit", "2") == [26, 29]
    plain = ledger.ok("log", "--limit", "2").out.splitlines()
    assert [int(line.split()[0]) for line in plain] == [29, 30]


def test_log_bad_options_are_one_line(ledger: Repo) -> None:
    one_line_error(ledger.pg("log", "--follow", "--before", "3"), 2, "--before")
    one_line_error(ledger.pg("log", "--limit", "0"), 2, "--limit")
    one_line_error(ledger.pg("log", "--after", "x"), 2, "--after")


class Follower:
    """`phase-golem log --json --follow ARGS` with its lines read as they come."""

    def __init__(self, repo: Repo, *args: str) -> None:
        self.process = subprocess.Popen(
            [str(EXE), "log", "--json", "--follow", *args],
            cwd=repo.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def next_event(self) -> dict[str, Any]:
        """The next event printed; a generous deadline, for a busy machine."""
        event: dict[str, Any] = json.loads(self.lines.get(timeout=60))
        return event

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture
def follow(ledger: Repo) -> Iterator[list[Follower]]:
    started: list[Follower] = []
    yield started
    for follower in started:
        follower.stop()


def test_log_follow_starts_at_the_end(ledger: Repo, follow: list[Follower]) -> None:
    follower = Follower(ledger)
    follow.append(follower)
    assert [follower.next_event()["seq"] for _ in range(10)] == list(range(21, 31))
    ledger.ok("add", "Later")
    fresh = follower.next_event()
    assert (fresh["seq"], fresh["data"]["title"]) == (31, "Later")


def test_log_follow_of_one_item_prints_only_its_new_events(
    ledger: Repo, follow: list[Follower]
) -> None:
    # --after the last event: whenever the follower starts, both edits are still ahead of it.
    follower = Follower(ledger, "--item", "WRK-001", "--after", "30")
    follow.append(follower)
    ledger.ok("edit", "WRK-002", "--title", "Not followed")
    ledger.ok("edit", "WRK-001", "--title", "Followed")
    event = follower.next_event()
    assert (event["seq"], event["item_id"]) == (32, "WRK-001")
    assert follower.lines.empty()


# --- narrow terminals ------------------------------------------------------------------


ID = re.compile(r"VERYLONGPREFIX[-\w]*")


def test_narrow_terminal_never_cuts_an_id(tmp_path: Path) -> None:
    repo = Repo(make_git_repo(tmp_path / "repo"))
    repo.ok("init", "--prefix", "VERYLONGPREFIX")
    fill_items(repo, [(ItemStatus.NEW, Level.HIGH), (ItemStatus.READY, None)], "VERYLONGPREFIX")
    fill_runs(repo, 3, item_id="VERYLONGPREFIX-001")
    wanted = {"VERYLONGPREFIX-001", "VERYLONGPREFIX-002"}
    for columns in ("40", "25", "8"):
        repo.env["COLUMNS"] = columns
        for args in (("status",), ("runs",), ("show", "VERYLONGPREFIX-001")):
            out = repo.ok(*args).out
            found = set(ID.findall(out))
            assert found <= wanted and "…" not in "".join(ID.findall(out)), (columns, args, out)
            assert "VERYLONGPREFIX-001" in found, (columns, args, out)
            if args[0] == "runs":
                assert all(f"run-00000{n}" in out for n in (1, 2, 3)), out
        status = repo.ok("status").out
        assert wanted <= set(ID.findall(status))
        if columns == "40":
            widest = max(len(line) for line in status.splitlines())
            assert widest <= 40, status  # the other columns folded or left out


# --- what each command loads -----------------------------------------------------------

HEAVY = ("pydantic", "rich", "yaml", "phase_golem.engine.scheduler", "phase_golem.agents")
PROBE = """
import io, json, sys
from phase_golem.cli.app import main
out, sys.stdout = sys.stdout, io.StringIO()
code = main(sys.argv[1:])
sys.stdout = out
print(json.dumps([code, sorted(sys.modules)]))
"""


WATCHED = (
    *HEAVY,
    "typer",
    "sqlite3",
    "phase_golem.store",
    "phase_golem.config",
    "phase_golem.workspace",
)


def loaded_by(repo: Repo, *args: str) -> set[str]:
    """The watched modules `phase-golem ARGS` imported (run in a fresh interpreter), with
    its output going to a pipe: tables fit, so none needs rich's layout."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=repo.root,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    code, modules = json.loads(completed.stdout)
    assert code == 0, completed.stderr
    return {m for m in modules if any(m == w or m.startswith(w + ".") for w in WATCHED)}


def test_each_command_loads_only_what_it_needs(with_runs: tuple[Repo, list[str]]) -> None:
    repo, _ = with_runs
    for args in (("--version",), ("--help",)):
        assert loaded_by(repo, *args) == set(), args
    repo.ok("status")  # the config is validated once and remembered
    for args in (
        ("status",),
        ("status", "--json"),
        ("runs",),
        ("log", "--limit", "5"),
        ("show", "WRK-001", "--json"),
    ):
        loaded = loaded_by(repo, *args)
        assert not {m for m in loaded if m.startswith(HEAVY)}, (args, loaded)
        assert "phase_golem.config" not in loaded and "phase_golem.workspace.git" not in loaded
    # A command that acts on the settings validates the config (pydantic) every time.
    assert "pydantic" in loaded_by(repo, "edit", "WRK-002", "--title", "Renamed")


def test_a_changed_config_is_validated_again_by_read_commands(project: Repo) -> None:
    project.ok("status")
    verdict = project.root / ".phase-golem" / "config.verified"
    assert verdict.is_file() and verdict.stat().st_mode & 0o777 == 0o600
    assert "pydantic" not in loaded_by(project, "status")
    config = project.root / "phase-golem.toml"
    good = config.read_text()
    config.write_text("[execution]\nmax_wip = 0\n")
    result = project.pg("status")
    one_line_error(result, 2, "max_wip")
    config.write_text(good + "\n# a comment is a change too\n")
    assert "pydantic" in loaded_by(project, "status")
    assert "pydantic" not in loaded_by(project, "status")


def test_a_planted_verdict_symlink_is_neither_followed_nor_replaced(project: Repo) -> None:
    elsewhere = project.root / "elsewhere.txt"
    elsewhere.write_text("not ours\n")
    verdict = project.root / ".phase-golem" / "config.verified"
    verdict.symlink_to(elsewhere)
    for _ in range(2):
        assert project.ok("status").out.strip() == "No items in backlog."
    assert verdict.is_symlink() and elsewhere.read_text() == "not ours\n"
