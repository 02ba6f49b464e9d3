"""OpenCode: `opencode run [--model M] PROMPT`; its output is kept, not parsed."""

from __future__ import annotations

from pathlib import Path

from phase_golem.agents.base import AgentRequest, Invocation, StreamInfo


class OpenCodeAdapter:
    name = "opencode"

    def binary(self) -> str:
        return "opencode"

    def install_hint(self) -> str:
        return "install OpenCode: npm install -g opencode-ai"

    def invocation(self, request: AgentRequest) -> Invocation:
        argv = ["opencode", "run"]
        if request.model:
            argv += ["--model", request.model]
        return Invocation((*argv, request.prompt))

    def read_stream(self, stdout_file: Path) -> StreamInfo:
        return StreamInfo()
