"""Content-addressed workspace snapshots (DESIGN §6).

A snapshot is git HEAD plus the content of every tracked and untracked-not-ignored file.
Each file is named by the git blob id of its working-tree bytes (for a symlink, of its
target), so clean tracked files take their id straight from the index and only changed
or new files are read; the snapshot id is the sha256 of the canonical manifest. Equal
trees give equal ids; no mtime or timestamp reaches the hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from phase_golem.workspace.git import run_git, tree_status


@dataclass(frozen=True, slots=True)
class WorkspaceSnapshot:
    head: str | None
    files: Mapping[str, str] = field(default_factory=dict)  # path → blob id

    @property
    def id(self) -> str:
        canonical = json.dumps(
            {"head": self.head, "files": sorted(self.files.items())},
            separators=(",", ":"),
        )
        return "ws:" + hashlib.sha256(canonical.encode()).hexdigest()


def blob_id(data: bytes) -> str:
    """The id git gives these bytes as a blob (so it matches the index's)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def file_blob_id(path: Path, *, retries: int = 2) -> str | None:
    """The blob id of a working-tree file, or None when it is gone or not a file.

    Read in blocks from a non-blocking descriptor of a regular file, so a huge file costs no
    memory and a FIFO an agent left in the tree cannot hang us.
    """
    try:
        if path.is_symlink():
            return blob_id(os.fsencode(os.readlink(path)))
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        digest = hashlib.sha1(b"blob %d\0" % info.st_size, usedforsecurity=False)
        remaining = info.st_size
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
        if remaining or os.fstat(fd).st_size != info.st_size:  # changed while we read it
            return file_blob_id(path, retries=retries - 1) if retries > 0 else None
        return digest.hexdigest()
    except OSError:
        return None
    finally:
        os.close(fd)


def index_entries(root: Path) -> dict[str, str]:
    """path → blob id of every index entry (`git ls-files -s`), submodules left out."""
    entries: dict[str, str] = {}
    staged = run_git(root, "ls-files", "-s", "-z").stdout
    for entry in (part for part in staged.split("\0") if part):
        meta, _, path = entry.partition("\t")
        parts = meta.split()
        if len(parts) >= 2 and parts[0] != "160000":  # submodules are not our files
            entries[path] = parts[1]
    return entries


def snapshot_from(
    root: Path,
    head: str | None,
    changed: Iterable[str],
    entries: Mapping[str, str],
    *,
    exclude: Iterable[str] = (),
) -> WorkspaceSnapshot:
    """The snapshot that `git status` (HEAD, changed paths) and an index listing give:
    clean files take their id from the index, changed or new ones are hashed."""
    prefixes = tuple(p.rstrip("/") + "/" for p in exclude)
    files = dict(entries)
    for path in changed:
        digest = file_blob_id(root / path)
        if digest is None:
            files.pop(path, None)
        else:
            files[path] = digest
    if prefixes:
        files = {p: d for p, d in files.items() if not p.startswith(prefixes)}
    return WorkspaceSnapshot(head, files)


def take_snapshot(root: Path, *, exclude: Iterable[str] = ()) -> WorkspaceSnapshot:
    """Snapshot the tree at `root`; paths under any `exclude` prefix are left out."""
    head, changed = tree_status(root)
    return snapshot_from(root, head, changed, index_entries(root), exclude=exclude)


def touched_paths(before: WorkspaceSnapshot, after: WorkspaceSnapshot) -> list[str]:
    """Every path added, changed or removed between two snapshots, sorted."""
    paths = set(before.files) | set(after.files)
    return sorted(p for p in paths if before.files.get(p) != after.files.get(p))
