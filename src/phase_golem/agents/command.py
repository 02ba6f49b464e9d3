"""Any program as an agent (`cli = "command"`), and the built-in simulated agent.

A command template is split like a shell line (no shell runs it) and its placeholders
are filled per run: `{prompt_file}`, `{result_file}`, `{item}`, `{phase}`, `{run_id}`,
`{model}`. The prompt is also in `PHASE_GOLEM_PROMPT_FILE`.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from phase_golem.agents.base import AgentRequest, Invocation, StreamInfo
from phase_golem.agents.claude import ClaudeAdapter
from phase_golem.domain.templates import COMMAND_PLACEHOLDERS, fill

PLACEHOLDERS = COMMAND_PLACEHOLDERS


class CommandAdapter:
    name = "command"

    def __init__(self, template: str) -> None:
        self.template = template
        self.tokens = tuple(shlex.split(template))
        if not self.tokens:
            raise ValueError("agent command is empty")

    def binary(self) -> str:
        return self.tokens[0]

    def install_hint(self) -> str:
        return f"check [agent] command = {self.template!r}"

    def invocation(self, request: AgentRequest) -> Invocation:
        values = {
            "prompt_file": str(request.prompt_file),
            "result_file": str(request.result_file),
            "item": request.item_id,
            "phase": request.phase,
            "run_id": request.run_id,
            "model": request.model or "",
        }
        return Invocation(tuple(fill(token, values) for token in self.tokens))

    def read_stream(self, stdout_file: Path) -> StreamInfo:
        return StreamInfo()


class SimAdapter:
    """`python -m phase_golem.agents.sim --scenario FILE`, a real subprocess."""

    name = "sim"

    def __init__(self, scenario: Path | None) -> None:
        self.scenario = scenario

    def binary(self) -> None:
        return None

    def install_hint(self) -> str:
        return "the simulated agent ships with phase-golem"

    def invocation(self, request: AgentRequest) -> Invocation:
        argv = [sys.executable, "-m", "phase_golem.agents.sim"]
        if self.scenario is not None:
            argv += ["--scenario", str(self.scenario)]
        return Invocation(tuple(argv))

    def read_stream(self, stdout_file: Path) -> StreamInfo:
        # The simulator speaks Claude Code's stream format, so cost and rate limits
        # travel the same path a real agent's do.
        return ClaudeAdapter().read_stream(stdout_file)
