"""Thin wrappers around the `git` CLI (the real binary, never a library reimplementation)."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from phase_golem.domain.redaction import redact_text
from phase_golem.domain.text import printable
from phase_golem.processes import pid_alive
from phase_golem.safe_files import read_bounded


class GitError(RuntimeError):
    pass


def run_git(
    root: Path,
    *args: str,
    check: bool = True,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`git ARGS` in `root`; `env` adds to ours, `stdin` is fed (else stdin is closed)."""
    try:
        completed = subprocess.run(
            ["git", *args],
            cwd=root,
            capture_output=True,
            text=True,
            input=stdin,
            stdin=subprocess.DEVNULL if stdin is None else None,
            env={**os.environ, **env} if env else None,
            check=False,
        )
    except FileNotFoundError:
        raise GitError("git is not installed or not on PATH") from None
    if check and completed.returncode != 0:
        detail = completed.stderr.strip() or completed.stdout.strip()
        raise GitError(f"git {' '.join(args[:3])} failed: {detail}")
    return completed


def is_git_repo(root: Path) -> bool:
    return run_git(root, "rev-parse", "--git-dir", check=False).returncode == 0


def head_commit(root: Path) -> str | None:
    """The commit HEAD points at, or None outside a repository or before the first commit."""
    completed = run_git(root, "rev-parse", "--verify", "-q", "HEAD", check=False)
    return completed.stdout.strip() or None if completed.returncode == 0 else None


def git_dir(root: Path) -> Path:
    """The repository's own directory for this working tree (`.git`, or a worktree's):
    read from `.git` itself when it is the usual directory or `gitdir:` file, else git."""
    dirs = _git_dirs(root)
    if dirs is not None and dirs[0].is_dir():
        return dirs[0]
    path = Path(run_git(root, "rev-parse", "--git-dir").stdout.strip())
    return path if path.is_absolute() else root / path


def head_and_tree(root: Path) -> tuple[str | None, str | None]:
    """(HEAD commit, its tree) in one git process; (None, None) before the first commit."""
    listed = run_git(root, "rev-parse", "HEAD", "HEAD^{tree}", check=False)
    lines = listed.stdout.split()
    if listed.returncode != 0 or len(lines) != 2:
        return None, None  # an unborn branch: nothing to build on
    return lines[0], lines[1]


@dataclass(frozen=True, slots=True)
class GitState:
    """What git's own files say about a tree, read without running git: the index file's
    identity (git replaces it by rename on every change, so a new write is a new inode or
    time) and the commit HEAD resolves to. Equal states: git changed nothing in between."""

    index: tuple[int, int, int] | None
    head: str | None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return None


def _git_dirs(root: Path) -> tuple[Path, Path] | None:
    """(this tree's git dir, the common dir) from the files alone, or None when unusual."""
    dot = root / ".git"
    if dot.is_dir():
        return dot, dot
    text = _read(dot)
    if text is None or not text.startswith("gitdir: "):
        return None
    own = Path(text.removeprefix("gitdir: "))
    own = own if own.is_absolute() else root / own
    common = _read(own / "commondir")
    if common is None:
        return own, own
    shared = Path(common)
    return own, shared if shared.is_absolute() else own / shared


def _resolve_ref(common: Path, ref: str) -> str | None:
    loose = _read(common / ref)
    if loose is not None:
        return loose or None
    packed = _read(common / "packed-refs")
    for line in (packed or "").splitlines():
        sha, _, name = line.partition(" ")
        if name == ref and not line.startswith(("#", "^")):
            return sha
    return None


def git_state(root: Path) -> GitState:
    """The tree's GitState; a field git keeps in a form we do not read (reftable, a
    symbolic chain) is None, which never equals a known state, so nothing is reused."""
    dirs = _git_dirs(root)
    if dirs is None or (dirs[1] / "reftable").exists():
        return GitState(None, None)
    own, common = dirs
    try:
        stat = (own / "index").stat()
        index: tuple[int, int, int] | None = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    except OSError:
        index = None
    head_text = _read(own / "HEAD")
    head: str | None = None
    if head_text is not None and head_text.startswith("ref: "):
        head = _resolve_ref(common, head_text.removeprefix("ref: "))
    elif head_text is not None and len(head_text) in (40, 64):
        head = head_text
    return GitState(index, head)


def current_branch(root: Path) -> str | None:
    """The branch HEAD is on (also before its first commit), or None when detached."""
    completed = run_git(root, "symbolic-ref", "-q", "--short", "HEAD", check=False)
    return completed.stdout.strip() or None if completed.returncode == 0 else None


def tree_status(root: Path) -> tuple[str | None, list[str]]:
    """(HEAD commit or None before the first, changed and untracked-not-ignored paths).

    One `git status` call answers both, which matters: it runs twice for every run.
    """
    # No optional locks: a status of ours never holds index.lock (a kill cannot leave it).
    output = run_git(
        root,
        "--no-optional-locks",
        "status",
        "--porcelain=v2",
        "-z",
        "--branch",
        "--untracked-files=all",
        "--no-renames",
    ).stdout
    head: str | None = None
    paths: list[str] = []
    for entry in output.split("\0"):
        if entry.startswith("# branch.oid "):
            oid = entry.removeprefix("# branch.oid ")
            head = None if oid == "(initial)" else oid
        elif entry.startswith("1 "):
            paths.append(entry.split(" ", 8)[8])
        elif entry.startswith("u "):
            paths.append(entry.split(" ", 10)[10])
        elif entry.startswith("? "):
            paths.append(entry[2:])
    return head, sorted(paths)


def dirty_paths(root: Path) -> list[str]:
    """Tracked changes and untracked-not-ignored files, as `git status` sees them."""
    return tree_status(root)[1]


def operation_in_progress(root: Path) -> str | None:
    """A rebase or merge that git has not finished, by name, or None."""
    directory = git_dir(root)
    if (directory / "rebase-merge").exists() or (directory / "rebase-apply").exists():
        return "a rebase"
    if (directory / "MERGE_HEAD").exists():
        return "a merge"
    if (directory / "CHERRY_PICK_HEAD").exists():
        return "a cherry-pick"
    return None


def is_ancestor(root: Path, commit: str, of: str = "HEAD") -> bool | None:
    """True/False when git can tell; None when the commit is unknown or git fails."""
    if run_git(root, "cat-file", "-e", f"{commit}^{{commit}}", check=False).returncode != 0:
        return None
    completed = run_git(root, "merge-base", "--is-ancestor", commit, of, check=False)
    if completed.returncode in (0, 1):
        return completed.returncode == 0
    return None


def _committable(root: Path, env: dict[str, str], paths: list[str]) -> list[str]:
    """The paths `git add` can take: on disk and not ignored, or gone but in HEAD (a deletion).

    A path in neither place, or one that has become ignored, would make `git add` fail
    the whole commit; such a path simply has nothing to commit.
    """
    present = [p for p in paths if os.path.lexists(root / p)]
    gone = [p for p in paths if not os.path.lexists(root / p)]
    ignored: set[str] = set()
    if present:
        listed = _git_out(
            root,
            env,
            "check-ignore",
            "-z",
            "--stdin",
            stdin="\0".join(present) + "\0",
            check=False,
        )
        ignored = {p for p in listed.split("\0") if p}
    in_head: set[str] = set()
    if gone:
        listed = _git_out(root, env, "ls-files", "-z", "--", *gone)
        in_head = {p for p in listed.split("\0") if p}
    return [p for p in present if p not in ignored] + [p for p in gone if p in in_head]


def refresh_index(root: Path, paths: list[str]) -> None:
    """Make the real index agree with HEAD for these paths (after we committed them)."""
    if paths:
        with locked_operation(root):
            _git_out(
                root,
                {"GIT_LITERAL_PATHSPECS": "1"},
                "reset",
                "-q",
                "--pathspec-from-file=-",
                "--pathspec-file-nul",
                stdin="\0".join(paths) + "\0",
            )


# The mark's name predates ref locks; it stays so a mark an older version left still counts.
INDEX_OPERATION_MARK = "phase-golem-index-operation"
PRIVATE_INDEX = "phase-golem.index"


def _lock_files(root: Path, refs: Sequence[str]) -> list[Path]:
    """The lock files a git command in `root` may take: the index's, and each ref's (HEAD's
    own lock and, when HEAD is a branch, the branch's in the common directory)."""
    own, common = _git_dirs(root) or (git_dir(root), git_dir(root))
    locks = [own / "index.lock"]
    for ref in refs:
        if ref == "HEAD":
            locks.append(own / "HEAD.lock")
            head_text = _read(own / "HEAD") or ""
            if head_text.startswith("ref: "):
                locks.append(common / (head_text.removeprefix("ref: ") + ".lock"))
        else:
            locks.append(common / (ref + ".lock"))
    return locks


def _mark_name() -> str:
    """One mark per thread: runs prepare and complete in worker threads at once, and one
    command's end must not take away the mark of another still at work."""
    if threading.current_thread() is threading.main_thread():
        return INDEX_OPERATION_MARK
    return f"{INDEX_OPERATION_MARK}.{threading.get_native_id()}"


@contextmanager
def locked_operation(
    root: Path, refs: Sequence[str] = (), extra: Sequence[Path] = ()
) -> Iterator[None]:
    """Mark a git command of ours that takes the real index lock or a ref's lock, so that
    a kill in the middle of it is known at the next start and the stale locks can go.
    The mark names our pid and the very lock files the command may take (`extra`: more
    inside this repository's git directories, such as a worktree being added)."""
    mark = git_dir(root) / _mark_name()
    locks = [*_lock_files(root, refs), *extra]
    mark.write_text("\n".join([str(os.getpid()), *map(str, locks)]) + "\n", encoding="utf-8")
    try:
        yield
    finally:
        mark.unlink(missing_ok=True)


def _marked_locks(root: Path, text: str) -> list[Path]:
    """The lock files a dead command's mark names, kept to `*.lock` inside this tree's git
    directories (a mark is ours, but a path in it is never trusted to point elsewhere)."""
    own, common = _git_dirs(root) or (git_dir(root), git_dir(root))
    named = [Path(line) for line in text.splitlines()[1:] if line.strip()]
    allowed = (own.resolve(), common.resolve())
    locks = [own / "index.lock"]  # what a mark of an older version (a pid alone) meant
    for path in named:
        parent = path.parent.resolve()
        inside = any(parent == base or base in parent.parents for base in allowed)
        if path.name.endswith(".lock") and inside and path not in locks:
            locks.append(path)
    return locks


def clear_stale_locks(root: Path) -> bool:
    """At start, under our process lock: remove the locks a killed command of ours left.

    Only a lock we can prove ours goes: our private index's, or those our mark names when
    it says a command of ours held them and that process is gone. True if one went.
    """
    directory = git_dir(root)
    cleared = False
    for private in (PRIVATE_INDEX, PRIVATE_INDEX + ".lock"):
        if (directory / private).exists():
            (directory / private).unlink(missing_ok=True)
            cleared = True
    for mark in sorted(directory.glob(INDEX_OPERATION_MARK + "*")):
        cleared = _clear_marked(root, mark) or cleared
    return cleared


def _clear_marked(root: Path, mark: Path) -> bool:
    """The locks one mark names, removed when the command of ours that held them is gone."""
    try:
        text = read_bounded(mark, 16384, follow_symlinks=False).decode("utf-8")
        pid = int(text.splitlines()[0].strip() if text.strip() else 0)
    except (OSError, ValueError):
        return False
    if pid and pid_alive(pid):
        return False
    for lock in _marked_locks(root, text):
        lock.unlink(missing_ok=True)
    mark.unlink(missing_ok=True)
    return True


def foreign_lock(root: Path) -> Path | None:
    """A lock git would refuse to work past that we cannot prove ours (after
    `clear_stale_locks`): another git at work, or one the user's kill left. None if none."""
    for lock in _lock_files(root, ("HEAD",)):
        if os.path.lexists(lock):
            return lock
    return None


def commit_paths(
    root: Path,
    paths: list[str],
    message: str,
    *,
    before_publish: Callable[[str], None] | None = None,
) -> str | None:
    """Commit exactly `paths` (added, changed or deleted) on top of HEAD; None if no change.

    A private index is built from HEAD, so nothing else the user staged is swept in; HEAD
    moves by compare-and-swap, and the real index is then refreshed for these paths only.
    `before_publish` hears the new commit's id before HEAD moves to it, so a caller can
    record it and recognise the commit after a crash.
    """
    if not paths:
        return None
    message = printable(redact_text(message))  # no secret or escape reaches history
    gitdir = git_dir(root)
    index = gitdir / PRIVATE_INDEX
    env = {"GIT_INDEX_FILE": str(index), "GIT_LITERAL_PATHSPECS": "1"}
    kept = False
    try:
        head, head_tree = _private_index(root, gitdir, env)
        usable = _committable(root, env, paths)
        if not usable:
            return None
        spec = "\0".join(usable) + "\0"
        _git_out(
            root, env, "add", "-A", "--pathspec-from-file=-", "--pathspec-file-nul", stdin=spec
        )
        tree = _git_out(root, env, "write-tree").strip()
        if head is not None and tree == head_tree:
            os.replace(index, gitdir / f"{KEPT_INDEX}{head}-{tree}")  # still HEAD's tree
            kept = True
            refresh_index(root, usable)  # committed before a crash cut the refresh off, perhaps
            return None
        parents = ["-p", head] if head is not None else []
        commit = _git_out(root, {}, "commit-tree", tree, *parents, stdin=message).strip()
        if before_publish is not None:
            before_publish(commit)
        update = ["update-ref", "-m", "phase-golem: commit", "HEAD", commit]
        with locked_operation(root, ("HEAD",)):
            run_git(root, *(update + ([head] if head is not None else [""])))
        COMMIT_PARENTS[commit] = head
        while len(COMMIT_PARENTS) > _REMEMBERED_PARENTS:
            del COMMIT_PARENTS[next(iter(COMMIT_PARENTS))]
        os.replace(index, gitdir / f"{KEPT_INDEX}{commit}-{tree}")  # the next one starts here
        kept = True
    finally:
        if not kept:
            index.unlink(missing_ok=True)
    refresh_index(root, usable)
    return commit


# The parent of each of our last few commits (HEAD when it was made; None: the first).
COMMIT_PARENTS: dict[str, str | None] = {}
_REMEMBERED_PARENTS = 8

# The private index of our last commit, named for that commit and its tree: while HEAD is
# still that commit it is HEAD's tree exactly, so the next commit starts from it instead of
# asking git for HEAD and reading its tree again (two git processes fewer per commit).
KEPT_INDEX = PRIVATE_INDEX + "-"


def _private_index(root: Path, gitdir: Path, env: dict[str, str]) -> tuple[str | None, str | None]:
    """The private index at HEAD's tree, and (HEAD, its tree): our last commit's kept
    index when HEAD is still that commit (read from git's files), else read from HEAD."""
    head = git_state(root).head
    found: tuple[str, str] | None = None
    for kept in gitdir.glob(KEPT_INDEX + "*"):
        commit, _, tree = kept.name.removeprefix(KEPT_INDEX).partition("-")
        if found is None and head is not None and commit == head and tree:
            os.replace(kept, env["GIT_INDEX_FILE"])  # in use now: never kept half-built
            found = (commit, tree)
        else:
            kept.unlink(missing_ok=True)
    if found is not None:
        return found
    head, head_tree = head_and_tree(root)
    if head is not None:
        _git_out(root, env, "read-tree", head)
    else:
        _git_out(root, env, "read-tree", "--empty")
    return head, head_tree


def _git_out(
    root: Path, env: dict[str, str], *args: str, stdin: str | None = None, check: bool = True
) -> str:
    return run_git(root, *args, env=env, stdin=stdin, check=check).stdout


def identity_problem(root: Path) -> str | None:
    """Every run ends in a commit: without a name and e-mail git refuses them all (after
    the items are marked done), so it is asked once before anything starts. `git var`
    applies the same rules as `git commit` (config, GIT_* variables, useConfigOnly)."""
    idents = ("GIT_COMMITTER_IDENT", "GIT_AUTHOR_IDENT")
    if all(run_git(root, "var", name, check=False).returncode == 0 for name in idents):
        return None
    return (
        "git has no identity to commit with; set one: "
        'git config user.name "Your Name" && git config user.email you@example.com'
    )


def repository_problem(root: Path) -> str | None:
    """Phase Golem's preconditions but the clean tree: a repo, on a branch, nothing half-done."""
    if not is_git_repo(root):
        return f"{root} is not inside a git repository (run `git init` first)"
    if current_branch(root) is None:
        return "HEAD is detached; check out a branch first (`git switch <branch>`)"
    operation = operation_in_progress(root)
    if operation is not None:
        return f"{operation} is in progress; finish or abort it first"
    return None
