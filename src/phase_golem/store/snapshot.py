"""The published backlog snapshot (DESIGN §3): the value lives in `domain/snapshot.py`, pure,
so the rules can read its indexes; the stores keep it fresh (store/keeper.py)."""

from __future__ import annotations

from phase_golem.domain.snapshot import BacklogSnapshot

__all__ = ["BacklogSnapshot"]
