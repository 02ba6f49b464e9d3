"""Working trees as the engine names them, and which runs are in which tree now.

A tree is named by its path relative to the project root (the root itself is
ROOT_TREE). Runs that share a tree overlap: what one wrote may be another's, so their
output is saved together, as one batch, once none of them is still writing (DESIGN §8).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from phase_golem.engine.git_view import ROOT_TREE


@dataclass
class TreeTracker:
    """Which runs are in which working tree now, and which of them overlapped.

    Runs that shared a tree, directly or through a chain of others, form one group; a
    group's batch is saved once none of its runs is still active, so a tree that is never
    idle (a steady stream of concurrent runs) still gets its commits as it goes.
    """

    active: dict[str, set[str]] = field(default_factory=dict)
    overlapped: set[str] = field(default_factory=set)
    groups: dict[str, int] = field(default_factory=dict)  # run id → group number
    _next_group: int = 0
    entries: dict[str, int] = field(default_factory=dict)  # tree → runs that ever entered
    # Runs whose agent is done but whose completion is still being recorded (in a worker
    # thread): they write nothing more, but their group's batch must wait for them.
    settling: dict[str, set[str]] = field(default_factory=dict)
    # Runs whose agent exited but whose after-snapshot is still to come: still in the tree
    # (a run entering now overlaps them: its files would show in that snapshot), but no
    # longer writing, so they do not keep the tree from being idle.
    finishing: dict[str, set[str]] = field(default_factory=dict)
    # Runs enter and leave on the event loop; their output is saved in a worker thread
    # (engine/output.py), which asks `unsettled` meanwhile.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def epoch(self, tree: str) -> int:
        """How many runs have entered this tree: unchanged means none came in since."""
        with self._lock:
            return self.entries.get(tree, 0)

    def enter(self, tree: str, run_id: str) -> None:
        with self._lock:
            self._enter(tree, run_id)

    def _enter(self, tree: str, run_id: str) -> None:
        self.entries[tree] = self.entries.get(tree, 0) + 1
        running = self.active.setdefault(tree, set())
        if running:
            self.overlapped.update(running | {run_id})
            merged = {self.groups[r] for r in running if r in self.groups}
            group = min(merged) if merged else self._new_group()
            for other, number in list(self.groups.items()):
                if number in merged:
                    self.groups[other] = group
        else:
            group = self._new_group()
        self.groups[run_id] = group
        running.add(run_id)

    def _new_group(self) -> int:
        self._next_group += 1
        return self._next_group

    def leave(self, tree: str, run_id: str, *, settling: bool = False) -> bool:
        """Forget the run; True when another run shared its tree while it ran.

        `settling`: its completion is not recorded yet; `settled` says when it is.
        """
        with self._lock:
            self.active.get(tree, set()).discard(run_id)
            self.finishing.get(tree, set()).discard(run_id)
            if settling:
                self.settling.setdefault(tree, set()).add(run_id)
            was_shared = run_id in self.overlapped
            self.overlapped.discard(run_id)
            return was_shared

    def settled(self, tree: str, run_id: str) -> None:
        with self._lock:
            self.settling.get(tree, set()).discard(run_id)

    def finish(self, tree: str, run_id: str) -> None:
        """Its agent exited: it writes nothing more, but stays until its after-snapshot."""
        with self._lock:
            self.finishing.setdefault(tree, set()).add(run_id)

    def idle(self, tree: str) -> bool:
        """No run is writing in the tree (those finishing have stopped)."""
        with self._lock:
            return not self.active.get(tree, set()) - self.finishing.get(tree, set())

    def unsettled(self, tree: str) -> set[str]:
        """Finished runs whose group still has a run active in this tree: not yet to save."""
        with self._lock:
            return self._unsettled(tree)

    def _unsettled(self, tree: str) -> set[str]:
        present = self.active.get(tree, set()) | self.settling.get(tree, set())
        open_groups = {self.groups[r] for r in present if r in self.groups}
        closed = [r for r, g in self.groups.items() if g not in open_groups]
        for run_id in closed:
            if not any(run_id in runs for runs in (*self.active.values(), *self.settling.values())):
                del self.groups[run_id]
        return {r for r, g in self.groups.items() if g in open_groups}


def tree_key(root: Path, workdir: Path) -> str:
    return ROOT_TREE if workdir == root else workdir.relative_to(root).as_posix()


def tree_path(root: Path, key: str) -> Path:
    return root if key == ROOT_TREE else root / key
