"""Receipts: what a committed run left behind, so `verify` can tell if it still holds.

A receipt names the run, its idempotency key, the workspace snapshots before and after
it, the git commit that recorded its work (filled in after the commit), and every
artifact it reported or touched with sha256 and size as they were when it finished.
Pure: hashing files is `workspace/receipts.py`'s job; this module only compares.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from phase_golem.domain.errors import ParseError


class ArtifactState(StrEnum):
    PRESENT = "present"  # a regular file inside the working directory, hashed
    MISSING = "missing"  # nothing at that path
    UNSAFE = "unsafe"  # absolute, escapes with `..`, or a symlink leading outside
    UNREADABLE = "unreadable"  # a directory, a device, or no permission to read


@dataclass(frozen=True, slots=True)
class ArtifactDigest:
    path: str
    state: ArtifactState
    sha256: str | None = None
    size: int | None = None
    reason: str | None = None
    reported: bool = False  # named in the result's `artifacts`
    touched: bool = False  # changed by the run, as git saw it

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "state": self.state.value,
            "sha256": self.sha256,
            "size": self.size,
            "reason": self.reason,
            "reported": self.reported,
            "touched": self.touched,
        }


@dataclass(frozen=True, slots=True)
class Receipt:
    run_id: str
    item_id: str
    phase: str
    created_at: str
    idempotency_key: str | None = None
    snapshot_before: str | None = None
    snapshot_after: str | None = None
    commit: str | None = None
    workdir: str = "."  # where the paths resolve: absolute, or relative to the project root
    artifacts: tuple[ArtifactDigest, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "item_id": self.item_id,
            "phase": self.phase,
            "created_at": self.created_at,
            "idempotency_key": self.idempotency_key,
            "snapshot_before": self.snapshot_before,
            "snapshot_after": self.snapshot_after,
            "commit": self.commit,
            "workdir": self.workdir,
            "artifacts": [a.to_dict() for a in self.artifacts],
        }


def _text(data: Mapping[str, Any], name: str, where: str, *, optional: bool) -> str | None:
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ParseError(f"{where}: {name} must be a string, not {value!r}")
    return value


def artifact_from_dict(data: Mapping[str, Any], where: str = "artifact") -> ArtifactDigest:
    if not isinstance(data, Mapping):
        raise ParseError(f"{where}: must be an object")
    path = _text(data, "path", where, optional=False) or ""
    try:
        state = ArtifactState(str(data.get("state")))
    except ValueError:
        raise ParseError(f"{where}: unknown state {data.get('state')!r}") from None
    size = data.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ParseError(f"{where}: size must be a whole number >= 0, not {size!r}")
    return ArtifactDigest(
        path=path,
        state=state,
        sha256=_text(data, "sha256", where, optional=True),
        size=size,
        reason=_text(data, "reason", where, optional=True),
        reported=bool(data.get("reported", False)),
        touched=bool(data.get("touched", False)),
    )


def receipt_from_dict(data: Mapping[str, Any]) -> Receipt:
    if not isinstance(data, Mapping):
        raise ParseError("receipt: must be an object")
    where = f"receipt of {data.get('run_id')!r}"
    raw_artifacts = data.get("artifacts") or []
    if not isinstance(raw_artifacts, list):
        raise ParseError(f"{where}: artifacts must be a list")
    return Receipt(
        run_id=_text(data, "run_id", where, optional=False) or "",
        item_id=_text(data, "item_id", where, optional=False) or "",
        phase=_text(data, "phase", where, optional=False) or "",
        created_at=_text(data, "created_at", where, optional=False) or "",
        idempotency_key=_text(data, "idempotency_key", where, optional=True),
        snapshot_before=_text(data, "snapshot_before", where, optional=True),
        snapshot_after=_text(data, "snapshot_after", where, optional=True),
        commit=_text(data, "commit", where, optional=True),
        workdir=_text(data, "workdir", where, optional=True) or ".",
        artifacts=tuple(
            artifact_from_dict(a, f"{where}: artifacts[{n}]") for n, a in enumerate(raw_artifacts)
        ),
    )


def normalise_path(raw: str) -> tuple[str, str | None]:
    """(the path in normal posix form, why it is unsafe or None), judged without the disk.

    Absolute paths and any `..` that climbs out of the working directory are unsafe;
    a `..` that stays inside (`src/../x`) is folded away. Symlinks need the disk and are
    judged by the workspace adapter.
    """
    if not raw or "\x00" in raw:
        return raw, "not a usable path"
    if raw.startswith(("/", "\\")) or (len(raw) > 1 and raw[1] == ":"):
        return raw, "absolute path (artifacts must be relative to the working directory)"
    normal = posixpath.normpath(raw.replace("\\", "/"))
    if normal == ".." or normal.startswith("../"):
        return raw, "'..' leads outside the working directory"
    if normal == ".":
        return raw, "names the working directory itself, not a file"
    return normal, None


class MismatchKind(StrEnum):
    CHANGED = "changed"  # same size, different content
    SIZE_CHANGED = "size_changed"  # different size (so different content)
    MISSING = "missing"  # was there, is gone
    APPEARED = "appeared"  # was missing when recorded, exists now
    UNSAFE = "unsafe"  # now leads outside the working directory (a symlink swapped in)
    UNREADABLE = "unreadable"  # now a directory, or unreadable


@dataclass(frozen=True, slots=True)
class Mismatch:
    run_id: str
    item_id: str
    path: str
    kind: MismatchKind
    old_sha256: str | None = None
    new_sha256: str | None = None
    old_size: int | None = None
    new_size: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "item_id": self.item_id,
            "path": self.path,
            "kind": self.kind.value,
            "old_sha256": self.old_sha256,
            "new_sha256": self.new_sha256,
            "old_size": self.old_size,
            "new_size": self.new_size,
            "reason": self.reason,
        }

    def describe(self) -> str:
        what = f"{self.run_id} {self.item_id} {self.path}: {self.kind.value}"
        details = []
        if self.kind is MismatchKind.SIZE_CHANGED:
            details.append(f"{self.old_size} → {self.new_size} bytes")
        if self.kind in (MismatchKind.CHANGED, MismatchKind.SIZE_CHANGED):
            details.append(f"sha256 {_short(self.old_sha256)} → {_short(self.new_sha256)}")
        if self.reason:
            details.append(self.reason)
        return f"{what} ({', '.join(details)})" if details else what


def _short(digest: str | None) -> str:
    return digest[:12] if digest else "-"


def verifiable(artifact: ArtifactDigest) -> bool:
    """Unsafe or unreadable at recording time: there is nothing to hold it to."""
    return artifact.state in (ArtifactState.PRESENT, ArtifactState.MISSING)


def compare_artifact(
    receipt: Receipt, recorded: ArtifactDigest, current: ArtifactDigest | None
) -> Mismatch | None:
    def mismatch(kind: MismatchKind, reason: str | None = None) -> Mismatch:
        return Mismatch(
            receipt.run_id,
            receipt.item_id,
            recorded.path,
            kind,
            old_sha256=recorded.sha256,
            new_sha256=now.sha256,
            old_size=recorded.size,
            new_size=now.size,
            reason=reason,
        )

    if not verifiable(recorded):
        return None
    now = current or ArtifactDigest(recorded.path, ArtifactState.MISSING)
    if recorded.state is ArtifactState.MISSING:
        if now.state is ArtifactState.MISSING:
            return None
        return mismatch(MismatchKind.APPEARED, "it was missing when the run finished")
    if now.state is ArtifactState.MISSING:
        return mismatch(MismatchKind.MISSING, "the file is gone")
    if now.state is ArtifactState.UNSAFE:
        return mismatch(MismatchKind.UNSAFE, now.reason)
    if now.state is ArtifactState.UNREADABLE:
        return mismatch(MismatchKind.UNREADABLE, now.reason)
    if now.size != recorded.size:
        return mismatch(MismatchKind.SIZE_CHANGED)
    if now.sha256 != recorded.sha256:
        return mismatch(MismatchKind.CHANGED)
    return None


def compare(receipt: Receipt, current: Mapping[str, ArtifactDigest]) -> list[Mismatch]:
    """Every artifact of `receipt` that no longer matches `current` (path → digest now).

    A path absent from `current` counts as missing.
    """
    found = []
    for recorded in receipt.artifacts:
        result = compare_artifact(receipt, recorded, current.get(recorded.path))
        if result is not None:
            found.append(result)
    return found


@dataclass(frozen=True, slots=True)
class Check:
    """One artifact to hold against the disk: the receipt that speaks for it."""

    receipt: Receipt
    artifact: ArtifactDigest


def checks_for(
    receipts: Sequence[Receipt],
    *,
    all_runs: bool,
    subject: Iterable[Receipt] | None = None,
    located: Mapping[str, str] | None = None,
) -> tuple[list[Check], int]:
    """(what to check, how many older records were superseded).

    `receipts` are every receipt, oldest first. By default each file is held to its
    LATEST receipt only: when a later run rewrites a file, the earlier run's record of it
    is history, not a claim about the disk. A file is a path in the directory its
    receipt's working directory stands for now (`located`: workdir → that directory; a
    removed worktree stands for the root its branch merged into). `all_runs` checks every
    record. `subject` limits the checks to the files those receipts recorded (verify ID).
    """
    where = located or {}
    wanted = None if subject is None else {r.run_id for r in subject}
    if all_runs:
        checks = [
            Check(r, a)
            for r in receipts
            if wanted is None or r.run_id in wanted
            for a in r.artifacts
            if verifiable(a)
        ]
        return checks, 0
    latest: dict[tuple[str, str], Check] = {}
    subject_paths: set[tuple[str, str]] = set()
    for receipt in receipts:
        for artifact in receipt.artifacts:
            if not verifiable(artifact):
                continue
            key = (where.get(receipt.workdir, receipt.workdir), artifact.path)
            latest[key] = Check(receipt, artifact)
            if wanted is None or receipt.run_id in wanted:
                subject_paths.add(key)
    checks = [check for key, check in latest.items() if key in subject_paths]
    superseded = sum(
        1
        for r in receipts
        if wanted is None or r.run_id in wanted
        for a in r.artifacts
        if verifiable(a)
    ) - len(checks)
    return checks, superseded
