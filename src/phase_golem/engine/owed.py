"""What the store keeps of run output not yet in git (DESIGN §8).

Owed changes (the `pending_commits` table): one per finished run, until its commit is
made. Leftovers (the `leftovers` table): per tree, {path: {"owners": [[item, phase], …],
"runs": [...], "blob": id}} — what runs that did not succeed left, kept for a later
successful attempt of the same item and phase to commit. With a store that workers in
other clones share, a clone makes only its own owed commits (DESIGN §14).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from phase_golem.domain.commits import RunChange
from phase_golem.domain.events import EventKind
from phase_golem.engine.git_view import ROOT_TREE, leftovers_by_tree, save_leftovers_by_tree
from phase_golem.store import PendingCommit, Store, Transaction
from phase_golem.workspace.snapshot import file_blob_id


def owed_entries(tx: Transaction) -> list[dict[str, Any]]:
    return [asdict(entry) for entry in tx.pending_commits()]


def save_owed(tx: Transaction, entries: Iterable[Mapping[str, Any]]) -> None:
    tx.save_pending_commits([_pending_entry(e) for e in entries])


def _pending_entry(entry: Mapping[str, Any]) -> PendingCommit:
    change = change_of(entry)
    return PendingCommit(
        run_id=change.run_id,
        item_id=change.item_id,
        tree=str(entry["tree"]),
        phase=change.phase,
        touched=change.touched,
        own=change.own,
        succeeded=change.succeeded,
        immediate=change.immediate,
        summary=change.summary,
        overlapped=change.overlapped,
        own_committed=bool(entry.get("own_committed")),
        intended=entry.get("intended"),
    )


def leftovers_now(tx: Transaction) -> dict[str, dict[str, dict[str, Any]]]:
    return leftovers_by_tree(tx)


def save_leftovers(tx: Transaction, leftovers: Mapping[str, Mapping[str, Any]]) -> None:
    save_leftovers_by_tree(tx, {k: v for k, v in leftovers.items() if v})


def record_change(tx: Transaction, tree: str, change: RunChange) -> None:
    """Inside the complete transaction: the run's change, owed to git until committed.

    A success is owed even when its own difference is empty: it may still take the
    leftovers of an earlier attempt that wrote the same bytes.
    """
    if change.touched or (change.succeeded and inherited(leftovers_now(tx).get(tree, {}), change)):
        entry = {"tree": tree, "own_committed": False, "intended": None, **asdict(change)}
        save_owed(tx, [*owed_entries(tx), entry])
    tx.append_event(
        EventKind.RUN_WORKSPACE,
        item_id=change.item_id,
        run_id=change.run_id,
        data={
            "tree": tree,
            "touched": list(change.touched),
            "shared": list(change.shared),
            "succeeded": change.succeeded,
        },
    )


def change_of(entry: Mapping[str, Any]) -> RunChange:
    return RunChange(
        run_id=entry["run_id"],
        item_id=entry["item_id"],
        phase=entry["phase"],
        touched=tuple(entry["touched"]),
        own=tuple(entry["own"]),
        succeeded=bool(entry["succeeded"]),
        immediate=bool(entry["immediate"]),
        summary=entry.get("summary") or "",
        overlapped=bool(entry.get("overlapped", tuple(entry["own"]) != tuple(entry["touched"]))),
    )


def is_ours(root: Path, entry: Mapping[str, Any]) -> bool:
    """Made by a run of this clone: with a store that workers in other clones share, their
    owed commits are theirs to make (a run's directory is in the clone that started it)."""
    return (root / ".phase-golem" / "runs" / str(entry["run_id"])).is_dir()


def owed_by_other_clones(tx: Transaction, root: Path) -> set[str]:
    """Items whose last run's work another clone has yet to commit and push: a worker that
    started their next phase now would start it without that work (DESIGN §14)."""
    return {
        entry.item_id
        for entry in tx.pending_commits()
        if entry.tree != ROOT_TREE and entry.succeeded and not is_ours(root, asdict(entry))
    }


def pending_trees(store: Store, root: Path) -> list[str]:
    with store.reader() as tx:
        return sorted({entry["tree"] for entry in owed_entries(tx) if is_ours(root, entry)})


def tree_entries(store: Store, root: Path, tree: str) -> list[dict[str, Any]]:
    with store.reader() as tx:
        return [e for e in owed_entries(tx) if e["tree"] == tree and is_ours(root, e)]


def update_owed(
    tx: Transaction,
    tree: str,
    runs: Iterable[str],
    *,
    drop: bool = False,
    own_committed: bool = False,
    intended: str | None = None,
) -> None:
    chosen = set(runs)
    kept = []
    for entry in owed_entries(tx):
        if entry["tree"] == tree and entry["run_id"] in chosen:
            if drop:
                continue
            marks = {"intended": intended} | ({"own_committed": True} if own_committed else {})
            kept.append({**entry, **marks})
        else:
            kept.append(entry)
    save_owed(tx, kept)


def inherited(leftovers: Mapping[str, Mapping[str, Any]], change: RunChange) -> list[str]:
    """Leftovers of earlier attempts of this item and phase alone: a success takes them."""
    return _visit_paths(leftovers, change.item_id, change.phase)


def _visit_paths(leftovers: Mapping[str, Mapping[str, Any]], item_id: str, phase: str) -> list[str]:
    mine = [[item_id, phase]]
    return [path for path, owner in leftovers.items() if owner.get("owners") == mine]


def visit_leftovers(tx: Transaction, tree: str, item_id: str, phase: str) -> list[str]:
    """What earlier attempts of a visit left in `tree`: its success will commit them, so
    its receipt lists them too (a retry that wrote the same bytes changed nothing)."""
    return _visit_paths(leftovers_now(tx).get(tree, {}), item_id, phase)


def recorded_owners(
    leftovers: Mapping[str, Mapping[str, Any]],
) -> dict[str, list[list[str]]]:
    return {path: list(owner.get("owners", [])) for path, owner in leftovers.items()}


def with_inherited(change: RunChange, inherited: Sequence[str]) -> RunChange:
    if not inherited:
        return change
    return replace(
        change,
        touched=tuple(sorted({*change.touched, *inherited})),
        own=tuple(sorted({*change.own, *inherited})),
    )


def remember_leftovers(
    store: Store, tree: str, workdir: Path, group: Sequence[RunChange], committing: Sequence[str]
) -> None:
    taken = set(committing)
    if not any(not c.succeeded and set(c.touched) - taken for c in group):
        return  # nothing to remember: no transaction
    with store.transaction() as tx:
        remember_leftovers_in(tx, tree, workdir, group, taken)


def remember_leftovers_in(
    tx: Transaction,
    tree: str,
    workdir: Path,
    group: Sequence[RunChange],
    taken: Collection[str] = (),
) -> None:
    """Inside the caller's transaction: what the failed runs of `group` touched and is not
    being committed (`taken`) stays in the tree as their leftover (DESIGN §8)."""
    leftovers = leftovers_now(tx)
    kept = dict(leftovers.get(tree, {}))
    for change in group:
        if change.succeeded:
            continue
        for path in change.touched:
            if path in taken:
                continue
            owner = dict(kept.get(path) or {})
            owners = {tuple(o) for o in owner.get("owners", [])}
            owners.add((change.item_id, change.phase))
            owner["owners"] = sorted([list(o) for o in owners])
            owner["runs"] = sorted({*owner.get("runs", []), change.run_id})
            owner["blob"] = file_blob_id(workdir / path)
            kept[path] = owner
            tx.append_event(
                EventKind.RUN_LEFTOVERS,
                item_id=change.item_id,
                run_id=change.run_id,
                data={"tree": tree, "path": path},
            )
    leftovers[tree] = kept
    save_leftovers(tx, leftovers)


def pending_runs(store: Store) -> list[tuple[str, str, tuple[str, ...]]]:
    """(tree, run id, touched paths) of every change still owed to git."""
    with store.reader() as tx:
        return [(e["tree"], e["run_id"], tuple(e["touched"])) for e in owed_entries(tx)]
