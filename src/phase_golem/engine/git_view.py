"""`show`'s view of an item's git history: its commits, what each run touched, leftovers.

Read from the ledger and the store's leftovers table only, so `show` needs neither git
nor the commit machinery of `engine/commits.py` (which keeps those records).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from phase_golem.domain.events import EventKind, LedgerEvent
from phase_golem.store import Leftover, Store, Transaction

ROOT_TREE = "."


def leftovers_by_tree(tx: Transaction) -> dict[str, dict[str, dict[str, Any]]]:
    """The store's leftovers as the commit rules read them:
    `{tree: {path: {"owners": [[item, phase], ...], "runs": [...], "blob": id}}}`."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for row in tx.leftovers():
        found.setdefault(row.tree, {})[row.path] = {
            "owners": [list(o) for o in row.owners],
            "runs": list(row.runs),
            "blob": row.blob,
        }
    return found


def save_leftovers_by_tree(tx: Transaction, leftovers: Mapping[str, Mapping[str, Any]]) -> None:
    """Replace the store's leftovers with `leftovers` (shaped as `leftovers_by_tree`)."""
    rows = [
        Leftover(
            tree,
            path,
            tuple((str(o[0]), str(o[1])) for o in owner.get("owners", [])),
            tuple(str(r) for r in owner.get("runs", [])),
            owner.get("blob"),
        )
        for tree, paths in leftovers.items()
        for path, owner in paths.items()
    ]
    tx.save_leftovers(rows)


def leftovers_in(tx: Transaction, item_id: str | None = None) -> dict[str, dict[str, Any]]:
    """`{path: owner}` of every tree (paths prefixed by their worktree), of one item or all."""
    everything = leftovers_by_tree(tx)
    found: dict[str, dict[str, Any]] = {}
    for tree, paths in everything.items():
        for path, owner in paths.items():
            items = {o[0] for o in owner.get("owners", [])}
            if item_id is None or item_id in items:
                found[path if tree == ROOT_TREE else f"{tree}/{path}"] = owner
    return found


def leftovers_of(store: Store, item_id: str | None = None) -> dict[str, dict[str, Any]]:
    with store.reader() as tx:
        return leftovers_in(tx, item_id)


def git_view_of(
    events: Iterable[LedgerEvent], leftovers: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """The view from an item's own ledger events and its leftovers."""
    touched: dict[str, list[str]] = {}
    commits: dict[str, dict[str, Any]] = {}
    for event in events:
        if event.kind is EventKind.RUN_WORKSPACE and event.run_id:
            touched[event.run_id] = list(event.data.get("touched") or [])
        elif event.kind is EventKind.GIT_COMMITTED and event.data.get("commit"):
            sha = str(event.data["commit"])
            entry = commits.setdefault(
                sha,
                {"commit": sha, "message": event.data.get("message"), "runs": [], "paths": []},
            )
            if event.run_id:
                entry["runs"].append(event.run_id)
            entry["paths"] = sorted({*entry["paths"], *(event.data.get("paths") or [])})
            shared = event.data.get("shared_with_overlapping_runs") or []
            if shared:
                entry["shared_with_overlapping_runs"] = shared
    return {"commits": list(commits.values()), "touched": touched, "leftovers": leftovers}


def git_view(store: Store, item_id: str) -> dict[str, Any]:
    """An item's commits, the files each of its runs touched, and its leftovers (`show`)."""
    with store.reader() as tx:
        return git_view_of(tx.events(item_id=item_id), leftovers_in(tx, item_id))
