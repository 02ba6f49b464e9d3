"""Faults of the machine under the real CLI: a read-only `.phase-golem/`, a disk that fills
up while a run is going, the database's write-ahead log removed under a running `run`.
Each ends in one line naming the cause and exit code 3; nothing is half-written, and once
the machine is mended the next `run` finishes the work.

Read-only and full file systems are real ones: a private mount namespace (`unshare -rm`)
mounts a read-only bind or a small tmpfs over `.phase-golem/` for the commands inside it.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXE, Repo
from tests.e2e import add_items, items_by_id, runs_of, start_run, write_project
from tests.test_hostile_cli import db_dump

FILL_AGENT = r"""
import json, os
result = os.environ["PHASE_GOLEM_RESULT_FILE"]
item, phase = os.environ["PHASE_GOLEM_ITEM_ID"], os.environ["PHASE_GOLEM_PHASE"]
data = {"item_id": item, "phase": phase, "result": "phase_complete", "summary": "done"}
if phase == "triage":
    data["updated_assessments"] = {"size": "small", "risk": "low", "complexity": "low"}
open(result, "w").write(json.dumps(data))
if phase == "plan":  # fill the disk that holds .phase-golem/ once the work is done
    with open(os.path.join(os.environ["PHASE_GOLEM_ROOT"], ".phase-golem", "filler"), "wb") as f:
        try:
            while True:
                f.write(b"x" * 65536)
                f.flush()
        except OSError:
            pass
"""
PIPELINE = """\
[pipelines.feature]
phases = [{ name = "plan", is_destructive = false }, { name = "review", is_destructive = false }]
"""


def namespaces_work() -> bool:
    try:
        probe = subprocess.run(
            ["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt 2>/dev/null || true"],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


needs_namespaces = pytest.mark.skipif(
    not namespaces_work(), reason="needs `unshare -rm` (user and mount namespaces)"
)


def in_namespace(repo: Repo, mount: str, steps: list[list[str]], out: Path) -> list[dict[str, Any]]:
    """Run phase-golem `steps` inside a private mount namespace prepared by `mount`; each
    step's exit code, stdout and stderr are written to `out` and returned."""
    lines = ["set -u", "cd " + shlex.quote(str(repo.root)), mount]
    for index, args in enumerate(steps):
        command = " ".join(shlex.quote(a) for a in args)
        if args[0] == "sh":
            lines.append(command)
            continue
        target = shlex.quote(str(out / f"step{index}"))
        lines.append(
            f"{shlex.quote(str(EXE))} {command} >{target}.out 2>{target}.err; echo $? >{target}.rc"
        )
    subprocess.run(
        ["unshare", "-rm", "bash", "-c", "\n".join(lines)],
        check=True,
        timeout=600,
        env=_clean_env(),
    )
    results = []
    for index, args in enumerate(steps):
        if args[0] == "sh":
            continue
        base = out / f"step{index}"
        results.append(
            {
                "args": args,
                "code": int(base.with_suffix(".rc").read_text()),
                "out": base.with_suffix(".out").read_text(),
                "err": base.with_suffix(".err").read_text(),
            }
        )
    return results


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHASE_GOLEM")}
    env["NO_COLOR"] = "1"
    return env


def assert_one_line(result: dict[str, Any], code: int, *needles: str) -> None:
    assert result["code"] == code, result
    lines = result["err"].splitlines()
    assert len(lines) == 1 and lines[0].startswith("phase-golem: error: "), result["err"]
    assert "Traceback" not in result["err"] and "cannot rollback" not in result["err"]
    for needle in needles:
        assert needle in lines[0], lines[0]


@needs_namespaces
def test_a_read_only_state_directory_is_one_line_and_changes_nothing(
    git_repo: Repo, tmp_path: Path
) -> None:
    repo = write_project(git_repo, pipelines=PIPELINE)
    add_items(repo, "One", "Two")
    before = db_dump(repo)
    read_only = "mount --bind .phase-golem .phase-golem && mount -o remount,bind,ro .phase-golem"
    steps = [["run", "--plain"], ["add", "Three"], ["close", "WRK-001", "--reason", "x"]]
    results = in_namespace(repo, read_only, steps, tmp_path)
    for result in results:
        assert_one_line(result, 3, "Read-only file system")
    assert db_dump(repo) == before
    repo.ok("run", "--plain")  # the same project, writable again, just works
    assert {i["status"] for i in items_by_id(repo).values()} == {"done"}


@needs_namespaces
def test_a_disk_that_fills_under_a_run_stops_it_and_the_next_run_finishes(
    git_repo: Repo, tmp_path: Path
) -> None:
    script = git_repo.root / "fill_agent.py"
    script.write_text(FILL_AGENT, encoding="utf-8")
    agent = f'cli = "command"\ncommand = "{sys.executable} {script}"'
    repo = write_project(git_repo, agent=agent, pipelines=PIPELINE)
    add_items(repo, "Fills the disk")
    small_disk = (
        "mkdir -p " + shlex.quote(str(tmp_path / "fs")) + " && "
        "mount -t tmpfs -o size=6m tmpfs " + shlex.quote(str(tmp_path / "fs")) + " && "
        "cp -a .phase-golem/. " + shlex.quote(str(tmp_path / "fs")) + "/ && "
        "mount --bind " + shlex.quote(str(tmp_path / "fs")) + " .phase-golem"
    )
    results = in_namespace(
        repo,
        small_disk,
        [
            ["run", "--plain"],
            ["sh", "-c", "rm -f .phase-golem/filler"],
            ["run", "--plain"],
            ["runs", "--json"],
            ["status", "--all", "--json"],
        ],
        tmp_path,
    )
    full, again, runs, items = results
    assert_one_line(full, 3)
    assert any(cause in full["err"] for cause in ("disk is full", "No space left")), full["err"]
    assert again["code"] == 0, again
    assert [i["status"] for i in json.loads(items["out"])] == ["done"]
    ended = json.loads(runs["out"])
    assert not [r for r in ended if r["status"] == "failed:internal"], ended
    plans = [r for r in ended if r["phase"] == "plan" and r["status"] == "committed"]
    assert len(plans) == 1, ended  # the plan's result was kept, applied once


def test_the_wal_removed_under_a_running_run_stops_it_in_one_line(git_repo: Repo) -> None:
    rules = "  - match: {phase: plan}\n    delay: 6\n"
    repo = write_project(git_repo, rules, execution="lease_seconds = 1.5", pipelines=PIPELINE)
    add_items(repo, "Long plan")
    process = start_run(repo)
    try:
        deadline = time.monotonic() + 120
        while not [r for r in runs_of(repo) if r["phase"] == "plan" and r["pid"]]:
            assert time.monotonic() < deadline, "the plan never started"
            time.sleep(0.2)
        for suffix in ("-wal", "-shm"):
            Path(f"{repo.root}/.phase-golem/state.db{suffix}").unlink(missing_ok=True)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 3, (out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and "state.db-wal" in lines[0] and "removed" in lines[0], err
    assert "Traceback" not in err and "cannot rollback" not in err
    repo.ok("run", "--plain")  # recovered: the interrupted plan runs again, the item ends done
    assert items_by_id(repo)["WRK-001"]["status"] == "done"
