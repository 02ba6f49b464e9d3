"""Pick the adapter for a phase, and check at preflight that its binary exists."""

from __future__ import annotations

import shutil
from pathlib import Path

from phase_golem.agents.base import AgentAdapter
from phase_golem.agents.claude import ClaudeAdapter
from phase_golem.agents.codex import CodexAdapter
from phase_golem.agents.command import CommandAdapter, SimAdapter
from phase_golem.agents.merge import MergeAdapter
from phase_golem.agents.opencode import OpenCodeAdapter
from phase_golem.domain.pipelines import AgentCli, AgentConfig, MergeStrategy


def adapter_for(
    cli: AgentCli,
    agent: AgentConfig,
    base_dir: Path,
    *,
    root: Path | None = None,
    base_branch: str = "main",
    merge_strategy: MergeStrategy = MergeStrategy.MERGE_COMMIT,
    remote: str | None = None,
) -> AgentAdapter:
    if cli is AgentCli.MERGE:
        return MergeAdapter(base_branch, merge_strategy.value, root or base_dir, remote)
    if cli is AgentCli.CLAUDE:
        return ClaudeAdapter()
    if cli is AgentCli.CODEX:
        return CodexAdapter()
    if cli is AgentCli.OPENCODE:
        return OpenCodeAdapter()
    if cli is AgentCli.SIM:
        scenario = None
        if agent.scenario:
            path = Path(agent.scenario)
            scenario = path if path.is_absolute() else base_dir / path
        return SimAdapter(scenario)
    return CommandAdapter(agent.command or "")


def missing_binary(adapter: AgentAdapter, cwd: Path) -> str | None:
    """A one-line problem when the adapter's program cannot be found, else None."""
    binary = adapter.binary()
    if binary is None:
        return None
    if "/" in binary:
        path = Path(binary) if Path(binary).is_absolute() else cwd / binary
        if path.is_file():
            return None
        return f"agent program {binary!r} not found ({adapter.install_hint()})"
    if shutil.which(binary) is None:
        return f"agent {adapter.name}: {binary!r} is not on PATH ({adapter.install_hint()})"
    return None
