"""The agent pauses as stored (the `agent_pauses` and `agent_resumes` tables), for every reader.

Kept apart from `agent_pauses.py` (the rules that pause, resume and hold runs) so that a
read-only command like `status` can show the pauses without importing the engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from phase_golem.store import PausedAgent, Transaction


@dataclass(frozen=True, slots=True)
class AgentPause:
    agent: str
    reason: str
    since: str
    run_id: str | None = None

    def line(self) -> str:
        return (
            f"Agent {self.agent} is paused since {self.since}: {self.reason} "
            f"(phase-golem resume-agent {self.agent})"
        )


def load_pauses(tx: Transaction) -> dict[str, dict[str, Any]]:
    """`{"paused": {agent: {"reason", "since", "run_id"}}, "resumed": {agent: when}}`."""
    paused, resumed = tx.agent_pauses()
    return {
        "paused": {
            p.agent: {"reason": p.reason, "since": p.since, "run_id": p.run_id} for p in paused
        },
        "resumed": dict(resumed),
    }


def save_pauses(tx: Transaction, data: dict[str, dict[str, Any]]) -> None:
    paused = [
        PausedAgent(
            str(agent),
            str(entry.get("reason", "")),
            str(entry.get("since", "")),
            entry.get("run_id"),
        )
        for agent, entry in data.get("paused", {}).items()
    ]
    resumed = {str(a): str(at) for a, at in data.get("resumed", {}).items() if at}
    tx.save_agent_pauses(paused, resumed)


def paused_agents(tx: Transaction) -> dict[str, AgentPause]:
    found: dict[str, AgentPause] = {}
    for name, entry in load_pauses(tx)["paused"].items():
        if isinstance(entry, dict):
            found[name] = AgentPause(
                name,
                str(entry.get("reason", "")),
                str(entry.get("since", "")),
                entry.get("run_id"),
            )
    return found


def last_resumed(tx: Transaction, agent: str) -> str | None:
    value = load_pauses(tx)["resumed"].get(agent)
    return str(value) if value else None
