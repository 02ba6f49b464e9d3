"""The agent pauses as stored (one JSON value in the meta table), for every reader.

Kept apart from `agent_pauses.py` (the rules that pause, resume and hold runs) so that a
read-only command like `status` can show the pauses without importing the engine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from phase_golem.store import Transaction

PAUSES_KEY = "agent_pauses"


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
    raw = tx.get_meta(PAUSES_KEY)
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    paused = data.get("paused")
    resumed = data.get("resumed")
    return {
        "paused": paused if isinstance(paused, dict) else {},
        "resumed": resumed if isinstance(resumed, dict) else {},
    }


def save_pauses(tx: Transaction, data: dict[str, dict[str, Any]]) -> None:
    tx.set_meta(PAUSES_KEY, json.dumps(data, sort_keys=True, separators=(",", ":")))


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
