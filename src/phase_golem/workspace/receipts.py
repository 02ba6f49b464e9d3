"""Hash a run's artifacts for its receipt, and again for `verify` (DESIGN §6).

Paths come from agents and are not trusted: an absolute path, a `..` that climbs out,
or a symlink that leads outside the working directory is recorded as `unsafe` with the
reason, never read. A path with nothing behind it is `missing`, not an error. Files are
opened without blocking (a FIFO cannot hang us) and hashed in chunks.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

from phase_golem.domain.receipts import ArtifactDigest, ArtifactState, normalise_path

CHUNK = 1 << 20


def digest_path(workdir: Path, raw: str) -> ArtifactDigest:
    """The state of one artifact path now, resolved inside `workdir`."""
    path, unsafe = normalise_path(raw)
    if unsafe is not None:
        return ArtifactDigest(path, ArtifactState.UNSAFE, reason=unsafe)
    root = workdir.resolve()
    candidate = root / path
    try:
        resolved = candidate.resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # a symlink loop
        return ArtifactDigest(path, ArtifactState.UNSAFE, reason=f"cannot resolve: {exc}")
    if not resolved.is_relative_to(root):
        return ArtifactDigest(
            path, ArtifactState.UNSAFE, reason="a symlink leads outside the working directory"
        )
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(resolved, flags)
    except FileNotFoundError:
        if candidate.is_symlink():
            return ArtifactDigest(path, ArtifactState.MISSING, reason="a dangling symlink")
        return ArtifactDigest(path, ArtifactState.MISSING)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # swapped for a symlink after we resolved it
            return ArtifactDigest(path, ArtifactState.UNSAFE, reason="became a symlink")
        return ArtifactDigest(path, ArtifactState.UNREADABLE, reason=exc.strerror or str(exc))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            return ArtifactDigest(path, ArtifactState.UNREADABLE, reason=kind)
        digest = hashlib.sha256()
        size = 0
        while chunk := os.read(fd, CHUNK):
            digest.update(chunk)
            size += len(chunk)
    except OSError as exc:
        return ArtifactDigest(path, ArtifactState.UNREADABLE, reason=exc.strerror or str(exc))
    finally:
        os.close(fd)
    return ArtifactDigest(path, ArtifactState.PRESENT, sha256=digest.hexdigest(), size=size)


def digest_artifacts(
    workdir: Path, reported: Iterable[str], touched: Iterable[str] = ()
) -> tuple[ArtifactDigest, ...]:
    """Every path a run reported or touched, once each (by normal form), sorted."""
    sources: dict[str, tuple[str, bool, bool]] = {}
    for raw, is_reported in [(p, True) for p in reported] + [(p, False) for p in touched]:
        key, _ = normalise_path(raw)
        first, was_reported, was_touched = sources.get(key, (raw, False, False))
        sources[key] = (first, was_reported or is_reported, was_touched or not is_reported)
    digests = []
    for key in sorted(sources):
        raw, was_reported, was_touched = sources[key]
        found = digest_path(workdir, raw)
        digests.append(_flagged(found, was_reported, was_touched))
    return tuple(digests)


def _flagged(digest: ArtifactDigest, reported: bool, touched: bool) -> ArtifactDigest:
    return ArtifactDigest(
        digest.path, digest.state, digest.sha256, digest.size, digest.reason, reported, touched
    )


def current_digests(workdir: Path, paths: Iterable[str]) -> Mapping[str, ArtifactDigest]:
    """path → its digest now, for `verify` (paths are the receipts' normal forms)."""
    return {path: digest_path(workdir, path) for path in set(paths)}


def recorded_directory(root: Path, recorded: str) -> Path:
    path = Path(recorded)
    return path if path.is_absolute() else root / path


def workdir_path(root: Path, recorded: str) -> Path:
    """Where a receipt's paths resolve now: the working directory it recorded, or the
    project root once that directory is gone (an item's worktree is removed after its
    branch is merged, so its files live on in the root; a moved project also lands here).
    """
    path = recorded_directory(root, recorded)
    return path if path.is_dir() else root
