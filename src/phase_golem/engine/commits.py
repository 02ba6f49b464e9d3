"""Git commits of run output (DESIGN §8): what is owed, what is left over, and saving it.

The complete transaction records each finished run's change (its touched paths) as
*pending* in the store, so a crash between the store commit and the git commit loses
nothing: the next start makes the commits the store says are owed. A tree's pending
changes are saved as a batch once no run is active in it; destructive, triage and
subphase results commit their own paths at once. Paths of runs that did not succeed
become *leftovers*: kept in the tree, recorded, shown by `show`, and committed by a later
successful attempt of the same item and phase — never under another item's message.
The records are kept by engine/owed.py; this module makes the commits they call for.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from phase_golem.domain.commits import (
    ORCHESTRATOR_PATHS,
    RunChange,
    batch_commit_message,
    co_writers,
    halt_commit_message,
    plan_batch,
)
from phase_golem.domain.events import EventKind
from phase_golem.domain.items import parse_timestamp

# Re-exported: `show`'s read-only view moved to engine/git_view.py (no git, light to import).
from phase_golem.engine.git_view import ROOT_TREE as ROOT_TREE  # noqa: PLC0414
from phase_golem.engine.git_view import git_view as git_view  # noqa: PLC0414
from phase_golem.engine.git_view import leftovers_of as leftovers_of  # noqa: PLC0414
from phase_golem.engine.owed import (
    change_of,
    inherited,
    leftovers_now,
    owed_entries,
    pending_trees,
    recorded_owners,
    remember_leftovers,
    save_leftovers,
    tree_entries,
    update_owed,
    with_inherited,
)
from phase_golem.engine.receipts import note_commit
from phase_golem.engine.trees import tree_path
from phase_golem.store import Store, Transaction
from phase_golem.workspace.git import (
    COMMIT_PARENTS,
    commit_paths,
    dirty_paths,
    git_state,
    is_ancestor,
    refresh_index,
    run_git,
)
from phase_golem.workspace.snapshot import file_blob_id

# Called with a tree once a commit was made there and before it is recorded: the commit
# goes to the shared remote first (DESIGN §14), so no worker sees the run's work as saved
# while the remote lacks it. A failure leaves the work owed, to be published again.
Publish = Callable[[str], None]


def _no_publish(_tree: str) -> None:
    return None


# ---- committing ----------------------------------------------------------------------------
# The blobs our last few commits gave their paths (None: deleted), so what a commit did
# to the index is known without listing it again (engine/known_trees.py).
COMMITTED_BLOBS: dict[str, dict[str, str | None]] = {}
_REMEMBERED_COMMITS = 8
# Per commit of ours: the blobs our unbroken chain of commits up to it gave its paths, so
# a path owed twice (two runs saw it change) is known to be at HEAD already, without git.
_AT_COMMIT: dict[str, dict[str, str | None]] = {}
_KEPT_PATHS = 10_000


def committed_paths(workdir: Path, commit: str) -> list[str]:
    """The paths a commit changed (one `git diff-tree`, which also names their blobs)."""
    listed = run_git(workdir, "diff-tree", "--no-commit-id", "-r", "-z", "--root", commit).stdout
    parts = listed.split("\0")
    blobs: dict[str, str | None] = {}
    for meta, path in zip(parts[0::2], parts[1::2], strict=False):
        fields = meta.lstrip(":").split()
        if len(fields) >= 5 and path:
            blobs[path] = None if fields[4] == "D" else fields[3]
    COMMITTED_BLOBS[commit] = blobs
    while len(COMMITTED_BLOBS) > _REMEMBERED_COMMITS:
        del COMMITTED_BLOBS[next(iter(COMMITTED_BLOBS))]
    parent = COMMIT_PARENTS.get(commit)
    earlier = _AT_COMMIT.get(parent) if parent is not None else None
    fits = earlier is not None and len(earlier) < _KEPT_PATHS
    _AT_COMMIT[commit] = {**earlier, **blobs} if earlier is not None and fits else dict(blobs)
    while len(_AT_COMMIT) > _REMEMBERED_COMMITS:
        del _AT_COMMIT[next(iter(_AT_COMMIT))]
    return sorted(blobs)


def _rewritten(
    tx: Transaction,
    workdir: Path,
    leftovers: Mapping[str, Mapping[str, Any]],
    change: RunChange,
) -> list[str]:
    """Leftovers that runs of several items could have written (they overlapped and all
    died) and that this success's agent wrote again while it ran: same bytes, so its
    difference cannot show them, but the file's modification time falls in its run."""
    mine = [change.item_id, change.phase]
    candidates = [
        path
        for path, owner in leftovers.items()
        if mine in owner.get("owners", []) and owner.get("owners") != [mine]
    ]
    run = tx.get_run(change.run_id) if candidates else None
    if run is None or not run.started_at or not run.ended_at:
        return []
    start = parse_timestamp(run.started_at).timestamp()
    end = parse_timestamp(run.ended_at).timestamp()
    found = []
    for path in candidates:
        try:
            written = (workdir / path).lstat().st_mtime
        except OSError:
            continue
        if start <= written <= end:
            found.append(path)
    return found


def _taking(
    tx: Transaction, workdir: Path, leftovers: Mapping[str, Mapping[str, Any]], change: RunChange
) -> RunChange:
    """A success with the leftovers it takes: its visit's own, and co-owned ones it wrote
    again (its own when it was alone in the tree, shared with its company otherwise)."""
    change = with_inherited(change, inherited(leftovers, change))
    again = _rewritten(tx, workdir, leftovers, change)
    if not again:
        return change
    touched = tuple(sorted({*change.touched, *again}))
    own = change.own if change.overlapped else tuple(sorted({*change.own, *again}))
    return replace(change, touched=touched, own=own)


def _record_commit(
    tx: Transaction,
    tree: str,
    commit: str,
    message: str,
    paths: Sequence[str],
    runs: Sequence[RunChange],
    overlapping: Sequence[RunChange] = (),
) -> None:
    """One ledger event per run in a commit, naming the run's part of it; and one for
    each visit that could have written some of it without succeeding, so `show` of
    every item involved lists the commit as shared."""
    saved = set(paths)
    leftovers = leftovers_now(tx)
    recorded = leftovers.get(tree, {})
    taken = {p: [tuple(o) for o in owner.get("owners", [])] for p, owner in recorded.items()}
    taken = {p: owners for p, owners in taken.items() if p in saved}
    leftovers[tree] = {p: o for p, o in recorded.items() if p not in saved}
    save_leftovers(tx, leftovers)
    written_by_others = {p for c in overlapping for p in c.touched} & saved
    for change in runs:
        # A run's part: what it touched, less what is certainly another run's own.
        others = {p for c in runs if c.run_id != change.run_id for p in c.own}
        mine = (set(change.touched) & saved) - others or saved
        shared = (mine - set(change.own)) | (mine & written_by_others)
        _commit_event(tx, change.item_id, change.run_id, tree, commit, message, mine, shared)
    labels = {(c.item_id, c.phase) for c in runs}
    for failed in overlapping:
        part = set(failed.touched) & saved
        _commit_event(tx, failed.item_id, failed.run_id, tree, commit, message, part, part)
        labels.add((failed.item_id, failed.phase))
    certain = {p for c in runs for p in c.own}
    by_owner: dict[tuple[str, str], set[str]] = {}
    for path, owners in taken.items():
        if path in certain:
            continue
        for owner in owners:
            if (owner[0], owner[1]) not in labels:
                by_owner.setdefault((owner[0], owner[1]), set()).add(path)
    for (item_id, _phase), part in sorted(by_owner.items()):
        _commit_event(tx, item_id, None, tree, commit, message, part, part)
    note_commit(tx, [change.run_id for change in runs], commit)


def _commit_event(
    tx: Transaction,
    item_id: str,
    run_id: str | None,
    tree: str,
    commit: str,
    message: str,
    paths: Collection[str],
    shared: Collection[str],
) -> None:
    tx.append_event(
        EventKind.GIT_COMMITTED,
        item_id=item_id,
        run_id=run_id,
        data={
            "tree": tree,
            "commit": commit,
            "message": message,
            "paths": sorted(paths),
            "shared_with_overlapping_runs": sorted(shared),
        },
    )


def _commit(
    store: Store, workdir: Path, tree: str, paths: list[str], message: str, run_ids: list[str]
) -> str | None:
    """Commit, telling the store the commit's id before HEAD moves (see _settle_intended)."""

    def remember(commit: str) -> None:
        with store.transaction() as tx:
            update_owed(tx, tree, run_ids, intended=commit)

    if _already_at_head(workdir, paths):
        return None  # what git would find after building the tree, known without it
    return commit_paths(workdir, paths, message, before_publish=remember)


def _already_at_head(workdir: Path, paths: Sequence[str]) -> bool:
    """Every path is exactly as our commits up to HEAD left it (two runs that saw the same
    file both owe it): a commit would change nothing. Told from the blobs those commits
    gave their paths, without git; bytes git stores otherwise (a filter) never match
    the file's own blob id, so then git looks as before."""
    head = git_state(workdir).head if paths else None
    blobs = _AT_COMMIT.get(head) if head is not None else None
    if not blobs:
        return False
    return all(p in blobs and blobs[p] == file_blob_id(workdir / p) for p in paths)


def commit_now(
    store: Store, root: Path, tree: str, change: RunChange, publish: Publish = _no_publish
) -> str | None:
    """Commit an immediate result's own paths (and its visit's leftovers) at once."""
    workdir = tree_path(root, tree)
    with store.reader() as tx:
        owed = any(e["run_id"] == change.run_id for e in owed_entries(tx) if e["tree"] == tree)
        recorded = leftovers_now(tx).get(tree, {})
        change = _taking(tx, workdir, recorded, change)
    if not change.own and not owed:
        return None  # nothing to commit and nothing on record: no git, no transaction
    others = co_writers(change.shared, recorded_owners(recorded), (), [change])
    message = batch_commit_message([(change.item_id, change.phase, change.summary)], others)
    commit = _commit(store, workdir, tree, list(change.own), message, [change.run_id])
    if commit:
        publish(tree)
    saved = committed_paths(workdir, commit) if commit else []
    with store.transaction() as tx:
        if commit:
            _record_commit(tx, tree, commit, message, saved, [change])
        update_owed(tx, tree, [change.run_id], drop=not change.shared, own_committed=True)
    return commit


def _settle_intended(
    store: Store, root: Path, tree: str, owed: list[dict[str, Any]], publish: Publish
) -> list[str]:
    """Commits made just before a crash cut off their ledger entries: recognise, record them
    (`owed`: the tree's pending entries, as just read)."""
    workdir = tree_path(root, tree)
    found: dict[str, list[dict[str, Any]]] = {}
    for entry in owed:
        if entry.get("intended"):
            found.setdefault(entry["intended"], []).append(entry)
    settled = []
    for commit, entries in found.items():
        if not is_ancestor(workdir, commit):
            continue  # it never reached HEAD: the commit is made again from scratch
        message = run_git(workdir, "log", "-1", "--format=%B", commit).stdout.strip()
        saved = committed_paths(workdir, commit)
        refresh_index(workdir, saved)
        publish(tree)
        changes = [change_of(e) for e in entries]
        with store.transaction() as tx:
            done = [c for c in changes if c.succeeded]
            lost = [c for c in changes if not c.succeeded and set(c.touched) & set(saved)]
            _record_commit(tx, tree, commit, message, saved, done, lost)
            for entry, change in zip(entries, changes, strict=True):
                immediate_own = entry["immediate"] and not entry["own_committed"]
                finished = not immediate_own or not change.shared
                update_owed(tx, tree, [change.run_id], drop=finished, own_committed=immediate_own)
        settled.append(commit)
    return settled


def flush_tree(
    store: Store,
    root: Path,
    tree: str,
    hold: Collection[str] | Callable[[], Collection[str]] = (),
    publish: Publish = _no_publish,
) -> list[str]:
    """Save what a tree owes: owed immediate commits, then the batch of the runs that are
    settled (all but those in `hold`, whose overlapping company is still at work).

    `hold` may be asked for only once the owed entries are read (a callable), so a run that
    finished meanwhile in an open group is held, never committed without its company."""
    workdir = tree_path(root, tree)
    owed = tree_entries(store, root, tree)
    if not owed:
        return []  # nothing on record for this tree: one read, no git
    commits = _settle_intended(store, root, tree, owed, publish)
    for entry in tree_entries(store, root, tree):
        if entry["immediate"] and entry["succeeded"] and not entry["own_committed"]:
            commit = commit_now(store, root, tree, change_of(entry), publish)  # since a crash
            if commit:
                commits.append(commit)
    owed = tree_entries(store, root, tree)
    held = set(hold() if callable(hold) else hold)
    entries = [e for e in owed if e["run_id"] not in held]
    if not entries:
        return commits
    with store.reader() as tx:
        leftovers = leftovers_now(tx).get(tree, {})
        group = [
            _taking(tx, workdir, leftovers, c) if c.succeeded and not c.immediate else c
            for c in map(change_of, entries)
        ]
    plan = plan_batch(group)
    unsure = plan.shared_paths
    others = co_writers(unsure, recorded_owners(leftovers), plan.overlapping, plan.entries)
    message = batch_commit_message([(c.item_id, c.phase, c.summary) for c in plan.entries], others)
    run_ids = [c.run_id for c in group]
    # Leftovers are known from the plan, so they are recorded before git is touched.
    remember_leftovers(store, tree, workdir, group, plan.paths)
    commit = (
        _commit(store, workdir, tree, list(plan.paths), message, run_ids)
        if plan.paths and plan.entries
        else None
    )
    if commit:
        publish(tree)
    with store.transaction() as tx:
        if commit:
            saved = committed_paths(workdir, commit)
            _record_commit(tx, tree, commit, message, saved, plan.entries, plan.overlapping)
        update_owed(tx, tree, run_ids, drop=True)
    if commit:
        commits.append(commit)
    return commits


def halt_commit(store: Store, root: Path, reason: str) -> str | None:
    """Save what the orchestrator itself wrote (the worklog) with Phase Golem's halt message."""
    message = halt_commit_message(reason)
    dirty = [p for p in dirty_paths(root) if p.startswith(ORCHESTRATOR_PATHS)]
    commit = commit_paths(root, dirty, message) if dirty else None
    if commit:
        with store.transaction() as tx:
            tx.append_event(
                EventKind.GIT_COMMITTED,
                data={"tree": ROOT_TREE, "commit": commit, "message": message, "paths": dirty},
            )
    return commit


def unaccounted_changes(store: Store, root: Path, accounted: Iterable[str] = ()) -> list[str]:
    """Dirty paths that no run and no leftover record explains: the user's own edits."""
    with store.reader() as tx:
        leftovers = leftovers_now(tx).get(ROOT_TREE, {})
    explained = set(accounted)
    found = []
    for path in dirty_paths(root):
        if path.startswith(ORCHESTRATOR_PATHS) or path in explained:
            continue
        owner = leftovers.get(path)
        if owner is not None and owner.get("blob") == file_blob_id(root / path):
            continue
        found.append(path)
    return found


def save_all(
    store: Store, root: Path, hold: Collection[str] = (), publish: Publish = _no_publish
) -> list[str]:
    """Every owed commit of every tree (at start, after a crash, and on halt); the runs
    in `hold` wait (they overlapped an adopted agent that is still at work)."""
    commits: list[str] = []
    for tree in pending_trees(store, root):
        if tree_path(root, tree).is_dir():
            commits += flush_tree(store, root, tree, hold, publish)
    return commits
