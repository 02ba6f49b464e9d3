"""Run files an agent may have replaced (safe_files.py, agents/transcripts.py, runner.py):
links are never followed or changed, special files never block, reads are bounded."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from phase_golem.agents.base import AgentRequest, Invocation, StreamInfo, json_lines
from phase_golem.agents.process import ProcessExit
from phase_golem.agents.runner import collect_outcome, run_agent
from phase_golem.agents.transcripts import MAX_LINE_BYTES, bounded_lines, redact_file
from phase_golem.domain.redaction import forget_secret_values, register_secret_values
from phase_golem.domain.runs import ErrorClass
from phase_golem.safe_files import (
    FileRefused,
    create_private,
    ensure_run_directory,
    read_bounded,
)

RESULT = '{"item_id": "WRK-001", "phase": "build", "result": "phase_complete", "summary": "ok"}'


@pytest.fixture(autouse=True)
def no_registered_secrets() -> Iterator[None]:
    forget_secret_values()
    yield
    forget_secret_values()


def finishes(action: Callable[[], Any], seconds: float = 60) -> Any:
    """Run `action` in a thread; fail (instead of hanging the suite) if it blocks."""
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(action())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked"
    return outcome[0]


class PlainAdapter:
    name = "command"

    def __init__(self, argv: tuple[str, ...] = ()) -> None:
        self.argv = argv

    def binary(self) -> None:
        return None

    def install_hint(self) -> str:
        return ""

    def invocation(self, request: AgentRequest) -> Invocation:
        return Invocation(self.argv)

    def read_stream(self, stdout_file: Path) -> StreamInfo:
        list(json_lines(stdout_file))
        return StreamInfo()


def request(tmp_path: Path) -> AgentRequest:
    run_dir = ensure_run_directory(tmp_path / "runs", "run-000001")
    return AgentRequest(
        run_id="run-000001",
        item_id="WRK-001",
        phase="build",
        attempt=1,
        prompt="p",
        run_dir=run_dir,
        cwd=tmp_path,
        timeout_seconds=30,
    )


def outside_file(tmp_path: Path, text: str = RESULT) -> Path:
    target = tmp_path / "outside" / "precious.json"
    target.parent.mkdir()
    target.write_text(text, encoding="utf-8")
    target.chmod(0o644)
    return target


def test_a_result_that_is_a_link_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    req = request(tmp_path)
    target = outside_file(tmp_path)
    for path in (req.stdout_file, req.stderr_file):
        path.write_text("", encoding="utf-8")
    req.result_file.symlink_to(target)
    outcome = collect_outcome(PlainAdapter(), req, ProcessExit(0), 10_000)
    assert outcome.error_class is ErrorClass.INVALID_RESULT
    assert "symbolic link" in (outcome.error or "")
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # never chmod-ed
    assert target.read_text(encoding="utf-8") == RESULT


@pytest.mark.parametrize("kind", ["directory", "fifo", "hard link"])
def test_a_result_that_is_not_a_plain_file_of_its_own_is_an_invalid_result(
    tmp_path: Path, kind: str
) -> None:
    req = request(tmp_path)
    if kind == "directory":
        req.result_file.mkdir()
    elif kind == "fifo":
        os.mkfifo(req.result_file)
    else:
        os.link(outside_file(tmp_path), req.result_file)
    outcome = finishes(lambda: collect_outcome(PlainAdapter(), req, ProcessExit(0), 10_000))
    assert outcome.error_class is ErrorClass.INVALID_RESULT, outcome
    assert outcome.error.startswith("result file refused: result.json")


def test_transcripts_replaced_by_links_or_fifos_are_not_read(tmp_path: Path) -> None:
    req = request(tmp_path)
    secret = outside_file(tmp_path, '{"type": "result", "session_id": "stolen"}\n')
    req.stdout_file.symlink_to(secret)
    os.mkfifo(req.stderr_file)
    req.result_file.write_text(RESULT, encoding="utf-8")
    outcome = finishes(lambda: collect_outcome(PlainAdapter(), req, ProcessExit(0), 10_000))
    assert outcome.error_class is None
    assert req.stdout_file.is_symlink() and stat.S_ISFIFO(os.lstat(req.stderr_file).st_mode)
    assert secret.read_text(encoding="utf-8").startswith('{"type"')


def test_planted_names_are_replaced_never_written_through(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    runs.mkdir(mode=0o755)
    target = outside_file(tmp_path)
    (runs / "run-000002").symlink_to(target.parent, target_is_directory=True)
    run_dir = ensure_run_directory(runs, "run-000002")
    assert not run_dir.is_symlink() and stat.S_IMODE(runs.stat().st_mode) == 0o700
    (run_dir / "prompt.md").symlink_to(target)
    os.close(create_private(run_dir / "prompt.md"))
    assert target.read_text(encoding="utf-8") == RESULT
    assert stat.S_IMODE((run_dir / "prompt.md").stat().st_mode) == 0o600


def test_an_agent_run_replaces_planted_log_links_before_writing(tmp_path: Path) -> None:
    req = request(tmp_path)
    target = outside_file(tmp_path)
    req.stdout_file.symlink_to(target)
    req.prompt_file.symlink_to(target)
    script = f"open({str(req.result_file)!r}, 'w').write({RESULT!r}); print('hello')"
    outcome = asyncio.run(
        run_agent(PlainAdapter((sys.executable, "-c", script)), req, max_result_bytes=10_000)
    )
    assert outcome.error_class is None
    assert target.read_text(encoding="utf-8") == RESULT
    assert req.stdout_file.read_text(encoding="utf-8") == "hello\n"


def test_special_files_are_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, needle in (
        (fifo, "FIFO"),
        (Path("/dev/zero"), "character device"),
        (tmp_path, "a directory"),
    ):
        error = finishes(lambda path=path: read_bounded(path, 100))
        assert isinstance(error, FileRefused) and needle in str(error), error
    big = tmp_path / "big"
    big.write_bytes(b"x" * 101)
    with pytest.raises(FileRefused, match="larger than the 100-byte limit"):
        read_bounded(big, 100)
    assert read_bounded(big, 101) == b"x" * 101


def test_transcripts_are_redacted_in_bounded_blocks_and_only_when_needed(tmp_path: Path) -> None:
    register_secret_values(["secret-value-123456"])
    clean = tmp_path / "clean.log"
    clean.write_bytes(b"line\n" * 300_000)
    before = os.stat(clean).st_ino
    assert redact_file(clean) is False and os.stat(clean).st_ino == before  # untouched
    dirty = tmp_path / "dirty.log"
    body = b"x" * (5 << 20) + b"\nsecret-value-123456\n" + b"y" * (MAX_LINE_BYTES + 10)
    dirty.write_bytes(body)
    assert redact_file(dirty) is True
    text = dirty.read_bytes()
    assert b"secret-value-123456" not in text and b"[REDACTED]" in text
    assert len(text) == len(body) - len("secret-value-123456") + len("[REDACTED]")
    lines = list(bounded_lines(dirty))
    assert [n for n, _ in lines] == [1, 2, 3] and lines[2][1] is None  # too long: skipped
