"""Intake sources inside `run`, under a second trigger, and under SIGKILL (DESIGN §11)."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import EXE, Repo
from tests.e2e import MINI_PIPELINE, commit_all, start_run, write_project
from tests.test_sources_e2e import script
from tests.waiting import DEADLINE_SECONDS, live_agents, state_rows, wait_for_file, wait_until

IGNORED = (
    "BACKLOG_INBOX.yaml\n.BACKLOG_INBOX.yaml.*\nscripts/*.count\nscripts/*.gate\n"
    "scripts/*.pid\nscripts/*.started\n"
)


def project(repo: Repo, sources: str, rules: str = "") -> Repo:
    (repo.root / ".gitignore").write_text(IGNORED, encoding="utf-8")
    return write_project(repo, rules, pipelines=MINI_PIPELINE + "\n" + sources)


def stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    return out, err


def test_run_fires_the_inbox_while_agents_work(git_repo: Repo, tmp_path: Path) -> None:
    gate = tmp_path / "release"
    rules = f"  - match: {{item: WRK-001, phase: plan}}\n    wait_for: {str(gate)!r}\n"
    repo = project(
        git_repo, '[[sources]]\nname = "inbox"\ninbox = "BACKLOG_INBOX.yaml"\nevery = "1s"\n', rules
    )
    repo.ok("add", "First by hand")
    process = start_run(repo)
    try:
        wait_until(
            lambda: state_rows(repo.root, "SELECT id FROM runs WHERE phase = 'plan' AND pid"),
            "the plan agent of WRK-001 runs",
            process=process,
        )
        (repo.root / "BACKLOG_INBOX.yaml").write_text("- title: Arrived while it ran\n")
        wait_until(
            lambda: state_rows(repo.root, "SELECT id FROM items WHERE source = 'inbox'"),
            "the inbox entry became an item",
            process=process,
        )
        gate.write_text("go")
        wait_until(
            lambda: len(state_rows(repo.root, "SELECT id FROM items WHERE archived = 1")) == 2,
            "both items are done",
            process=process,
        )
    finally:
        out, err = stop(process)
    assert "[source inbox] fired: 1 created, 0 updated, 0 closed" in out, out + err
    assert not (repo.root / "BACKLOG_INBOX.yaml").exists()
    (item,) = state_rows(repo.root, "SELECT id, title FROM items WHERE source = 'inbox'")
    assert item["title"] == "Arrived while it ran"


def test_an_idle_run_waits_for_its_sources_and_works_what_they_bring(git_repo: Repo) -> None:
    # Nothing to do but a source due at once: the run must not halt while that source
    # runs (it once did, leaving the new item `new`), and stays up for the next drop.
    repo = project(
        git_repo, '[[sources]]\nname = "inbox"\ninbox = "BACKLOG_INBOX.yaml"\nevery = "1s"\n'
    )
    inbox = repo.root / "BACKLOG_INBOX.yaml"
    inbox.write_text("- title: First drop\n", encoding="utf-8")
    process = start_run(repo)

    def done() -> int:
        return len(state_rows(repo.root, "SELECT id FROM items WHERE archived = 1"))

    try:
        wait_until(lambda: done() == 1, "the first drop is done", process=process)
        inbox.write_text("- title: Second drop\n", encoding="utf-8")
        wait_until(lambda: done() == 2, "the second drop is done", process=process)
    finally:
        out, err = stop(process)
    assert "Halt reason: ShutdownRequested" in out, out + err
    titles = sorted(r["title"] for r in state_rows(repo.root, "SELECT title FROM items"))
    assert titles == ["First drop", "Second drop"]


SLOW = """\
#!{python}
import json, pathlib, time
here = pathlib.Path(__file__).parent
(here / "slow.started").write_text("yes")
while not (here / "slow.gate").exists():
    time.sleep(0.02)
print(json.dumps({{"external_id": "S-1", "title": "Slow one"}}))
"""


def test_a_second_run_of_a_running_source_is_refused_in_one_line(git_repo: Repo) -> None:
    script(git_repo.root / "scripts" / "slow.py", SLOW)
    repo = project(
        git_repo, '[[sources]]\nname = "slow"\ncommand = "scripts/slow.py"\nevery = "1h"\n'
    )
    first = subprocess.Popen(
        [str(EXE), "sources", "run", "slow"],
        cwd=repo.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_file(repo.root / "scripts" / "slow.started", process=first)
        second = repo.pg("sources", "run", "slow")
        assert second.code == 3, second.err
        assert "source 'slow' is running now" in second.err
        assert len(second.err.strip().splitlines()) == 1
        listed = repo.ok("sources", "--json").json()
        assert listed[0]["running"] is True
    finally:
        (repo.root / "scripts" / "slow.gate").write_text("go")
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert "1 created" in out
    assert repo.ok("sources", "--json").json()[0]["running"] is False


class Terminal:
    """`phase-golem run` on a pseudo-terminal (so it shows its live panel), read as it goes."""

    def __init__(self, repo: Repo, *args: str) -> None:
        self.leader, follower = pty.openpty()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PHASE_GOLEM")}
        self.process = subprocess.Popen(
            [str(EXE), *args],
            cwd=repo.root,
            stdin=follower,
            stdout=follower,
            stderr=follower,
            env={**env, "COLUMNS": "120"},
            close_fds=True,
        )
        os.close(follower)
        self.text = ""

    def read_until(self, condition: Callable[[str], bool], what: str) -> None:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not condition(self.text):
            assert time.monotonic() < deadline, f"{what}: not shown in {self.text[-2000:]!r}"
            ready, _, _ = select.select([self.leader], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(self.leader, 65536)
            except OSError:  # the terminal closes when the process exits
                chunk = b""
            assert chunk, f"{what}: the process exited first; it showed {self.text[-2000:]!r}"
            self.text += chunk.decode(errors="replace")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        while True:  # read on until the terminal closes, so the process never blocks
            try:
                if not os.read(self.leader, 65536):
                    break
            except OSError:
                break
        self.process.wait(timeout=DEADLINE_SECONDS)
        os.close(self.leader)


def test_the_live_panel_shows_a_source_run_in_progress(git_repo: Repo, tmp_path: Path) -> None:
    script(git_repo.root / "scripts" / "slow.py", SLOW)
    # The created item's plan waits, so its events never push the source's line off the panel.
    held = tmp_path / "plan-gate"
    repo = project(
        git_repo,
        '[[sources]]\nname = "slow"\ncommand = "scripts/slow.py"\nevery = "1h"\n',
        f"  - match: {{phase: plan}}\n    wait_for: {str(held)!r}\n",
    )
    terminal = Terminal(repo, "run")
    try:
        row = re.compile(r"source\s+slow\s+intake\s+-\s+\d+\.\d s")
        terminal.read_until(lambda text: bool(row.search(text)), "the source row")
        assert "agents now" in terminal.text
        (repo.root / "scripts" / "slow.gate").write_text("go")
        terminal.read_until(
            lambda text: "[source slow] fired: 1 created" in text and "source runs 1" in text,
            "the source run's outcome and its count in the totals",
        )
    finally:
        held.touch()
        terminal.close()
    (item,) = state_rows(repo.root, "SELECT title FROM items WHERE source = 'slow'")
    assert item["title"] == "Slow one"


CHANGING = """\
#!{python}
# Each run prints the tickets of its generation: some kept, some renamed, some closed,
# some new, in a shuffled order, so a killed run leaves a mix to be put right.
import json, pathlib, random
here = pathlib.Path(__file__).parent
count = here / "tickets.count"
run = int(count.read_text()) + 1 if count.exists() else 1
count.write_text(str(run))
tickets = []
for n in range(1, 40 * run + 1):
    state = "closed" if n % 7 == 0 and run > 1 else "open"
    version = run if n % 3 == 0 else 1
    tickets.append({{"external_id": f"T-{{n}}", "title": f"Ticket {{n}} v{{version}}",
                    "state": state}})
random.Random(run).shuffle(tickets)
for ticket in tickets:
    print(json.dumps(ticket), flush=True)
"""


@pytest.mark.serial
def test_sigkill_during_source_runs_leaves_every_entry_exactly_once(git_repo: Repo) -> None:
    script(git_repo.root / "scripts" / "tickets.py", CHANGING)
    repo = project(
        git_repo,
        '[[sources]]\nname = "tickets"\ncommand = "scripts/tickets.py"\nevery = "1h"\n'
        '[[sources]]\nname = "inbox"\ninbox = "BACKLOG_INBOX.yaml"\nevery = "1h"\n',
    )
    commit_all(repo, "sources")
    inbox = repo.root / "BACKLOG_INBOX.yaml"
    titles: list[str] = []
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHASE_GOLEM")}
    for round_, delay in enumerate((0.05, 0.15, 0.3, 0.45, 0.6, 0.8, 1.0, 1.3)):
        if not inbox.exists():
            batch = [f"Inbox {round_}-{k}" for k in range(5)]
            inbox.write_text("".join(f"- title: {t}\n" for t in batch), encoding="utf-8")
            titles += batch
        process = subprocess.Popen(
            [str(EXE), "sources", "run"],
            cwd=repo.root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    for _ in range(3):  # what the killed runs left (a file moved aside) is taken up now
        repo.ok("sources", "run")
    assert not inbox.exists() and not list(repo.root.glob(".BACKLOG_INBOX.yaml.*"))
    rows = state_rows(repo.root, "SELECT source, external_id, title FROM items")
    inbox_titles = sorted(r["title"] for r in rows if r["source"] == "inbox")
    assert inbox_titles == sorted(titles)  # every entry exactly once
    ids = [r["external_id"] for r in rows if r["source"] == "tickets"]
    assert len(ids) == len(set(ids))
    generation = int((repo.root / "scripts" / "tickets.count").read_text())
    printed = {f"T-{n}" for n in range(1, 40 * generation + 1)}
    # Every open ticket is an item; a closed one only if a run saw it open first.
    assert {f"T-{n}" for n in range(1, 40 * generation + 1) if n % 7} <= set(ids) <= printed
    fired = state_rows(repo.root, "SELECT count(*) AS n FROM ledger WHERE kind = 'source.fired'")
    assert fired[0]["n"] >= 2


BLOCKER = """\
#!{python}
# A ticket system that has answered but does not hang up until blocker.gate appears.
import json, os, pathlib, time
here = pathlib.Path(__file__).parent
(here / f"blocker.{{os.getpid()}}.pid").write_text(str(os.getpid()))
for n in (1, 2, 3):
    print(json.dumps({{"external_id": f"B-{{n}}", "title": f"Blocked ticket {{n}}"}}), flush=True)
while not (here / "blocker.gate").exists():
    time.sleep(0.02)
"""


def kill_mid_source_run(repo: Repo) -> None:
    """Start `run` and SIGKILL it once the inbox has committed, the blocker has answered
    but not exited, and the plan agent of WRK-001 runs; then the agent and the blocker's
    command go too (a power loss)."""
    process = start_run(repo, own_session=True)
    try:
        pids = wait_until(
            lambda: list((repo.root / "scripts").glob("blocker.*.pid")),
            "the blocker runs",
            process=process,
        )
        wait_until(
            lambda: len(state_rows(repo.root, "SELECT id FROM items WHERE source = 'inbox'")) == 2,
            "the inbox entries are items",
            process=process,
        )
        (agent,) = wait_until(
            lambda: [a for a in live_agents(repo.root, "plan") if a["item_id"] == "WRK-001"],
            "the plan agent of WRK-001 runs",
            process=process,
        )
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    with contextlib.suppress(ProcessLookupError):  # power loss: the agent goes too,
        os.killpg(agent["pid"], signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):  # and so does the source's command
        os.kill(int(pids[0].read_text()), signal.SIGKILL)


@pytest.mark.serial
def test_sigkill_of_run_mid_source_run_loses_nothing_and_makes_nothing_twice(
    git_repo: Repo, tmp_path: Path
) -> None:
    script(git_repo.root / "scripts" / "blocker.py", BLOCKER)
    gate = tmp_path / "release"
    rules = f"  - match: {{item: WRK-001, phase: plan}}\n    wait_for: {str(gate)!r}\n"
    repo = project(
        git_repo,
        '[[sources]]\nname = "inbox"\ninbox = "BACKLOG_INBOX.yaml"\nevery = "1h"\n'
        '[[sources]]\nname = "blocker"\ncommand = "scripts/blocker.py"\nevery = "1h"\n',
        rules,
    )
    repo.ok("add", "By hand")
    inbox = repo.root / "BACKLOG_INBOX.yaml"
    inbox.write_text("- title: Dropped one\n- title: Dropped two\n", encoding="utf-8")
    kill_mid_source_run(repo)
    assert not state_rows(repo.root, "SELECT id FROM items WHERE source = 'blocker'")
    (row,) = state_rows(repo.root, "SELECT * FROM schedules WHERE source = 'blocker'")
    assert row["claimed_by"] is not None and row["runs"] == 0  # the dead run's claim is left

    gate.write_text("go")
    (repo.root / "scripts" / "blocker.gate").write_text("go")
    process = start_run(repo)
    try:
        wait_until(
            lambda: len(state_rows(repo.root, "SELECT id FROM items WHERE archived = 1")) == 6,
            "every item, by hand, from the inbox and from the blocker, is done",
            process=process,
        )
    finally:
        out, err = stop(process)
    assert "[source blocker] fired: 3 created, 0 updated, 0 closed" in out, out + err
    rows = state_rows(repo.root, "SELECT id, source, external_id, title FROM items")
    assert sorted(r["title"] for r in rows) == [
        "Blocked ticket 1",
        "Blocked ticket 2",
        "Blocked ticket 3",
        "By hand",
        "Dropped one",
        "Dropped two",
    ]
    assert len(rows) == len({(r["source"], r["external_id"] or r["id"]) for r in rows})
    fired = state_rows(
        repo.root,
        "SELECT json_extract(data, '$.source') AS source, count(*) AS n FROM ledger "
        "WHERE kind = 'source.fired' GROUP BY source ORDER BY source",
    )
    assert [(f["source"], f["n"]) for f in fired] == [("blocker", 1), ("inbox", 1)]
    assert not inbox.exists() and not list(repo.root.glob(".BACKLOG_INBOX.yaml.*"))
    (row,) = state_rows(repo.root, "SELECT * FROM schedules WHERE source = 'blocker'")
    assert row["claimed_by"] is None and row["runs"] == 1 and row["failures"] == 0
