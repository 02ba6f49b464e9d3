"""The benchmarks stay runnable; their numbers are printed, never asserted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_snapshot_benchmark_runs() -> None:
    completed = subprocess.run(
        [sys.executable, str(BENCH / "snapshot.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[0].split() == ["items", "snapshot", "deepcopy", "ratio", "write+publish"]
    rows = [line.split() for line in lines[1:3]]
    assert [row[0] for row in rows] == ["30", "100"]
    assert all(row[5].endswith("x") for row in rows)


def test_throughput_benchmark_runs() -> None:
    completed = subprocess.run(
        [sys.executable, str(BENCH / "throughput.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    rows = dict(line.split() for line in completed.stdout.splitlines()[1:])
    assert rows["phase_runs"] == "25"  # 5 items x (triage + 4 phases)
    assert rows["raw_commits_per_phase_run"].endswith("x")


def test_workspace_snapshot_benchmark_runs() -> None:
    completed = subprocess.run(
        [sys.executable, str(BENCH / "workspace_snapshot.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[0].split() == ["files", "ours_ms", "naive_ms", "naive/ours"]
    assert lines[1].split()[0] == "200" and lines[1].endswith("x")


def test_cli_benchmark_runs() -> None:
    completed = subprocess.run(
        [sys.executable, str(BENCH / "cli.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    lines = completed.stdout.splitlines()
    labels = [line.split("  ")[0].strip() for line in lines]
    assert "phase-golem --version" in labels and "phase-golem status (100 items)" in labels
    growth = [line for line in lines if line.startswith(("status:", "log --limit 20:"))]
    assert len(growth) == 2
    assert all(re.search(r"ms +\d+\.\d+ms +\d+\.\d+x +<= \dx$", line) for line in growth), growth
