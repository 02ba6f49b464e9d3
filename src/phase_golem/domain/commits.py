"""Which paths a finished run commits, and the commit messages (DESIGN §8, Phase Golem §4.16).

A run's *touched* paths are the difference between its workspace snapshots before and
after. When no other run shared the tree meanwhile, all of them are the run's own. When
runs overlapped in one tree, a path is the run's own only when no overlapping run could
have written it (its item's change folder); the rest is *shared*: it goes into the batch
commit of the overlapping runs when one of them succeeded with that path in its
difference and no run that failed saw it change (it could have written it), and
otherwise stays behind as a leftover of the runs that failed.

Leftovers (paths of a run that did not succeed) are never committed under another
item's message: they stay in the working tree, are recorded and shown, and are
committed by a later successful attempt of the same visit (its retry chain).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

ORCHESTRATOR_PATHS = ("_worklog/",)  # written by us, saved by the halt commit


@dataclass(frozen=True, slots=True)
class RunChange:
    """What one finished run did to its tree, as far as git is concerned."""

    run_id: str
    item_id: str
    phase: str
    touched: tuple[str, ...]
    own: tuple[str, ...]  # touched paths that are certainly this run's
    succeeded: bool
    immediate: bool  # destructive, triage or subphase: committed at once
    summary: str = ""

    @property
    def shared(self) -> tuple[str, ...]:
        own = set(self.own)
        return tuple(p for p in self.touched if p not in own)


def without_orchestrator_paths(paths: Iterable[str]) -> list[str]:
    return [p for p in paths if not p.startswith(ORCHESTRATOR_PATHS)]


def split_touched(
    touched: Sequence[str], own_prefixes: Sequence[str], overlapped: bool
) -> tuple[str, ...]:
    """The touched paths that are certainly the run's own (see the module docstring)."""
    if not overlapped:
        return tuple(touched)
    prefixes = tuple(p.rstrip("/") + "/" for p in own_prefixes)
    return tuple(p for p in touched if prefixes and p.startswith(prefixes))


@dataclass(frozen=True, slots=True)
class BatchPlan:
    """How a group of runs that shared a tree is saved once the tree is idle."""

    entries: tuple[RunChange, ...]  # successful runs named in the batch message
    paths: tuple[str, ...]
    shared_paths: tuple[str, ...]  # committed on behalf of several runs (show says so)
    leftovers: dict[str, tuple[str, ...]] = field(default_factory=dict)  # path → run ids


def plan_batch(group: Sequence[RunChange], not_ours: Collection[str] = ()) -> BatchPlan:
    """Batch the group's pending work: non-immediate successes and every shared path.

    `not_ours`: paths known to be left by runs outside the group (leftovers of earlier
    failures); they are never committed as shared.
    """
    succeeded = [c for c in group if c.succeeded]
    paths: set[str] = set()
    for change in succeeded:
        if not change.immediate:
            paths.update(change.own)
    # A path certainly some run's own is never committed as shared on another's behalf,
    # and neither is one a run that failed could have written.
    owned = {p for c in group for p in c.own}
    failed_saw = {p for c in group if not c.succeeded for p in c.touched}
    shared_committed = {p for c in succeeded for p in c.shared} - owned - failed_saw
    shared_committed -= set(not_ours)
    paths |= shared_committed
    leftovers: dict[str, list[str]] = {}
    for change in group:
        if change.succeeded:
            continue
        for path in change.touched:
            if path not in paths:
                leftovers.setdefault(path, []).append(change.run_id)
    entries = tuple(
        sorted(
            (
                c
                for c in succeeded
                if (not c.immediate and c.own) or set(c.shared) & shared_committed
            ),
            key=lambda c: (c.item_id, c.phase, c.run_id),  # one message whatever finished first
        )
    )
    return BatchPlan(
        entries,
        tuple(sorted(paths)),
        tuple(sorted(shared_committed)),
        {p: tuple(r) for p, r in sorted(leftovers.items())},
    )


def _label(item_id: str, phase: str) -> str:
    return f"[{item_id}][{phase}]"


def clean_summary(item_id: str, phase: str, summary: str | None) -> str:
    """The summary without a repeated `[ID][phase]` prefix and on one line."""
    text = " ".join((summary or "").split())
    prefix = re.escape(_label(item_id, phase))
    return re.sub(rf"^(?:{prefix}\s*)+", "", text).strip()


def phase_commit_message(item_id: str, phase: str, summary: str | None) -> str:
    """`[ID][phase] <summary>`, or `[ID][phase] Phase output` without one."""
    return f"{_label(item_id, phase)} {clean_summary(item_id, phase, summary) or 'Phase output'}"


def batch_commit_message(entries: Sequence[tuple[str, str, str | None]]) -> str:
    """One entry reads like a single phase; several: `[A][p] s | [B][q] t`, blank, labels."""
    if len(entries) == 1:
        return phase_commit_message(*entries[0])
    labels = "".join(_label(item, phase) for item, phase, _ in entries)
    summaries = [
        f"{_label(item, phase)} {text}"
        for item, phase, summary in entries
        if (text := clean_summary(item, phase, summary))
    ]
    if not summaries:
        return labels
    return f"{' | '.join(summaries)}\n\n{labels} Phase outputs"


def halt_commit_message(reason: str) -> str:
    return f"[phase-golem] Save task state on halt ({reason})"
