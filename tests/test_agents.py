"""The agent layer: process groups and timeouts, adapters, stream parsing, classification."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import textwrap
import time
from pathlib import Path

import pytest

from phase_golem.agents.base import AgentRequest, StreamInfo
from phase_golem.agents.claude import ClaudeAdapter
from phase_golem.agents.codex import CodexAdapter
from phase_golem.agents.command import CommandAdapter
from phase_golem.agents.process import ProcessExit, live_groups, run_process
from phase_golem.agents.registry import missing_binary
from phase_golem.agents.runner import classify, run_agent
from phase_golem.domain.runs import ErrorClass
from tests.waiting import DEADLINE_SECONDS, group_alive


def request(tmp_path: Path, **changes: object) -> AgentRequest:
    values: dict[str, object] = {
        "run_id": "run-000001",
        "item_id": "WRK-001",
        "phase": "build",
        "attempt": 1,
        "prompt": "Do the thing.\n",
        "run_dir": tmp_path / "runs" / "run-000001",
        "cwd": tmp_path,
        "timeout_seconds": DEADLINE_SECONDS,
    }
    values.update(changes)
    return AgentRequest(**values)  # type: ignore[arg-type]


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / "bin" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body), encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


SPAWNS_AND_SLEEPS = """\
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(child.pid, flush=True)
time.sleep(600)
"""


def test_a_timeout_stops_the_whole_process_group(tmp_path: Path) -> None:
    program = script(tmp_path, "sleeper", SPAWNS_AND_SLEEPS)
    out, err = tmp_path / "out", tmp_path / "err"
    pids: list[int] = []
    exit = asyncio.run(
        run_process(
            [str(program)],
            cwd=tmp_path,
            env=dict(os.environ),
            stdout_path=out,
            stderr_path=err,
            timeout=1.0,
            on_start=pids.append,
            grace=1.0,
        )
    )
    assert exit.timed_out
    assert not group_alive(pids[0])  # nothing of the group is left, the child included
    printed = out.read_text().split()
    if printed:  # on a loaded machine the timeout may fire before the child was spawned
        with pytest.raises(ProcessLookupError):
            os.kill(int(printed[0]), 0)
    assert pids[0] not in live_groups()


def test_cancelling_a_run_stops_its_group_too(tmp_path: Path) -> None:
    program = script(tmp_path, "sleeper", SPAWNS_AND_SLEEPS)
    pids: list[int] = []

    async def cancel_soon() -> None:
        task = asyncio.create_task(
            run_process(
                [str(program)],
                cwd=tmp_path,
                env=dict(os.environ),
                stdout_path=tmp_path / "out",
                stderr_path=tmp_path / "err",
                timeout=DEADLINE_SECONDS,
                on_start=pids.append,
                grace=1.0,
            )
        )
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not (tmp_path / "out").exists() or not (tmp_path / "out").read_text():
            assert time.monotonic() < deadline, "the agent never printed its child's pid"
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_soon())
    assert not group_alive(pids[0])


def test_stdin_is_closed_unless_the_prompt_goes_there(tmp_path: Path) -> None:
    program = script(tmp_path, "reader", "import sys\nprint(repr(sys.stdin.read()))\n")
    for stdin_text, expected in ((None, "''"), ("hello", "'hello'")):
        asyncio.run(
            run_process(
                [str(program)],
                cwd=tmp_path,
                env=dict(os.environ),
                stdout_path=tmp_path / "out",
                stderr_path=tmp_path / "err",
                timeout=DEADLINE_SECONDS,
                stdin_text=stdin_text,
            )
        )
        assert (tmp_path / "out").read_text().strip() == expected


FAKE_CLAUDE = """\
import json, os, sys
prompt = sys.stdin.read()
assert "--output-format" in sys.argv and "stream-json" in sys.argv, sys.argv
mode = os.environ.get("FAKE_MODE", "ok")
def emit(event):
    print(json.dumps(event), flush=True)
emit({"type": "system", "subtype": "init", "session_id": "sess-42", "model": "x"})
print("debug: ANTHROPIC_API_KEY=sk-ant-abcdefghijklmnopqrstuvwxyz", file=sys.stderr)
if mode == "rate_limit":
    emit({"type": "assistant", "error": "rate_limit", "session_id": "sess-42", "message": {}})
    emit({"type": "result", "subtype": "error_during_execution", "is_error": True,
          "session_id": "sess-42", "total_cost_usd": 0})
    sys.exit(1)
if mode == "auth":
    emit({"type": "assistant", "error": "authentication_failed", "message": {}})
    sys.exit(1)
result = {"item_id": os.environ["PHASE_GOLEM_ITEM_ID"], "phase": os.environ["PHASE_GOLEM_PHASE"],
          "result": "phase_complete", "summary": "did it: " + str(len(prompt))}
with open(os.environ["PHASE_GOLEM_RESULT_FILE"], "w") as handle:
    json.dump(result, handle)
emit({"type": "result", "subtype": "success", "is_error": False, "session_id": "sess-42",
      "total_cost_usd": 0.125, "usage": {"input_tokens": 100, "cache_read_input_tokens": 20,
      "output_tokens": 7}})
"""


@pytest.mark.parametrize(
    ("mode", "error_class"),
    [("ok", None), ("rate_limit", ErrorClass.RATE_LIMITED), ("auth", ErrorClass.UNAVAILABLE)],
)
def test_claude_stream_gives_session_cost_tokens_and_typed_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, error_class: ErrorClass | None
) -> None:
    fake = script(tmp_path, "claude", FAKE_CLAUDE)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_MODE", mode)
    adapter = ClaudeAdapter()
    assert missing_binary(adapter, tmp_path) is None
    # FAKE_MODE is no credential of claude's: only `pass_env` lets it through.
    asked = request(tmp_path, pass_env=("FAKE_*",))
    outcome = asyncio.run(run_agent(adapter, asked, max_result_bytes=10_000))
    assert outcome.error_class is error_class
    if mode == "ok":
        assert outcome.result is not None and outcome.result.summary.startswith("did it")
        assert outcome.stream.session_id == "sess-42"
        assert outcome.stream.cost_usd == pytest.approx(0.125)
        assert (outcome.stream.tokens_in, outcome.stream.tokens_out) == (120, 7)
    prompt_file = tmp_path / "runs" / "run-000001" / "prompt.md"
    assert stat.S_IMODE(prompt_file.stat().st_mode) == 0o600
    transcript = (tmp_path / "runs" / "run-000001" / "stderr.log").read_text()
    assert "sk-ant-" not in transcript and "[REDACTED]" in transcript


def test_codex_json_lines_give_thread_and_tokens(tmp_path: Path) -> None:
    stream = tmp_path / "stdout.log"
    events = [
        {"type": "thread.started", "thread_id": "th-1"},
        {"type": "turn.completed", "usage": {"input_tokens": 50, "output_tokens": 5}},
        {"type": "turn.completed", "usage": {"input_tokens": 10, "output_tokens": 1}},
        {"type": "turn.failed", "error": {"message": "Too Many Requests", "status": 429}},
    ]
    stream.write_text("\n".join(json.dumps(e) for e in events) + '\n{"torn', encoding="utf-8")
    info = CodexAdapter().read_stream(stream)
    assert (info.session_id, info.tokens_in, info.tokens_out) == ("th-1", 60, 6)
    assert info.error_class is ErrorClass.RATE_LIMITED


def test_codex_reads_the_prompt_from_stdin(tmp_path: Path) -> None:
    invocation = CodexAdapter().invocation(request(tmp_path, model="o4"))
    assert invocation.argv[:3] == ("codex", "exec", "--json")
    assert invocation.argv[-1] == "-" and invocation.stdin_text == "Do the thing.\n"
    assert "--model" in invocation.argv


def test_a_command_template_fills_its_placeholders_without_a_shell(tmp_path: Path) -> None:
    adapter = CommandAdapter("my-agent --in {prompt_file} --out={result_file} '{item} x'")
    argv = adapter.invocation(request(tmp_path)).argv
    run = tmp_path / "runs" / "run-000001"
    assert argv == (
        "my-agent",
        "--in",
        str(run / "prompt.md"),
        f"--out={run / 'result.json'}",
        "WRK-001 x",
    )
    problem = missing_binary(adapter, tmp_path)
    assert problem is not None and "my-agent" in problem


def test_a_missing_program_is_unavailable_with_a_hint(tmp_path: Path) -> None:
    adapter = CommandAdapter(str(tmp_path / "nope"))
    outcome = asyncio.run(run_agent(adapter, request(tmp_path), max_result_bytes=1000))
    assert outcome.error_class is ErrorClass.UNAVAILABLE
    assert "nope" in (outcome.error or "")


def _classify(raw: bytes | None, exit: ProcessExit, tmp_path: Path) -> ErrorClass | None:
    return classify(exit, raw, StreamInfo(), request(tmp_path), 200).error_class


def test_classification_uses_facts_not_free_text(tmp_path: Path) -> None:
    ok = json.dumps(
        {"item_id": "WRK-001", "phase": "build", "result": "phase_complete", "summary": "s"}
    ).encode()
    assert _classify(ok, ProcessExit(3), tmp_path) is None  # valid result after a bad exit
    assert _classify(None, ProcessExit(0), tmp_path) is ErrorClass.CRASHED
    assert _classify(None, ProcessExit(-9), tmp_path) is ErrorClass.CRASHED
    assert _classify(ok, ProcessExit(None, timed_out=True), tmp_path) is ErrorClass.TIMEOUT
    assert _classify(b"{", ProcessExit(0), tmp_path) is ErrorClass.INVALID_RESULT
    assert _classify(ok + b" " * 300, ProcessExit(0), tmp_path) is ErrorClass.INVALID_RESULT
    failed = ok.replace(b"phase_complete", b"failed")
    assert _classify(failed, ProcessExit(0), tmp_path) is ErrorClass.REPORTED_FAILED
    other = ok.replace(b"WRK-001", b"WRK-002")
    assert _classify(other, ProcessExit(0), tmp_path) is ErrorClass.MISMATCH
