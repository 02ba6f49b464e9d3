"""The benchmarks stay runnable; their numbers are printed, never asserted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.waiting import DEADLINE_SECONDS

# Benchmarks time things: alone on the machine, their printed ratios mean something.
pytestmark = pytest.mark.serial

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _output(script: str, *args: str, timeout: float = DEADLINE_SECONDS) -> list[str]:
    """The lines a bench script printed; it must exit 0."""
    completed = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout.splitlines()


def test_snapshot_benchmark_runs() -> None:
    lines = _output("snapshot.py", "--quick")
    assert lines[0].split() == ["items", "snapshot", "deepcopy", "ratio", "write+publish"]
    rows = [line.split() for line in lines[1:3]]
    assert [row[0] for row in rows] == ["30", "100"]
    assert all(row[5].endswith("x") for row in rows)


def test_throughput_benchmark_runs() -> None:
    lines = _output("throughput.py", "--quick")
    rows = dict(line.split() for line in lines[1:])
    assert rows["phase_runs"] == "25"  # 5 items x (triage + 4 phases)
    assert rows["raw_commits_per_phase_run"].endswith("x")


def test_workspace_snapshot_benchmark_runs() -> None:
    lines = _output("workspace_snapshot.py", "--quick")
    assert lines[0].split() == ["files", "ours_ms", "naive_ms", "naive/ours"]
    assert lines[1].split()[0] == "200" and lines[1].endswith("x")


def _rows(script: str, *args: str) -> dict[str, str]:
    lines = _output(script, *args, timeout=600)
    assert lines[0] == "measure value"
    return dict(line.split(maxsplit=1) for line in lines[1:])


def test_scheduler_benchmark_runs() -> None:
    rows = _rows("scheduler.py", "--quick")
    assert rows["ratio_1000_to_100"].endswith("x")
    assert rows["ratio_archived_to_none"].endswith("x")


def test_idle_benchmark_runs() -> None:
    rows = _rows("idle.py", "--quick")
    assert rows["cpu_share"].endswith("%")
    assert rows["still_running_when_added"] == "True"


def test_restart_benchmark_runs() -> None:
    rows = _rows("restart.py", "--quick")
    assert rows["runs_in_flight"] == "10"
    assert float(rows["peak_rss_mb"]) > 0


def test_cli_benchmark_runs() -> None:
    lines = _output("cli.py", "--quick", timeout=600)
    labels = [line.split("  ")[0].strip() for line in lines]
    assert "phase-golem --version" in labels and "phase-golem status (100 items)" in labels
    growth = [line for line in lines if line.startswith(("status:", "log --limit 20:"))]
    assert len(growth) == 2
    assert all(re.search(r"ms +\d+\.\d+ms +\d+\.\d+x +<= \dx$", line) for line in growth), growth


def test_redaction_benchmark_runs() -> None:
    lines = _output("redaction.py", "--quick", timeout=300)
    assert lines[0].split() == ["input", "size", "seconds", "x", "prev"]
    measured = {line.split()[0] for line in lines[1:] if line.split()[1] == "100,000"}
    assert {"letters", "token-words", "pem-no-end", "transcript"} <= measured


def test_web_pages_benchmark_runs() -> None:
    pytest.importorskip("starlette", reason="the dashboard needs the [web] extra")
    lines = _output("web_pages.py", "--quick")
    assert lines[0].split() == ["page", "100_ms", "1000_ms", "ratio", "html_ratio"]
    rows = {line.split()[0]: line.split() for line in lines[1:6]}
    assert {"/", "/items/WRK-00001", "/notifications"} <= set(rows)
    assert all(row[3].endswith("x") and row[4].endswith("x") for row in rows.values())
