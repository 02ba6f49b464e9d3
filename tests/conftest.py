"""Shared fixtures: temporary git repositories and the real `phase-golem` executable."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
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
    env: dict[str, str] = field(default_factory=dict)  # set last, e.g. {"COLUMNS": "40"}

    def pg(self, *args: str, check: bool = False, timeout: float = DEADLINE_SECONDS) -> Result:
        # A terminal size set by whoever runs the tests must not change what tables show.
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("PHASE_GOLEM") and k not in ("COLUMNS", "LINES")
        }
        env["NO_COLOR"] = "1"
        env.update(self.env)
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


def agents_of(root: Path) -> list[int]:
    """Live processes started for the project at `root` (an agent and its children carry
    PHASE_GOLEM_ROOT in their environment); nobody else's are ever listed."""
    marks = {f"PHASE_GOLEM_ROOT={path}".encode() for path in {root, root.resolve()}}
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            environ = set((entry / "environ").read_bytes().split(b"\0"))
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except (OSError, IndexError):
            continue
        if environ & marks and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.fixture
def git_repo(tmp_path: Path) -> Iterator[Repo]:
    repo = Repo(make_git_repo(tmp_path / "repo"))
    yield repo
    # A test that failed half-way may leave an agent held at a gate: never let it outlive us.
    for pid in agents_of(repo.root):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def project(git_repo: Repo) -> Iterator[Repo]:
    git_repo.ok("init")
    yield git_repo


# --- a real PostgreSQL server, one per test session (per xdist worker) -------------------


def _new_pg_server() -> Any:
    from tests.pg_server import PgServer, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        pytest.skip("no PostgreSQL binaries (initdb) on this machine; .ci/run installs them")
    pytest.importorskip("psycopg", reason="the postgres extra is not installed")
    server = PgServer(bin_dir)
    server.start()
    return server


@pytest.fixture
def own_pg_server() -> Iterator[Any]:
    """A server of this test's own, for tests that stop or restart it."""
    server = _new_pg_server()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    server = _new_pg_server()
    try:
        # A migrated template, so each test's fresh database is one file copy away.
        from phase_golem.store.postgres import PostgresStore

        template = server.new_database()
        PostgresStore(template).close()
        server.template = template.rsplit("/", 1)[1]  # type: ignore[attr-defined]
        yield server
    finally:
        server.remove()


@pytest.fixture
def pg_url(pg_server: Any) -> str:
    """The URL of a fresh, migrated database of its own."""
    url: str = pg_server.new_database(template=pg_server.template)
    return url
