"""Why a run of the scheduler stopped, and what it did (Phase Golem's run summary)."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class HaltReason(StrEnum):
    ALL_DONE_OR_BLOCKED = "AllDoneOrBlocked"
    CAP_REACHED = "CapReached"
    CIRCUIT_BREAKER_TRIPPED = "CircuitBreakerTripped"
    SHUTDOWN_REQUESTED = "ShutdownRequested"
    TARGET_COMPLETED = "TargetCompleted"
    TARGET_BLOCKED = "TargetBlocked"
    FILTER_EXHAUSTED = "FilterExhausted"
    NO_MATCHING_ITEMS = "NoMatchingItems"


@dataclass
class RunSummary:
    phases_executed: int = 0
    items_completed: list[str] = field(default_factory=list)
    items_blocked: set[str] = field(default_factory=set)
    follow_ups_created: int = 0
    items_merged: int = 0
    cost_usd: float = 0.0
    halt_reason: HaltReason | None = None
    waiting: list[tuple[str, list[str]]] = field(default_factory=list)
    agents_paused: list[str] = field(default_factory=list)
    stop_signal: int | None = None  # SIGINT, SIGTERM, … when one ended the run

    @property
    def all_blocked(self) -> bool:
        """Nothing completed and something blocked (Phase Golem's rule for exit 1).

        An agent paused for a human counts as blocked: its items cannot go on without one.
        """
        stuck = self.items_blocked or self.agents_paused
        return not self.items_completed and bool(stuck)

    @property
    def exit_code(self) -> int:
        """128 + the signal that stopped the run (130 for SIGINT, 143 for SIGTERM, the
        shell's convention); else 1 when all blocked, else 0."""
        if self.stop_signal is not None:
            return 128 + self.stop_signal
        return 1 if self.all_blocked else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "phases_executed": self.phases_executed,
            "items_completed": list(self.items_completed),
            "items_blocked": sorted(self.items_blocked),
            "follow_ups_created": self.follow_ups_created,
            "items_merged": self.items_merged,
            "cost_usd": round(self.cost_usd, 6),
            "halt_reason": self.halt_reason.value if self.halt_reason else None,
            "agents_paused": list(self.agents_paused),
            "stop_signal": self.stop_signal,
        }

    def lines(self) -> list[str]:
        out = [
            "--- Run summary ---",
            f"Phases executed: {self.phases_executed}",
            f"Items completed: {len(self.items_completed)}"
            + (f" ({', '.join(self.items_completed)})" if self.items_completed else ""),
            f"Items blocked: {len(self.items_blocked)}"
            + (f" ({', '.join(sorted(self.items_blocked))})" if self.items_blocked else ""),
            f"Follow-ups created: {self.follow_ups_created}",
            f"Items merged: {self.items_merged}",
            f"Cost: ${self.cost_usd:.4f}",
        ]
        for item_id, deps in self.waiting:
            out.append(f"{item_id} (waiting on: {', '.join(deps)})")
        out.extend(self.agents_paused)
        out.append(f"Halt reason: {self.halt_reason.value if self.halt_reason else '-'}")
        if self.stop_signal is not None:
            out.append(f"Stopped by {signal.Signals(self.stop_signal).name}")
        return out
