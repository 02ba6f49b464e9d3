"""Run one agent for one run and classify what came back (DESIGN §6 failure classes).

Classes come from facts: the spawn failed, the clock ran out, the structured stream
named an error, the result file is missing, malformed, for someone else, or says
`failed`/`blocked`. Free text is never guessed at.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from phase_golem.agents.base import AgentAdapter, AgentRequest, StreamInfo
from phase_golem.agents.process import ProcessExit, SpawnError, run_process
from phase_golem.domain.redaction import redact_text
from phase_golem.domain.results import PhaseResult, ResultCode, ResultProblem, parse_result
from phase_golem.domain.runs import ErrorClass
from phase_golem.fsutil import write_atomically


@dataclass(frozen=True, slots=True)
class AgentOutcome:
    result: PhaseResult | None
    error_class: ErrorClass | None
    error: str | None
    stream: StreamInfo
    exit_code: int | None = None


def _private_write(path: os.PathLike[str], text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _redact_transcript(path: Path) -> None:
    """Agent output is kept for people to read, never with a secret in it."""
    if not path.exists():
        return
    text = path.read_text(encoding="utf-8", errors="replace")
    clean = redact_text(text)
    if clean != text:
        write_atomically(path, clean, private=True)  # a crash leaves one version, whole
    os.chmod(path, 0o600)


def agent_environment(request: AgentRequest) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHASE_GOLEM_")}
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
        result = parse_result(
            raw_result,
            expected_item=request.item_id,
            expected_phase=request.phase,
            max_bytes=max_result_bytes,
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
    request.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _private_write(request.prompt_file, request.prompt)
    request.result_file.unlink(missing_ok=True)
    invocation = adapter.invocation(request)
    try:
        exit = await run_process(
            invocation.argv,
            cwd=request.cwd,
            env=agent_environment(request),
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
    return collect_outcome(adapter, request, exit, max_result_bytes)


def collect_outcome(
    adapter: AgentAdapter, request: AgentRequest, exit: ProcessExit, max_result_bytes: int
) -> AgentOutcome:
    """After the agent is gone (ours, or adopted): its stream, transcripts and result."""
    stream = adapter.read_stream(request.stdout_file)
    for path in (request.stdout_file, request.stderr_file):
        _redact_transcript(path)
    raw: bytes | None = None
    if request.result_file.exists():
        # Read at most one byte over the limit: enough to know it is too big.
        with request.result_file.open("rb") as handle:
            raw = handle.read(max_result_bytes + 1)
        os.chmod(request.result_file, 0o600)
    return classify(exit, raw, stream, request, max_result_bytes)
