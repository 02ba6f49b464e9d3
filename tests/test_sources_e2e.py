"""Intake sources end to end through the real CLI (DESIGN §11): a command source whose
script changes its tickets between runs, a real inbox file, the github kind against a
stand-in `gh` on PATH answering from recorded JSON, and bad output and bad config that
change nothing."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Repo, fixture_path
from tests.e2e import MINI_PIPELINE, items_by_id, write_project
from tests.waiting import state_rows

TICKETS_SCRIPT = """\
#!{python}
# A ticket system that moves on between runs: run 1 has T-1 and T-2; run 2 renames T-1,
# closes T-2 and adds T-3; later runs repeat run 2. It counts its runs in a file.
import json, pathlib, sys
count_file = pathlib.Path(__file__).with_name("tickets.count")
run = int(count_file.read_text()) + 1 if count_file.exists() else 1
count_file.write_text(str(run))
if run == 1:
    tickets = [
        {{"external_id": "T-1", "title": "Fix login", "description": "It fails", "priority": 1}},
        {{"external_id": "T-2", "title": "Speed up search", "tags": ["perf"]}},
    ]
else:
    tickets = [
        {{"external_id": "T-3", "title": "Add export", "url": "https://tickets/T-3"}},
        {{"external_id": "T-1", "title": "Fix the login page", "description": "It fails"}},
        {{"external_id": "T-2", "title": "Speed up search", "state": "closed"}},
    ]
for ticket in tickets:
    print(json.dumps(ticket))
"""


def script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.format(python=sys.executable), encoding="utf-8")
    path.chmod(0o755)
    return path


def project_with(repo: Repo, sources: str, rules: str = "") -> Repo:
    return write_project(repo, rules, pipelines=MINI_PIPELINE + "\n" + sources)


def source_items(repo: Repo) -> dict[str, dict[str, Any]]:
    """Items by external id (archived ones too)."""
    return {i["external_id"]: i for i in items_by_id(repo).values() if i.get("external_id")}


def fired_events(repo: Repo) -> list[dict[str, Any]]:
    return [
        json.loads(r["data"])
        for r in state_rows(repo.root, "SELECT data FROM ledger WHERE kind = 'source.fired'")
    ]


COMMAND_SOURCE = """
[[sources]]
name = "tickets"
command = "scripts/tickets.py"
every = "1h"
tags = ["intake"]
size = "small"
"""


def test_a_command_source_creates_keeps_in_step_and_closes(git_repo: Repo) -> None:
    script(git_repo.root / "scripts" / "tickets.py", TICKETS_SCRIPT)
    repo = project_with(git_repo, COMMAND_SOURCE)
    first = repo.ok("sources", "run", "tickets")
    assert "[source tickets] fired: 2 created, 0 updated, 0 closed" in first.out
    assert "unknown key 'priority' ignored" in first.err
    items = source_items(repo)
    assert items["T-1"]["title"] == "Fix login" and items["T-1"]["source"] == "tickets"
    assert items["T-2"]["tags"] == ["intake", "perf"] and items["T-2"]["size"] == "small"

    second = repo.ok("sources", "run", "tickets")
    assert "1 created, 1 updated, 1 closed" in second.out
    items = source_items(repo)
    assert items["T-1"]["title"] == "Fix the login page"
    assert items["T-2"]["archived"] and items["T-2"]["closed_reason"] == "closed at its source"
    assert items["T-3"]["title"] == "Add export"
    assert len(items) == 3

    third = repo.ok("sources", "run", "tickets")  # the same output again: nothing new
    assert "0 created, 0 updated, 0 closed" in third.out
    assert len(items_by_id(repo)) == 3
    assert [(e["created"], e["updated"], e["closed"]) for e in fired_events(repo)] == [
        (2, 0, 0),
        (1, 1, 1),
        (0, 0, 0),
    ]
    listed = repo.ok("sources", "--json").json()
    assert listed[0]["name"] == "tickets" and listed[0]["runs"] == 3
    assert (listed[0]["items_created"], listed[0]["items_closed"]) == (3, 1)
    assert listed[0]["last_error"] is None
    shown = repo.ok("show", items["T-3"]["id"])
    assert "Source: tickets (T-3)  https://tickets/T-3" in shown.out.splitlines()
    as_json = repo.ok("show", items["T-3"]["id"], "--json").json()
    assert as_json["source"] == {
        "name": "tickets",
        "external_id": "T-3",
        "link": "https://tickets/T-3",
    }
    no_link = repo.ok("show", items["T-1"]["id"], "--json").json()  # no url: no link
    assert no_link["source"] == {"name": "tickets", "external_id": "T-1", "link": None}
    assert "Source: tickets (T-1)" in repo.ok("show", items["T-1"]["id"]).out.splitlines()
    repo.ok("add", "By hand")
    by_hand = next(i for i in items_by_id(repo).values() if i["title"] == "By hand")
    assert repo.ok("show", by_hand["id"], "--json").json()["source"] is None
    assert "Source:" not in repo.ok("show", by_hand["id"]).out


INBOX_SOURCE = """
[[sources]]
name = "inbox"
inbox = "BACKLOG_INBOX.yaml"
every = "30s"
"""


def test_an_inbox_file_is_taken_once_and_removed_after_commit(git_repo: Repo) -> None:
    repo = project_with(git_repo, INBOX_SOURCE)
    inbox = repo.root / "BACKLOG_INBOX.yaml"
    inbox.write_text(
        "- title: Write the docs\n  description: For users\n  size: small\n- title: Add a logo\n",
        encoding="utf-8",
    )
    result = repo.ok("sources", "run", "inbox")
    assert "2 created" in result.out
    assert not inbox.exists()
    assert not list(repo.root.glob(".BACKLOG_INBOX.yaml.*"))
    titles = sorted(i["title"] for i in items_by_id(repo).values())
    assert titles == ["Add a logo", "Write the docs"]
    assert "0 created" in repo.ok("sources", "run", "inbox").out  # no file: nothing
    inbox.write_text("- title: Write the docs\n  description: For users\n  size: small\n")
    # The same entry again is the same item (its hash), never a second one.
    assert "0 created" in repo.ok("sources", "run", "inbox").out
    assert len(items_by_id(repo)) == 2


def test_a_bad_inbox_file_changes_nothing_and_goes_back(git_repo: Repo) -> None:
    repo = project_with(git_repo, INBOX_SOURCE)
    inbox = repo.root / "BACKLOG_INBOX.yaml"
    inbox.write_text("- title: Good\n- title: Bad\n  size: enormous\n", encoding="utf-8")
    result = repo.pg("sources", "run", "inbox")
    assert result.code == 2, result.err
    assert "enormous" in result.err and "nothing was applied" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert inbox.exists()  # back where the user left it, to be fixed there
    assert items_by_id(repo) == {}
    listed = repo.ok("sources", "--json").json()
    assert "enormous" in listed[0]["last_error"] and listed[0]["failures"] == 1


@pytest.mark.parametrize(
    ("output", "needle"),
    [
        (b'{"title": "ok"}\n{"title": "broken"\n', "line 2: not valid JSON"),
        (b'{"title": "ok"}\n{"title": "a\\u0000"}\n', "line 2: title contains a NUL"),
        (b'{"title": "ok"}\n{"title": "nul\x00byte"}\n', "line 2: contains a NUL byte"),
        (b'{"title": "ok"}\n{"title": "caf\xe9"}\n', "line 2: not valid UTF-8"),
        (b'{"title": "ok"}\n{"title": "' + b"x" * 1_100_000 + b'"}\n', "line 2: longer than"),
    ],
    ids=["json", "nul-escape", "nul-byte", "utf8", "huge"],
)
def test_a_malformed_line_fails_the_whole_run_and_changes_nothing(
    git_repo: Repo, output: bytes, needle: str
) -> None:
    (git_repo.root / "scripts").mkdir()
    (git_repo.root / "scripts" / "out.bin").write_bytes(output)
    script(
        git_repo.root / "scripts" / "bad.py",
        "#!{python}\nimport pathlib, sys\n"
        "sys.stdout.buffer.write(pathlib.Path(__file__).with_name('out.bin').read_bytes())\n",
    )
    repo = project_with(
        git_repo, '[[sources]]\nname = "bad"\ncommand = "scripts/bad.py"\nevery = "5m"\n'
    )
    result = repo.pg("sources", "run", "bad")
    assert result.code == 2, result.err
    assert needle in result.err and "nothing was applied" in result.err
    assert len(result.err.strip().splitlines()) == 1 and len(result.err) < 1000
    assert items_by_id(repo) == {}
    assert fired_events(repo) == []
    row = repo.ok("sources", "--json").json()[0]
    assert row["failures"] == 1 and needle in row["last_error"]


def test_ten_thousand_entries_import_cleanly(git_repo: Repo) -> None:
    lines = "".join(
        json.dumps({"external_id": f"E-{n}", "title": f"Entry {n}"}) + "\n" for n in range(10_000)
    )
    (git_repo.root / "scripts").mkdir()
    (git_repo.root / "scripts" / "many.jsonl").write_text(lines, encoding="utf-8")
    script(
        git_repo.root / "scripts" / "many.py",
        "#!{python}\nimport pathlib, sys\n"
        "sys.stdout.write(pathlib.Path(__file__).with_name('many.jsonl').read_text())\n",
    )
    repo = project_with(
        git_repo, '[[sources]]\nname = "many"\ncommand = "scripts/many.py"\nevery = "1d"\n'
    )
    assert "10000 created" in repo.ok("sources", "run", "many").out
    count = state_rows(repo.root, "SELECT count(*) AS n FROM items WHERE source = 'many'")
    assert count[0]["n"] == 10_000
    assert "0 created" in repo.ok("sources", "run", "many").out


# ---- github ------------------------------------------------------------------------------
GH_STANDIN = """\
#!{python}
# A stand-in for the GitHub CLI: `gh issue list ... --json ... --limit N` answered from
# the recorded JSON named by GH_STANDIN_ANSWER (its first N issues: gh pages for us);
# with GH_STANDIN_AUTH set it fails the way gh does when nobody logged in.
import json, os, pathlib, sys
log = os.environ.get("GH_STANDIN_LOG")
if log:
    with open(log, "a") as handle:
        handle.write(json.dumps(sys.argv[1:]) + "\\n")
if os.environ.get("GH_STANDIN_AUTH"):
    sys.stderr.write("To get started with GitHub CLI, please run:  gh auth login\\n"
                     "Alternatively, populate the GH_TOKEN environment variable with a "
                     "GitHub API authentication token.\\n")
    sys.exit(4)
args = sys.argv[1:]
assert args[:2] == ["issue", "list"], args
limit = int(args[args.index("--limit") + 1])
fields = args[args.index("--json") + 1].split(",")
issues = json.loads(pathlib.Path(os.environ["GH_STANDIN_ANSWER"]).read_text())
print(json.dumps([{{k: i[k] for k in fields}} for i in issues[:limit]]))
"""

GITHUB_SOURCE = """
[[sources]]
name = "issues"
github = "acme/app"
labels = ["agent", "ready"]
every = "2m"
"""


def with_gh(repo: Repo, tmp_path: Path, answer: str) -> Path:
    bin_dir = tmp_path / "bin"
    script(bin_dir / "gh", GH_STANDIN)
    log = tmp_path / "gh.log"
    repo.env.update(
        {
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "GH_STANDIN_ANSWER": str(fixture_path(f"sources/{answer}")),
            "GH_STANDIN_LOG": str(log),
        }
    )
    return log


def test_github_issues_arrive_follow_and_close(git_repo: Repo, tmp_path: Path) -> None:
    repo = project_with(git_repo, GITHUB_SOURCE)
    log = with_gh(repo, tmp_path, "gh_issues_page.json")
    assert "2 created, 0 updated, 0 closed" in repo.ok("sources", "run", "issues").out
    argv = json.loads(log.read_text().splitlines()[0])
    assert argv[:4] == ["issue", "list", "--repo", "acme/app"]
    assert argv.count("--label") == 2 and "ready" in argv
    assert argv[argv.index("--state") + 1] == "all"
    items = source_items(repo)
    assert set(items) == {"github:acme/app#12", "github:acme/app#11"}  # #9 was closed: none
    assert items["github:acme/app#12"]["title"] == "Add dark mode"

    repo.env["GH_STANDIN_ANSWER"] = str(fixture_path("sources/gh_issues_later.json"))
    assert "1 created, 1 updated, 1 closed" in repo.ok("sources", "run", "issues").out
    items = source_items(repo)
    assert items["github:acme/app#12"]["title"] == "Add a dark mode"
    assert items["github:acme/app#11"]["closed_reason"] == "closed at its source"
    assert items["github:acme/app#13"]["archived"] is False
    shown = repo.ok("show", items["github:acme/app#13"]["id"]).out
    assert "https://github.com/acme/app/issues/13" in shown


def test_github_authentication_errors_are_ghs_in_one_line(git_repo: Repo, tmp_path: Path) -> None:
    repo = project_with(git_repo, GITHUB_SOURCE)
    with_gh(repo, tmp_path, "gh_issues_page.json")
    repo.env["GH_STANDIN_AUTH"] = "1"
    result = repo.pg("sources", "run", "issues")
    assert result.code == 3, result.err
    assert "To get started with GitHub CLI, please run:  gh auth login" in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert items_by_id(repo) == {}
    for _ in range(2):
        repo.pg("sources", "run", "issues")
    failing = state_rows(repo.root, "SELECT data FROM ledger WHERE kind = 'source.failing'")
    assert len(failing) == 1  # the third failure in a row, once
    notes = state_rows(repo.root, "SELECT kind FROM notifications WHERE kind = 'source.failing'")
    assert notes, "source.failing becomes a notification"
    row = repo.ok("sources", "--json").json()[0]
    assert row["failures"] == 3 and "gh auth login" in row["last_error"]


# ---- config --------------------------------------------------------------------------------
def test_every_config_problem_of_sources_is_reported_together(git_repo: Repo) -> None:
    bad = textwrap.dedent(
        """
        [[sources]]
        name = "a"
        inbox = "x.yaml"
        every = "soon"
        [[sources]]
        name = "b"
        command = "scripts/nowhere.sh"
        cron = "0 0 30 2 *"
        [[sources]]
        name = "a"
        inbox = "y.yaml"
        command = "true"
        cron = "61 * * * *"
        [[sources]]
        name = "d"
        github = "not-a-repo"
        every = "5m"
        [[sources]]
        name = "e"
        every = "5m"
        """
    )
    (git_repo.root / "phase-golem.toml").write_text(
        '[agent]\ncli = "sim"\n' + MINI_PIPELINE + bad, encoding="utf-8"
    )
    git_repo.pg("init")  # init itself refuses the config; `sources` and `run` say why too
    result = git_repo.pg("sources")
    assert result.code == 2, result.err
    for needle in (
        "sources[0].every: invalid duration 'soon'",
        "sources[1].command: command 'scripts/nowhere.sh' not found",
        "sources[1].cron: cron '0 0 30 2 *' never fires",
        "sources[2].name: 'a' is used twice",
        "sources[2]: give exactly one of `inbox` or `command` or `github` (given: inbox, command)",
        "sources[2].cron: cron '61 * * * *' is not a valid expression",
        "sources[3].github: 'not-a-repo' is not a GitHub repository as owner/name",
        "sources[4]: give exactly one of `inbox` or `command` or `github`",
    ):
        assert needle in result.err, (needle, result.err)
    assert len(result.err.strip().splitlines()) == 1
    run = git_repo.pg("run")
    assert run.code == 2 and "sources[0].every" in run.err
    assert not (git_repo.root / ".phase-golem" / "state.db").exists() or items_by_id(git_repo) == {}
