"""OpenAI Codex CLI: `codex exec --json -`, the prompt on stdin (`-`), so a long prompt
never meets the argument-length limit.

Its JSON lines give the thread id (`thread.started`), token counts (`turn.completed`
usage) and failures (`turn.failed` / `error`, with an HTTP status when there is one).
Codex reports no cost, so cost stays 0 and tokens carry the spend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from phase_golem.agents.base import (
    AgentRequest,
    Invocation,
    StreamInfo,
    as_int,
    class_of_status,
    json_lines,
)


class CodexAdapter:
    name = "codex"

    def binary(self) -> str:
        return "codex"

    def install_hint(self) -> str:
        return "install the Codex CLI: npm install -g @openai/codex"

    def invocation(self, request: AgentRequest) -> Invocation:
        argv = ["codex", "exec", "--json", "--dangerously-bypass-approvals-and-sandbox"]
        if request.model:
            argv += ["--model", request.model]
        return Invocation((*argv, "-"), stdin_text=request.prompt)

    def read_stream(self, stdout_file: Path) -> StreamInfo:
        info = StreamInfo()
        for event in json_lines(stdout_file):
            kind = event.get("type")
            if kind == "thread.started" and isinstance(event.get("thread_id"), str):
                info.session_id = event["thread_id"]
            elif kind == "turn.completed" and isinstance(event.get("usage"), dict):
                usage = event["usage"]
                info.tokens_in += as_int(usage.get("input_tokens"))
                info.tokens_out += as_int(usage.get("output_tokens"))
            elif kind in ("turn.failed", "error"):
                nested = event.get("error")
                error: dict[str, Any] = nested if isinstance(nested, dict) else event
                status = error.get("status") or error.get("status_code") or error.get("http_status")
                status_class = class_of_status(status)
                if status_class is not None:
                    info.error_class = status_class
                message = error.get("message")
                info.error = str(message) if message else f"codex reported {kind}"
        return info
