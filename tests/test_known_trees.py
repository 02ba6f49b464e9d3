"""Reusing a tree's last snapshot (engine/known_trees.py) only while it provably holds.

Real git repositories: every reuse is checked against a fresh snapshot of the same tree,
and every way git itself can change a tree (a commit, staging, a checkout) or a run of
ours entering it makes the next look a fresh one.
"""

from __future__ import annotations

from pathlib import Path

from phase_golem.engine.commits import committed_paths
from phase_golem.engine.known_trees import KnownTrees
from phase_golem.engine.trees import TreeTracker
from phase_golem.engine.workspaces import SNAPSHOT_EXCLUDES, snapshot_of
from phase_golem.workspace.git import commit_paths, git_state, run_git
from tests.conftest import git_in


def _repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git_in(root, "init", "-q", "-b", "main")
    (root / "a.txt").write_text("a\n")
    (root / "dirty.txt").write_text("clean\n")
    git_in(root, "add", "-A")
    git_in(root, "commit", "-qm", "start")
    (root / "dirty.txt").write_text("dirty\n")  # a change the tree starts with
    return root


def test_an_unchanged_tree_is_served_from_what_is_known(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    known, tracker = KnownTrees(SNAPSHOT_EXCLUDES), TreeTracker()
    first = known.current(root, tracker, ".")
    again = known.current(root, tracker, ".")
    assert again is first and known.reused == 1 and known.taken == 1
    assert again == snapshot_of(root)  # and it is exact


def test_a_run_in_the_tree_or_a_git_change_means_a_fresh_look(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    known, tracker = KnownTrees(SNAPSHOT_EXCLUDES), TreeTracker()
    known.current(root, tracker, ".")
    tracker.enter(".", "run-1")  # a run of ours came in: it may write anything
    (root / "new.txt").write_text("by the run\n")
    tracker.leave(".", "run-1")
    assert known.still_exact(root, tracker, ".") is None
    after = known.current(root, tracker, ".")
    assert "new.txt" in after.files and after == snapshot_of(root)
    git_in(root, "add", "new.txt")  # someone stages: the index file is replaced
    assert known.still_exact(root, tracker, ".") is None
    staged = known.current(root, tracker, ".")
    assert staged == snapshot_of(root)
    git_in(root, "commit", "-qm", "by hand")  # someone commits: HEAD moves
    assert known.still_exact(root, tracker, ".") is None
    assert known.current(root, tracker, ".") == snapshot_of(root)


def test_our_own_commit_is_applied_not_forgotten(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    known, tracker = KnownTrees(SNAPSHOT_EXCLUDES), TreeTracker()
    before = known.current(root, tracker, ".")
    commit = commit_paths(root, ["dirty.txt"], "ours")
    assert commit is not None
    paths = committed_paths(root, commit)
    from phase_golem.engine.commits import COMMITTED_BLOBS

    known.committed(root, commit, COMMITTED_BLOBS[commit])
    served = known.still_exact(root, tracker, ".")
    assert paths == ["dirty.txt"] and served is not None
    assert served == snapshot_of(root) and served.head == commit != before.head
    # The index listing stayed known too: the next fresh look needs only `git status`.
    (root / "a.txt").write_text("changed\n")
    tracker.enter(".", "run-2")
    tracker.leave(".", "run-2")
    calls = []
    original = run_git

    def counting(path: Path, *args: str, **kw: object) -> object:
        calls.append(args[0] if args[0] != "--no-optional-locks" else args[1])
        return original(path, *args, **kw)  # type: ignore[arg-type]

    import phase_golem.workspace.git as git_module
    import phase_golem.workspace.snapshot as snapshot_module

    git_module.run_git, snapshot_module.run_git = counting, counting  # type: ignore[assignment]
    try:
        fresh = known.current(root, tracker, ".")
    finally:
        git_module.run_git, snapshot_module.run_git = original, original
    assert calls == ["status"] and fresh == snapshot_of(root)
    assert git_state(root).head == commit


def test_a_path_owed_twice_is_not_committed_again_once_at_head(tmp_path: Path) -> None:
    """Two of our commits in a row: a path either of them saved, unchanged since, is known
    to be at HEAD without git; a new edit, or a commit not ours, means git looks again."""
    from phase_golem.engine.commits import _already_at_head

    root = _repo(tmp_path)
    (root / "b.txt").write_text("b\n")
    first = commit_paths(root, ["dirty.txt"], "first")
    assert first is not None
    committed_paths(root, first)
    second = commit_paths(root, ["b.txt"], "second")
    assert second is not None
    committed_paths(root, second)
    assert _already_at_head(root, ["dirty.txt", "b.txt"])
    assert not _already_at_head(root, ["a.txt"])  # not saved by our chain: git must look
    (root / "b.txt").write_text("b again\n")
    assert not _already_at_head(root, ["b.txt"])
    git_in(root, "commit", "-qam", "by hand")  # HEAD moved under us
    (root / "b.txt").write_text("b\n")
    assert not _already_at_head(root, ["dirty.txt"])
