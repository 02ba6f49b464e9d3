"""Agents paused for the whole project (DESIGN §6 failure classes).

An agent is paused after `[execution.backoff] max_transient` rate limits in a row, or at
once when it is `unavailable` (binary missing, logged out, model not found). While it is
paused no run that needs it starts — items that need it wait where they are, holding no
concurrency slot — and everything else goes on. `phase-golem resume-agent NAME` lets it
run again.

The pauses live in the store's own tables (`agent_pauses`), changed together with a
ledger event in the same transaction, so a pause survives restarts and every process sees
it. A resume also remembers when it happened, so the rate-limit streak that caused the
pause is not counted again afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

from phase_golem.domain.errors import DomainError
from phase_golem.domain.events import EventKind
from phase_golem.domain.items import Item, ItemStatus, format_timestamp
from phase_golem.domain.pipelines import AgentCli, PhaseConfig, Settings
from phase_golem.domain.runs import Run, RunKind, Step
from phase_golem.domain.scheduling import RunningTask
from phase_golem.domain.snapshot import CANDIDATE_STATUSES, BacklogSnapshot
from phase_golem.engine.pause_records import (
    AgentPause,
    last_resumed,
    load_pauses,
    paused_agents,
    save_pauses,
)
from phase_golem.engine.preflight import phase_agent
from phase_golem.store import Store, Transaction

__all__ = [
    "AgentPause",
    "Holds",
    "agent_for_item",
    "agent_for_run",
    "last_resumed",
    "pause_agent",
    "paused_agents",
    "resume_agent",
]


def pause_agent(tx: Transaction, agent: str, reason: str, run: Run) -> bool:
    """Pause `agent` (with its ledger event); False when it was paused already."""
    data = load_pauses(tx)
    if agent in data["paused"]:
        return False
    data["paused"][agent] = {
        "reason": reason,
        "since": format_timestamp(tx.now),
        "run_id": run.id,
    }
    save_pauses(tx, data)
    tx.append_event(
        EventKind.AGENT_PAUSED,
        item_id=run.item_id,
        run_id=run.id,
        data={"agent": agent, "reason": reason},
    )
    return True


def resume_agent(store: Store, name: str) -> AgentPause:
    """`phase-golem resume-agent NAME`: bad names and agents not paused are bad input."""
    agent = name.strip().lower()
    known = [a.value for a in AgentCli]
    if agent not in known:
        raise DomainError(f"unknown agent {name!r}; agents are: {', '.join(known)}")
    with store.transaction() as tx:
        data = load_pauses(tx)
        pauses = paused_agents(tx)
        if agent not in pauses:
            paused = ", ".join(sorted(pauses)) or "none"
            raise DomainError(f"agent {agent} is not paused (paused agents: {paused})")
        del data["paused"][agent]
        data["resumed"][agent] = format_timestamp(tx.now)
        save_pauses(tx, data)
        tx.append_event(
            EventKind.AGENT_RESUMED,
            data={"agent": agent, "was_paused_for": pauses[agent].reason},
        )
        return pauses[agent]


def _next_phase(settings: Settings, item: Item) -> PhaseConfig | None:
    pipeline = settings.pipeline(item.pipeline_type)
    if pipeline is None:
        return None
    if item.status is ItemStatus.READY:
        return pipeline.phases[0] if pipeline.phases else None
    if item.phase is None:
        return None
    position = pipeline.locate(item.phase, item.effective_pool)
    return position.phase if position is not None else None


def agent_for_item(settings: Settings, item: Item) -> str | None:
    """The agent the item's next run would use; None when it needs none now."""
    if item.archived or item.status in (ItemStatus.BLOCKED, ItemStatus.DONE):
        return None
    if item.status is ItemStatus.NEW:
        return phase_agent(settings, None).value
    return phase_agent(settings, _next_phase(settings, item)).value


def agent_for_run(settings: Settings, item: Item, run: Run) -> str:
    """The agent a run uses (the same rule the executor applies when it starts it)."""
    if run.kind is RunKind.TRIAGE:
        return phase_agent(settings, None).value
    pipeline = settings.pipeline(item.pipeline_type)
    position = pipeline.locate(run.phase, run.pool) if pipeline else None
    return phase_agent(settings, position.phase if position else None).value


@dataclass(frozen=True, slots=True)
class Holds:
    """What the scheduler holds back for paused agents, as of one read of the store."""

    settings: Settings
    paused: frozenset[str]

    @classmethod
    def read(cls, tx: Transaction, settings: Settings) -> Holds:
        return cls(settings, frozenset(paused_agents(tx)))

    def run_held(self, run: Run, item: Item | None) -> bool:
        """A queued run that needs a paused agent: it keeps its item, takes no slot."""
        if not self.paused or run.step is not Step.QUEUED or item is None:
            return False
        return agent_for_run(self.settings, item, run) in self.paused

    def held_items(self, backlog: BacklogSnapshot, running: set[str]) -> dict[str, RunningTask]:
        """Items whose next run needs a paused agent wait where they are (no slot held).

        Only while an agent is paused does this look at every item (blocked and done
        ones cost nothing: they need no agent).
        """
        if not self.paused:
            return {}
        return {
            item.id: RunningTask(item.phase or "", False, waiting=True)
            for status in CANDIDATE_STATUSES
            for item in backlog.with_status(status).values()
            if item.id not in running and agent_for_item(self.settings, item) in self.paused
        }

    def startable(self, backlog: BacklogSnapshot, runs: list[Run]) -> list[Run]:
        """These runs without those that wait for a human to resume their agent."""
        if not self.paused:
            return runs
        return [r for r in runs if not self.run_held(r, backlog.get(r.item_id))]
