"""Shared fixtures: temporary git repositories and the real `phase-golem` executable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import DEADLINE_SECONDS

OWN_FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The upstream projects' own files, laid beside the repository in CI; a plain clone has none.
UPSTREAM_FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
EXE = Path(sys.executable).with_name("phase-golem")


def fixture_path(name: str) -> Path:
    """One of our own fixture files under tests/fixtures/ (written by us, in upstream formats)."""
    path = OWN_FIXTURES / name
    if not path.exists():
        pytest.fail(f"fixture {path} is missing")
    return path


def upstream_path(name: str, project: str = "phase-golem") -> Path:
    """A file of the upstream project; only tests marked `upstream` may ask for one."""
    return UPSTREAM_FIXTURES / project / name


def own_and_upstream(own: str, upstream: str, project: str = "phase-golem") -> list[Any]:
    """Parameters running a test on our fixture and, when shared/ is present, on upstream's."""
    return [
        pytest.param(fixture_path(own), id="own"),
        pytest.param(upstream_path(upstream, project), id="upstream", marks=pytest.mark.upstream),
    ]


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("upstream") and not UPSTREAM_FIXTURES.is_dir():
        pytest.skip(
            f"upstream fixtures not found at {UPSTREAM_FIXTURES} "
            "(shared/ is not beside this clone; CI lays it there)"
        )


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)

    def json_lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


@dataclass
class Repo:
    root: Path

    def pg(self, *args: str, check: bool = False, timeout: float = DEADLINE_SECONDS) -> Result:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PHASE_GOLEM")}
        env["NO_COLOR"] = "1"
        completed = subprocess.run(
            [str(EXE), *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            env=env,
            check=False,
        )
        result = Result(completed.returncode, completed.stdout, completed.stderr)
        assert "Traceback" not in result.err, result.err
        if check:
            assert result.code == 0, f"phase-golem {' '.join(args)} failed: {result.err}"
        return result

    def ok(self, *args: str) -> Result:
        return self.pg(*args, check=True)


def git_in(root: Path, *args: str) -> str:
    """`git ARGS` in `root`; its output, failing the test when git fails."""
    return subprocess.run(
        ["git", "-C", str(root), *args], check=True, capture_output=True, text=True
    ).stdout


def make_git_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    subprocess.run(["git", "-C", str(path), "config", "user.email", "t@example.com"], check=True)
    subprocess.run(["git", "-C", str(path), "config", "user.name", "Test"], check=True)
    return path


@pytest.fixture
def git_repo(tmp_path: Path) -> Repo:
    return Repo(make_git_repo(tmp_path / "repo"))


@pytest.fixture
def project(git_repo: Repo) -> Iterator[Repo]:
    git_repo.ok("init")
    yield git_repo
