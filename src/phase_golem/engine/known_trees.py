"""The last exact snapshot of each working tree, reused while it is provably still exact.

A run is snapshotted before and after its agent (DESIGN §6). Taking a snapshot costs git
processes, and most of them say what we already know: the after-snapshot of one run is
the tree the next run starts from, unless something changed it in between. It is reused
as a before-snapshot (and for a new visit's idempotency key) only when both hold:

- no run of ours was in that tree since it was taken, and none was when it was taken
  (the tree tracker's entry count for the tree is unchanged, and the tree is idle);
- git's own state is what it was (`GitState`: the index file is the same file, HEAD the
  same commit), read from git's files without running git — a commit, an add, a reset
  or a checkout made by anyone shows there. Our own commits move HEAD and rewrite the
  index but leave every file's content as it was, so they are applied to the known tree
  (`committed`) instead of forgetting it.

What neither proves is a plain edit of a file by something other than a run while no
run is in the tree (a person editing during `run`); such an edit is then found by the
next run's after-snapshot and counted as that run's, exactly as an edit made while a run
works is today. A fresh snapshot is one `git status`, plus `git ls-files` only when the
index changed since it was last listed.

Fresh snapshots of one tree are taken one at a time, and a look asked for while another
is under way shares the next one to start after it was asked for: runs that finish
together cost one `git status`, and each still sees the tree as it was after it asked.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path

from phase_golem.engine.trees import TreeTracker
from phase_golem.workspace.git import GitState, git_state, tree_status
from phase_golem.workspace.snapshot import WorkspaceSnapshot, index_entries, snapshot_from


@dataclass(frozen=True, slots=True)
class KnownTree:
    snapshot: WorkspaceSnapshot
    git: GitState
    entries: dict[str, str] | None  # the index listing it came from (None: list again)
    epoch: int  # the tracker's entry count for the tree when it was taken
    reusable: bool  # no run of ours was in the tree while it was taken


@dataclass(slots=True)
class _Looks:
    """One tree's fresh snapshots: how many began, the last that ended, one under way."""

    started: int = 0
    finished: int = 0
    last: WorkspaceSnapshot | None = None
    busy: bool = False


class KnownTrees:
    """Per working tree, the last snapshot taken and what proves it still holds."""

    def __init__(self, exclude: tuple[str, ...]) -> None:
        self._exclude = exclude
        self._known: dict[Path, KnownTree] = {}
        self._lock = threading.Lock()  # runs prepare and complete in worker threads
        self._looks: dict[Path, _Looks] = {}  # fresh snapshots under way, per tree
        self._looking = threading.Condition(threading.Lock())
        self.taken = 0  # fresh snapshots (git run)
        self.reused = 0  # snapshots served from what was known

    def still_exact(
        self, workdir: Path, tracker: TreeTracker, tree: str
    ) -> WorkspaceSnapshot | None:
        """The known snapshot when it provably still holds (no git run); else None."""
        with self._lock:
            known = self._known.get(workdir)
        if (
            known is not None
            and known.reusable
            and tracker.idle(tree)
            and tracker.epoch(tree) == known.epoch
            and known.git.head is not None
            and git_state(workdir) == known.git
        ):
            with self._lock:
                self.reused += 1
            return known.snapshot
        return None

    def current(self, workdir: Path, tracker: TreeTracker, tree: str) -> WorkspaceSnapshot:
        """The tree as it is now: the known snapshot when it provably still holds."""
        known = self.still_exact(workdir, tracker, tree)
        return known if known is not None else self.take(workdir, tracker, tree)

    def take(self, workdir: Path, tracker: TreeTracker, tree: str) -> WorkspaceSnapshot:
        """A fresh snapshot, begun after this call: the caller's own, or one another thread
        began meanwhile (after this call) and shares."""
        with self._looking:
            looks = self._looks.setdefault(workdir, _Looks())
            asked = looks.started  # any look numbered above this began after the ask
            while True:
                if looks.finished > asked and looks.last is not None:
                    return looks.last
                if not looks.busy:
                    break
                self._looking.wait()
            looks.busy = True
            looks.started += 1
            number = looks.started
        snapshot: WorkspaceSnapshot | None = None
        try:
            snapshot = self._take(workdir, tracker, tree)
            return snapshot
        finally:
            with self._looking:
                looks.busy = False
                if snapshot is not None:
                    looks.finished, looks.last = number, snapshot
                self._looking.notify_all()

    def _take(self, workdir: Path, tracker: TreeTracker, tree: str) -> WorkspaceSnapshot:
        """A fresh snapshot (git status; the index listed again only if it changed)."""
        epoch, idle = tracker.epoch(tree), tracker.idle(tree)
        state = git_state(workdir)  # read before git looks: a change after it shows later
        with self._lock:
            known = self._known.get(workdir)
        head, changed = tree_status(workdir)
        entries = None
        if known is not None and known.entries is not None and state.index is not None:
            entries = known.entries if known.git.index == state.index else None
        if entries is None:
            entries = index_entries(workdir)
        snapshot = snapshot_from(workdir, head, changed, entries, exclude=self._exclude)
        reusable = idle and tracker.epoch(tree) == epoch
        with self._lock:
            self.taken += 1
            self._known[workdir] = KnownTree(
                snapshot, GitState(state.index, head), entries, epoch, reusable
            )
        return snapshot

    def committed(self, workdir: Path, commit: str, blobs: dict[str, str | None] | None) -> None:
        """Our commit moved HEAD and rewrote the index; every file is as it was.

        `blobs` is what the commit gave its paths (`git diff-tree`): the index now holds
        exactly those for them, so the listing stays known; without them it is listed again.
        """
        with self._lock:
            known = self._known.get(workdir)
            if known is None:
                return
            moved = replace(known.snapshot, head=commit)
            state = git_state(workdir)
            entries = None
            if known.entries is not None and blobs is not None:
                entries = dict(known.entries)
                for path, blob in blobs.items():
                    if blob is None:
                        entries.pop(path, None)
                    else:
                        entries[path] = blob
            self._known[workdir] = replace(
                known,
                snapshot=moved,
                git=GitState(state.index, commit if state.head == commit else None),
                entries=entries,
            )

    def forget(self, workdir: Path) -> None:
        with self._lock:
            self._known.pop(workdir, None)
