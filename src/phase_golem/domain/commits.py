"""Which paths a finished run commits, and the commit messages (DESIGN §8, Phase Golem §4.16).

A run's *touched* paths are the difference between its workspace snapshots before and
after. When no other run shared the tree meanwhile, all of them are the run's own. When
runs overlapped in one tree, a path is the run's own only when no overlapping run could
have written it (its item's change folder); the rest is *shared*.

A file a successful run wrote is never left uncommitted and never committed under another
item's message alone: a shared path that a success saw change goes into the batch commit of
the overlapping runs, even when a run that failed (or crashed) saw it change too — which of
them wrote it cannot be told, so the commit names those failed runs as well ("shared with
overlapping runs"), and so does `show`. Only a path no success saw change, or one that is
certainly a failed run's own, stays behind as that run's *leftover*: kept in the working
tree, recorded and shown, and committed by a later successful attempt of the same visit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
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
    overlapped: bool = False  # another run shared the tree while it ran

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
    # Runs that did not succeed yet saw a committed shared path change: they could have
    # written it, so the commit names them too.
    overlapping: tuple[RunChange, ...] = ()


def plan_batch(group: Sequence[RunChange]) -> BatchPlan:
    """Batch the group's pending work: non-immediate successes and every shared path a
    success saw change (see the module docstring)."""
    succeeded = [c for c in group if c.succeeded]
    paths: set[str] = set()
    for change in succeeded:
        if not change.immediate:
            paths.update(change.own)
    # A path certainly some run's own is never committed as shared on another's behalf;
    # any other path a success saw change is committed, whoever else could have written it.
    owned = {p for c in group for p in c.own}
    shared_committed = {p for c in succeeded for p in c.shared} - owned
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
            key=_order,  # one message whatever finished first
        )
    )
    overlapping = tuple(
        sorted(
            (c for c in group if not c.succeeded and set(c.touched) & shared_committed),
            key=_order,
        )
    )
    return BatchPlan(
        entries,
        tuple(sorted(paths)),
        tuple(sorted(shared_committed)),
        {p: tuple(r) for p, r in sorted(leftovers.items())},
        overlapping if entries else (),
    )


def co_writers(
    paths: Iterable[str],
    recorded: Mapping[str, Sequence[Sequence[str]]],
    overlapping: Sequence[RunChange],
    entries: Sequence[RunChange],
) -> tuple[tuple[str, str], ...]:
    """(item, phase) of every visit besides the commit's own that could have written one of
    its paths: overlapping runs that did not succeed and the recorded owners of leftovers
    it takes. The commit names them ("shared with overlapping runs")."""
    own = {(c.item_id, c.phase) for c in entries}
    found = {(c.item_id, c.phase) for c in overlapping}
    for path in paths:
        found.update((owner[0], owner[1]) for owner in recorded.get(path, ()))
    return tuple(sorted(found - own))


def _order(change: RunChange) -> tuple[str, str, str]:
    return (change.item_id, change.phase, change.run_id)


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


def batch_commit_message(
    entries: Sequence[tuple[str, str, str | None]],
    overlapping: Sequence[tuple[str, str]] = (),
) -> str:
    """One entry reads like a single phase; several: `[A][p] s | [B][q] t`, blank, labels.

    `overlapping`: (item, phase) of runs that did not succeed but could have written some of
    the shared paths; a last paragraph names them, so the history says who overlapped.
    """
    message = _entries_message(entries)
    if not overlapping:
        return message
    labels = "".join(_label(item, phase) for item, phase in dict.fromkeys(overlapping))
    return f"{message}\n\nShared with overlapping runs that did not succeed: {labels}"


def _entries_message(entries: Sequence[tuple[str, str, str | None]]) -> str:
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
