"""Hostile input through the real CLI: every rejection is one line, a non-zero exit, no
traceback, and leaves the stored state exactly as it was (a dump of the database is
compared before and after); what we print back is escaped."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.conftest import EXE, Repo, Result


def db_dump(repo: Repo) -> list[str]:
    path = repo.root / ".phase-golem" / "state.db"
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return list(conn.iterdump())


def one_line_rejection(result: Result, code: int = 2) -> str:
    assert result.code == code, (result.code, result.err)
    lines = result.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("phase-golem: error: "), result.err
    assert "\x1b" not in result.err and "Traceback" not in result.err
    return lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def populated(project: Repo) -> Repo:
    project.ok("add", "First item")
    project.ok("add", "Second item", "--dep", "WRK-001")
    return project


def test_arguments_that_are_not_utf8_are_refused_before_anything_runs(populated: Repo) -> None:
    before = db_dump(populated)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHASE_GOLEM")}
    completed = subprocess.run(
        [os.fsencode(EXE), b"add", b"caf\xe9 \xff"],
        cwd=populated.root,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    err = completed.stderr.decode("utf-8")
    one_line_rejection(Result(completed.returncode, "", err))
    assert "argument 2" in err and "not valid UTF-8" in err
    assert db_dump(populated) == before


@pytest.mark.parametrize(
    "args",
    [
        ["close", "WRK-001\nWRK-002", "--reason", "x"],
        ["run", "--target", "WRK-001\n"],
        ["show", "WRK-\x1b[2J001"],
        ["show", "WRK-99999999999999999999"],
        ["log", "--item", "WRK-999"],  # unknown, like every other command (issue 13)
        ["log", "--item", "WRK-999", "--follow"],
        ["edit", "WRK-001", "--dep", "WRK-1000000000000"],
        ["export", "--ledger", "-", "--after", str(2**64)],
        ["log", "--limit", str(2**64)],
        ["run", "--cap", str(10**30)],
        ["add", ""],
    ],
)
def test_ids_and_numbers_that_do_not_fit_are_one_line_exit_2(
    populated: Repo, args: list[str]
) -> None:
    before = db_dump(populated)
    line = one_line_rejection(populated.pg(*args))
    assert "\n" not in line.removeprefix("phase-golem: error: ")
    assert db_dump(populated) == before


def write_import(root: Path, name: str, content: bytes) -> Path:
    path = root / name
    path.write_bytes(content)
    return path


BAD_ID = (
    b"schema_version: 3\nitems:\n"
    b"  - {id: \"WRK-1\\n\", title: t, status: new, created: '2026-01-01T00:00:00Z'}\n"
)
DEEP_JSONL = (  # a deep line in the middle: damage, not a torn last line
    b'{"schema_version":1}\n' + b'{"id":' + b"[" * 200_000 + b"]" * 200_000 + b"}\n{}\n"
)
TASK = {
    "id": "tg-abc12",
    "title": "a\u0000b",
    "status": "todo",
    "priority": 0,
    "description": None,
    "tags": [],
    "dependencies": [],
    "blocked_reason": None,
    "blocked_from_status": None,
    "claimed_by": None,
    "claimed_at": None,
    "created_at": "2026-01-01T00:00:00Z",
    "updated_at": "2026-01-01T00:00:00Z",
}


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("empty.yaml", b"", "is empty"),
        ("blank.yaml", b"\n  \n", "is empty"),
        ("mapping.yaml", b"foo: bar\nbaz: 1\n", "neither a backlog"),
        ("scalar.yaml", b"just words\n", "found a str"),
        ("deep.yaml", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        ("deep.jsonl", DEEP_JSONL, "nested too deeply"),
        ("nul.jsonl", b'{"schema_version":1}\n' + json.dumps(TASK).encode() + b"\n", "NUL"),
        ("latin1.yaml", b"items:\n  - title: caf\xe9\n", "not UTF-8"),
        ("bignum.yaml", b"schema_version: 3\nnext_item_id: 99999999999999999999\n", "next_item_id"),
        ("hugeint.jsonl", b'{"schema_version":1}\n{"id":' + b"9" * 5000 + b"}\n{}\n", "malformed"),
        ("badid.yaml", BAD_ID, "invalid item ID"),
    ],
)
def test_imports_that_cannot_be_used_say_what_they_found(
    populated: Repo, name: str, content: bytes, needle: str
) -> None:
    before = db_dump(populated)
    path = write_import(populated.root, name, content)
    line = one_line_rejection(populated.pg("import", str(path), timeout=300))
    assert needle in line, line
    assert db_dump(populated) == before


@pytest.mark.parametrize("special", ["fifo", "/dev/zero", "/dev/null", "directory"])
def test_imports_of_special_files_are_refused_without_blocking(
    populated: Repo, special: str
) -> None:
    before = db_dump(populated)
    if special == "fifo":
        target = populated.root / "pipe.yaml"
        os.mkfifo(target)
    elif special == "directory":
        target = populated.root / "dir.yaml"
        target.mkdir()
    else:
        target = Path(special)
    result = populated.pg("import", str(target), timeout=120)  # a block would time out
    line = one_line_rejection(result)
    assert any(word in line for word in ("FIFO", "character device", "tasks.jsonl")), line
    assert db_dump(populated) == before


def test_an_empty_backlog_is_reported_not_counted(populated: Repo) -> None:
    path = write_import(populated.root, "none.yaml", b"schema_version: 3\nitems: []\n")
    result = populated.ok("import", str(path))
    assert "Nothing imported: none.yaml is a backlog file (schema v3) with no items" in result.out


@pytest.mark.parametrize(
    "target",
    [
        ".phase-golem/state.db",
        ".phase-golem/new-file.yaml",
        "phase-golem.toml",
        ".git/HEAD",
        "/dev/full",
        "a-directory",
        "missing-dir/out.yaml",
        "link.yaml",
    ],
)
def test_export_never_replaces_what_is_not_ours_to_replace(populated: Repo, target: str) -> None:
    root = populated.root
    (root / "a-directory").mkdir()
    (root / "precious.txt").write_text("keep me\n", encoding="utf-8")
    (root / "link.yaml").symlink_to(root / "precious.txt")
    path = Path(target) if target.startswith("/") else root / target
    existed = path.exists() and path.is_file()
    before_file = digest(path) if existed and not target.startswith("/dev") else None
    before = db_dump(populated)
    for args in (["export", str(path)], ["export", "--ledger", str(path)]):
        one_line_rejection(populated.pg(*args))
    if target.endswith("/out.yaml"):
        assert not (root / "missing-dir").exists()
    if before_file is not None:
        assert digest(path) == before_file
    assert (root / "precious.txt").read_text(encoding="utf-8") == "keep me\n"
    assert os.path.exists("/dev/full") and not Path("/dev/full").is_file()
    assert db_dump(populated) == before


def test_task_golem_export_refuses_protected_directories_and_files(populated: Repo) -> None:
    root = populated.root
    (root / "plain.txt").write_text("x", encoding="utf-8")
    for target in (".phase-golem", ".git", "plain.txt"):
        one_line_rejection(populated.pg("export", "--format", "task-golem", str(root / target)))
    done = populated.ok("export", "--format", "task-golem", str(root / "out"))
    assert (root / "out" / "tasks.jsonl").is_file() and "Exported to" in done.out


def test_an_ordinary_file_is_still_replaced_atomically(populated: Repo) -> None:
    out = populated.root / "BACKLOG.yaml"
    out.write_text("old\n", encoding="utf-8")
    populated.ok("export", str(out))
    assert "schema_version: 3" in out.read_text(encoding="utf-8")


ESCAPES = "Title \x1b[2J\x1b]0;pwned\x07 \x9b31m end"


def test_terminal_escapes_in_titles_are_shown_escaped_everywhere(project: Repo) -> None:
    project.ok("add", ESCAPES, "--description", "line one\n\x1b[31mred\x1b[0m")
    outputs = {
        "add-echo": project.ok("add", "second \x1b[1mbold").out,
        "status": project.ok("status").out,
        "show": project.ok("show", "WRK-001").out,
        "log": project.ok("log").out,
        "status --json": project.ok("status", "--json").out,
        "show --json": project.ok("show", "WRK-001", "--json").out,
        "log --json": project.ok("log", "--json").out,
        "export": project.ok("export").out,
    }
    for name, out in outputs.items():
        assert "\x1b" not in out and "\x9b" not in out and "\x07" not in out, name
    assert "\\x1b[2J" in outputs["status"] and "\\x1b[2J" in outputs["show"]
    assert "\\u001b[2J" in outputs["status --json"]
    shown = project.ok("show", "WRK-001", "--json").json()
    assert shown["item"]["title"] == ESCAPES  # stored as given, escaped only when shown


def test_markup_in_agent_or_user_text_is_never_interpreted(project: Repo) -> None:
    project.ok("add", "[bold red]not markup[/] [/]")
    assert "[bold red]not markup[/] [/]" in project.ok("status").out
    assert "[bold red]not markup[/] [/]" in project.ok("show", "WRK-001").out


def test_a_prefix_with_a_newline_is_a_config_error_not_a_broken_add(git_repo: Repo) -> None:
    (git_repo.root / "phase-golem.toml").write_text('[project]\nprefix = "WRK\\n"\n')
    line = one_line_rejection(git_repo.pg("init"))
    assert "project.prefix: 'WRK\\\\n' may use only" in line


def test_unknown_keys_warn_once_per_key_and_misspellings_stop(project: Repo) -> None:
    config = project.root / "phase-golem.toml"
    config.write_text("[guardrails]\nhue = 1\nshade = 2\n")
    result = project.ok("status")
    warnings = [line for line in result.err.splitlines() if "WARNING" in line]
    assert warnings == [
        "phase-golem: WARNING: phase-golem.toml: guardrails.hue: unknown key, ignored",
        "phase-golem: WARNING: phase-golem.toml: guardrails.shade: unknown key, ignored",
    ]
    config.write_text(config.read_text() + "\n[exection]\nmax_wip = 2\n")
    line = one_line_rejection(project.pg("status"))
    assert "exection: unknown key (did you mean 'execution'?)" in line


def test_a_scenario_that_never_ends_is_a_preflight_line_not_a_hang(git_repo: Repo) -> None:
    (git_repo.root / "phase-golem.toml").write_text(
        '[agent]\ncli = "sim"\nscenario = "/dev/zero"\n'
    )
    git_repo.ok("init")
    git_repo.ok("add", "Anything")
    subprocess.run(["git", "-C", str(git_repo.root), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(git_repo.root), "commit", "-qm", "setup"], check=True)
    line = one_line_rejection(git_repo.pg("run", "--plain", timeout=120), code=3)
    assert "agent.scenario" in line and "character device" in line


def test_a_store_outside_the_project_is_refused_before_it_is_created(git_repo: Repo) -> None:
    root = git_repo.root
    for url in ("sqlite:///../outside.db", "sqlite:///file::memory:?cache=shared"):
        (root / "phase-golem.toml").write_text(f'[storage]\nurl = "{url}"\n')
        one_line_rejection(git_repo.pg("init"))
    assert not (root.parent / "outside.db").exists()
    assert [p.name for p in root.iterdir() if p.name.startswith("file:")] == []
    assert not (root / ".phase-golem").exists()
