"""Claude Code, headless: `claude -p --output-format stream-json`, prompt on stdin.

The stream gives the session id (system/init), cost and tokens (the final `result`
line), and typed errors: an assistant message's `error` (`rate_limit`,
`authentication_failed`, `billing_error`, …) or the result's `api_error_status`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from phase_golem.agents.base import (
    AgentRequest,
    Invocation,
    StreamInfo,
    as_float,
    as_int,
    class_of_status,
    json_lines,
)
from phase_golem.domain.runs import ErrorClass

_ERROR_CLASSES = {
    "rate_limit": ErrorClass.RATE_LIMITED,
    "overloaded": ErrorClass.RATE_LIMITED,
    "authentication_failed": ErrorClass.UNAVAILABLE,
    "billing_error": ErrorClass.UNAVAILABLE,
    "model_not_found": ErrorClass.UNAVAILABLE,
}


class ClaudeAdapter:
    name = "claude"

    def binary(self) -> str:
        return "claude"

    def install_hint(self) -> str:
        return "install Claude Code: npm install -g @anthropic-ai/claude-code"

    def invocation(self, request: AgentRequest) -> Invocation:
        argv = [
            "claude",
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--dangerously-skip-permissions",
        ]
        if request.model:
            argv += ["--model", request.model]
        return Invocation(tuple(argv), stdin_text=request.prompt)

    def read_stream(self, stdout_file: Path) -> StreamInfo:
        info = StreamInfo()
        for event in json_lines(stdout_file):
            kind = event.get("type")
            session = event.get("session_id") or event.get("sessionId")
            if isinstance(session, str) and session:
                info.session_id = session
            error = event.get("error")
            if isinstance(error, str) and error in _ERROR_CLASSES:
                info.error_class = _ERROR_CLASSES[error]
                info.error = f"claude reported {error}"
            if kind == "result":
                info.cost_usd = as_float(event.get("total_cost_usd", event.get("cost_usd")))
                raw_usage = event.get("usage")
                usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
                info.tokens_in = (
                    as_int(usage.get("input_tokens"))
                    + as_int(usage.get("cache_read_input_tokens"))
                    + as_int(usage.get("cache_creation_input_tokens"))
                )
                info.tokens_out = as_int(usage.get("output_tokens"))
                status_class = class_of_status(event.get("api_error_status"))
                if status_class is not None:
                    info.error_class = status_class
                    info.error = f"claude API error status {event.get('api_error_status')}"
        return info
