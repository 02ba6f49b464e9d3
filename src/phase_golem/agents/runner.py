"""Run one agent for one run and classify what came back (DESIGN §6 failure classes).

Classes come from facts: the spawn failed, the clock ran out, the structured stream
named an error, the result file is missing, malformed, for someone else, or says
`failed`/`blocked`. Free text is never guessed at.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from phase_golem.agents.base import AgentAdapter, AgentRequest, StreamInfo
from phase_golem.agents.environment import agent_base_environment
from phase_golem.agents.process import ProcessExit, SpawnError, run_process
from phase_golem.agents.transcripts import redact_file
from phase_golem.domain.redaction import redact_text
from phase_golem.domain.results import (
    PhaseResult,
    ResultCode,
    ResultProblem,
    parse_result,
    redact_result,
)
from phase_golem.domain.runs import ErrorClass
from phase_golem.fsutil import write_atomically
from phase_golem.safe_files import (
    FileRefused,
    ensure_run_directory,
    read_bounded,
    write_private,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AgentOutcome:
    result: PhaseResult | None
    error_class: ErrorClass | None
    error: str | None
    stream: StreamInfo
    exit_code: int | None = None


def _redact_transcript(path: Path) -> None:
    """Agent output is kept for people to read, never with a secret in it.

    A name the agent replaced with a link, a FIFO or a hard link is left alone, unread.
    """
    try:
        redact_file(path)
    except FileNotFoundError:
        return
    except FileRefused as exc:
        log.warning("%s", exc)


def agent_environment(request: AgentRequest, agent: str = "command") -> dict[str, str]:
    env = agent_base_environment(os.environ, agent, request.pass_env)
    env.update(
        PHASE_GOLEM_ITEM_ID=request.item_id,
        PHASE_GOLEM_PHASE=request.phase,
        PHASE_GOLEM_RUN_ID=request.run_id,
        PHASE_GOLEM_RESULT_FILE=str(request.result_file),
        PHASE_GOLEM_PROMPT_FILE=str(request.prompt_file),
        PHASE_GOLEM_ATTEMPT=str(request.attempt),
        PHASE_GOLEM_IDEMPOTENCY_KEY=request.idempotency_key or "",
    )
    env.update(request.extra_env)
    return env


def _exit_text(exit: ProcessExit) -> str:
    if exit.killed_by_signal is not None:
        return f"killed by signal {exit.killed_by_signal}"
    return f"exit code {exit.exit_code}"


def classify(
    exit: ProcessExit,
    raw_result: bytes | None,
    stream: StreamInfo,
    request: AgentRequest,
    max_result_bytes: int,
) -> AgentOutcome:
    def failed(error_class: ErrorClass, message: str) -> AgentOutcome:
        return AgentOutcome(None, error_class, message, stream, exit.exit_code)

    if exit.timed_out:
        return failed(
            ErrorClass.TIMEOUT, f"agent timed out after {request.timeout_seconds:g} seconds"
        )
    if raw_result is None:
        if stream.error_class is not None:
            return failed(stream.error_class, stream.error or stream.error_class.value)
        return failed(
            ErrorClass.CRASHED, f"agent ended without writing a result ({_exit_text(exit)})"
        )
    try:
        result = redact_result(
            parse_result(
                raw_result,
                expected_item=request.item_id,
                expected_phase=request.phase,
                max_bytes=max_result_bytes,
            )
        )
    except ResultProblem as problem:
        if stream.error_class is not None and problem.error_class is ErrorClass.INVALID_RESULT:
            return failed(stream.error_class, stream.error or stream.error_class.value)
        return failed(problem.error_class, str(problem))
    # A valid result counts even after a non-zero exit (Phase Golem).
    if result.result is ResultCode.FAILED:
        return AgentOutcome(
            result, ErrorClass.REPORTED_FAILED, result.reason, stream, exit.exit_code
        )
    if result.result is ResultCode.BLOCKED:
        return AgentOutcome(
            result, ErrorClass.REPORTED_BLOCKED, result.reason, stream, exit.exit_code
        )
    return AgentOutcome(result, None, None, stream, exit.exit_code)


async def run_agent(
    adapter: AgentAdapter,
    request: AgentRequest,
    *,
    max_result_bytes: int,
    on_start: Callable[[int], None] | None = None,
) -> AgentOutcome:
    """Write the prompt, run the agent, read and classify; cancellation propagates."""
    request = dataclasses.replace(request, prompt=redact_text(request.prompt))  # belt and braces
    ensure_run_directory(request.run_dir.parent, request.run_dir.name)
    write_private(request.prompt_file, request.prompt)
    with contextlib.suppress(FileNotFoundError, IsADirectoryError):
        os.unlink(request.result_file)  # a name, never what a link points at
    invocation = adapter.invocation(request)
    try:
        exit = await run_process(
            invocation.argv,
            cwd=request.cwd,
            env=agent_environment(request, adapter.name),
            stdout_path=request.stdout_file,
            stderr_path=request.stderr_file,
            timeout=request.timeout_seconds,
            stdin_text=invocation.stdin_text,
            on_start=on_start,
        )
    except SpawnError as exc:
        return AgentOutcome(
            None, ErrorClass.UNAVAILABLE, f"{exc} ({adapter.install_hint()})", StreamInfo()
        )
    # Off the event loop: redacting a huge transcript must not hold up other runs' leases.
    return await asyncio.to_thread(collect_outcome, adapter, request, exit, max_result_bytes)


def collect_outcome(
    adapter: AgentAdapter, request: AgentRequest, exit: ProcessExit, max_result_bytes: int
) -> AgentOutcome:
    """After the agent is gone (ours, or adopted): its stream, transcripts and result."""
    stream = adapter.read_stream(request.stdout_file)
    for path in (request.stdout_file, request.stderr_file):
        _redact_transcript(path)
    try:
        raw = read_result_file(request.result_file, max_result_bytes)
    except FileRefused as refused:
        message = f"result file refused: {refused}"
        return AgentOutcome(None, ErrorClass.INVALID_RESULT, message, stream, exit.exit_code)
    outcome = classify(exit, raw, stream, request, max_result_bytes)
    if raw is not None and outcome.result is not None:
        keep_redacted_copy(request.result_file, raw)
    return with_stderr_tail(outcome, request.stderr_file)


# Failures the agent did not explain in a result: what it printed last says why ("API key
# missing"), so it goes into the run's error, its ledger line and `show`.
TAIL_CLASSES = frozenset(
    {ErrorClass.CRASHED, ErrorClass.INVALID_RESULT, ErrorClass.TIMEOUT, ErrorClass.UNAVAILABLE}
)
TAIL_LINES = 3
TAIL_CHARS = 300
_TAIL_READ = 8192


def stderr_tail(path: Path) -> str:
    """The agent's last few stderr lines (already redacted), on one line, bounded."""
    try:
        raw = read_tail(path, _TAIL_READ)
    except OSError:
        return ""
    lines = [" ".join(line.split()) for line in raw.decode("utf-8", "replace").splitlines()]
    text = redact_text(" | ".join([line for line in lines if line][-TAIL_LINES:]))
    return text if len(text) <= TAIL_CHARS else "…" + text[-(TAIL_CHARS - 1) :]


def with_stderr_tail(outcome: AgentOutcome, stderr_file: Path) -> AgentOutcome:
    if outcome.error_class not in TAIL_CLASSES:
        return outcome
    tail = stderr_tail(stderr_file)
    if not tail:
        return outcome
    error = f"{outcome.error}; stderr: {tail}" if outcome.error else f"stderr: {tail}"
    return dataclasses.replace(outcome, error=error)


def read_tail(path: Path, limit: int) -> bytes:
    """The last `limit` bytes of a regular file, never following a link the agent made."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink > 1:
            return b""  # a name the agent pointed elsewhere is not read (as for redaction)
        os.lseek(fd, max(0, info.st_size - limit), os.SEEK_SET)
        return os.read(fd, limit)
    finally:
        os.close(fd)


def read_result_file(path: Path, max_result_bytes: int) -> bytes | None:
    """The result an agent wrote, or None if it wrote none; FileRefused for a link, a
    FIFO, a device, a directory or a hard link (so nothing outside the run is ever read).
    Reading stops one byte past the limit: enough to know it is too big."""
    if not os.path.lexists(path):
        return None
    try:
        return read_bounded(path, max_result_bytes, follow_symlinks=False, what=path.name)
    except FileRefused as refused:
        if refused.errno == errno.EFBIG:
            raise FileRefused(
                f"{path.name} is over the {max_result_bytes}-byte limit", errno.EFBIG
            ) from None
        raise


def keep_redacted_copy(path: Path, raw: bytes) -> None:
    """Our 0600 copy of the result replaces the agent's file when it held a secret or was
    readable by others; the agent's file itself is never changed (it may be a hard link)."""
    text = raw.decode("utf-8", errors="replace")
    clean = redact_text(text)
    try:
        mode = os.lstat(path).st_mode & 0o777
    except FileNotFoundError:
        return
    if clean != text or mode != 0o600:
        write_atomically(path, clean, private=True)
