"""Where a run works and what it changed there (DESIGN §6 snapshots, §8 git and worktrees).

Before its agent starts a run gets its working tree (the project root, or the item's
worktree), a staleness verdict for destructive phases, and a snapshot; after the agent
exits a second snapshot gives the paths it touched. Snapshot manifests are kept in the
run's directory so recovery can tell what a run that died had touched.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from phase_golem.domain.commits import (
    ORCHESTRATOR_PATHS,
    RunChange,
    split_touched,
    without_orchestrator_paths,
)
from phase_golem.domain.items import Item
from phase_golem.domain.pipelines import Isolation, PhaseConfig, Settings, Staleness
from phase_golem.domain.runs import Run, RunKind
from phase_golem.engine.files import CHANGES_DIR, change_folder
from phase_golem.engine.trees import tree_key
from phase_golem.safe_files import (
    IMPORT_LIMIT,
    create_private,
    ensure_run_directory,
    read_bounded,
)
from phase_golem.workspace.git import GitError, dirty_paths, is_ancestor
from phase_golem.workspace.remote import sync_item_branch
from phase_golem.workspace.snapshot import WorkspaceSnapshot, take_snapshot, touched_paths
from phase_golem.workspace.worktrees import ensure_worktree

log = logging.getLogger(__name__)
STATE_DIR = ".phase-golem"
BEFORE_MANIFEST = "snapshot-before.json"


@dataclass(frozen=True, slots=True)
class Workspace:
    workdir: Path
    tree: str
    snapshot: WorkspaceSnapshot
    stale: str | None = None  # why the phase must not run, when it must not
    branch: str | None = None
    freshness: str = "fresh"  # fresh | stale (ran anyway: ignore or warn) | unknown


def run_workdir(root: Path, settings: Settings, item: Item, run: Run) -> Path:
    if settings.execution.isolation is Isolation.WORKTREE and run.kind is RunKind.PHASE:
        return root / STATE_DIR / "worktrees" / item.id
    return root


# Our own state and worklog are not part of the tree as agents see it.
SNAPSHOT_EXCLUDES = (STATE_DIR, *ORCHESTRATOR_PATHS)


def snapshot_of(workdir: Path) -> WorkspaceSnapshot:
    """The tree as agents see it, looked at afresh."""
    return take_snapshot(workdir, exclude=SNAPSHOT_EXCLUDES)


def _staleness(workdir: Path, item: Item, phase: PhaseConfig | None) -> tuple[str | None, str]:
    """(reason to block, or None; what was found) before a destructive phase."""
    anchor = item.last_phase_commit
    if phase is None or not phase.is_destructive or anchor is None:
        return None, "fresh"
    try:
        verdict = is_ancestor(workdir, anchor)
    except GitError as exc:
        verdict, problem = None, str(exc)
    else:
        problem = f"commit {anchor} is unknown"
    if verdict is None:
        return f"Staleness check failed for {item.id}: {problem}", "unknown"
    if verdict:
        return None, "fresh"
    reason = f"Stale: prior phase based on commit {anchor} no longer in history"
    if phase.staleness is Staleness.BLOCK:
        return reason, "stale"
    if phase.staleness is Staleness.WARN:
        log.warning("%s (%s): %s", item.id, phase.name, reason)
    return None, "stale"


def prepare_workspace(
    root: Path,
    settings: Settings,
    item: Item,
    run: Run,
    phase: PhaseConfig | None,
    base: str,
    snapshots: Callable[[Path], WorkspaceSnapshot] = snapshot_of,
) -> Workspace:
    """The run's tree (a worktree is made on the item's first phase) and its before-snapshot."""
    workdir = run_workdir(root, settings, item, run)
    branch = None
    remote = settings.execution.remote
    if workdir != root and remote is not None:  # what other workers did to it comes first
        branch = sync_item_branch(root, workdir, remote, item.id, base)
    elif workdir != root:
        branch = ensure_worktree(root, workdir, item.id, base)
    stale, freshness = _staleness(workdir, item, phase)
    snapshot = snapshots(workdir)
    return Workspace(workdir, tree_key(root, workdir), snapshot, stale, branch, freshness)


def save_manifest(run_dir: Path, snapshot: WorkspaceSnapshot) -> None:
    ensure_run_directory(run_dir.parent, run_dir.name)
    path = run_dir / BEFORE_MANIFEST
    tmp = path.with_name(path.name + ".tmp")
    with os.fdopen(create_private(tmp), "w", encoding="utf-8") as handle:
        json.dump({"head": snapshot.head, "files": dict(snapshot.files)}, handle)
    os.replace(tmp, path)


def load_manifest(run_dir: Path) -> WorkspaceSnapshot | None:
    try:
        raw = read_bounded(run_dir / BEFORE_MANIFEST, IMPORT_LIMIT, follow_symlinks=False)
        data = json.loads(raw)
        return WorkspaceSnapshot(data.get("head"), dict(data.get("files") or {}))
    except (OSError, ValueError, AttributeError, RecursionError):
        return None


@dataclass(frozen=True, slots=True)
class WorkspaceChange:
    """What the run changed in its tree, handed to the complete transaction."""

    tree: str
    snapshot_after: str
    touched: tuple[str, ...]
    own: tuple[str, ...]
    overlapped: bool = False


class TreeSnapshots:
    """Snapshots taken once per tree for a batch of runs measured at the same moment
    (recovery of many runs at start): one `git status` per tree, not one per run."""

    def __init__(self) -> None:
        self._taken: dict[Path, WorkspaceSnapshot] = {}

    def __call__(self, workdir: Path) -> WorkspaceSnapshot:
        if workdir not in self._taken:
            self._taken[workdir] = snapshot_of(workdir)
        return self._taken[workdir]


def measure_change(
    root: Path,
    workdir: Path,
    item: Item,
    before: WorkspaceSnapshot,
    overlapped: bool,
    snapshots: Callable[[Path], WorkspaceSnapshot] = snapshot_of,
) -> WorkspaceChange:
    after = snapshots(workdir)
    touched = touched_paths(before, after)
    if workdir != root:
        # An item's own worktree: whatever is uncommitted there is that item's work, also
        # what an attempt killed in this clone left and another clone's worker recovered
        # without seeing it (a retry that writes the same bytes changes nothing).
        touched = sorted({*touched, *dirty_paths(workdir)})
    touched = without_orchestrator_paths(touched)
    own_folder = change_folder(workdir, item, create=False).relative_to(workdir).as_posix()
    own_prefixes = [own_folder] if own_folder.startswith(CHANGES_DIR) else []
    own = split_touched(touched, own_prefixes, overlapped)
    return WorkspaceChange(tree_key(root, workdir), after.id, tuple(touched), own, overlapped)


def run_change(
    run: Run,
    item: Item,
    change: WorkspaceChange,
    *,
    succeeded: bool,
    immediate: bool = False,
    summary: str = "",
) -> RunChange:
    return RunChange(
        run_id=run.id,
        item_id=item.id,
        phase=run.phase,
        touched=change.touched,
        own=change.own,
        succeeded=succeeded,
        immediate=immediate,
        summary=summary,
        overlapped=change.overlapped,
    )


def change_since_start(
    root: Path,
    settings: Settings,
    item: Item,
    run: Run,
    run_dir: Path,
    *,
    overlapped: bool,
    snapshots: Callable[[Path], WorkspaceSnapshot] = snapshot_of,
) -> WorkspaceChange | None:
    """What a run touched from its start until now (for runs another process started)."""
    before = load_manifest(run_dir)
    if before is None:
        return None
    workdir = run_workdir(root, settings, item, run)
    if not workdir.is_dir():
        return None
    return measure_change(root, workdir, item, before, overlapped, snapshots)
