"""Receipts for committed runs, and `verify`, which holds them against the disk.

Completion hashes the artifacts *before* it opens its transaction (`PendingReceipt`), so
no file I/O happens under the store's write lock, then saves the receipt inside that
same transaction when the run commits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from phase_golem.agents.runner import AgentOutcome
from phase_golem.domain.items import format_timestamp
from phase_golem.domain.receipts import (
    ArtifactDigest,
    Check,
    Mismatch,
    Receipt,
    checks_for,
    compare_artifact,
    verifiable,
)
from phase_golem.domain.runs import ErrorClass, Run, RunStatus
from phase_golem.store import NotFoundError, Store, Transaction
from phase_golem.workspace.receipts import (
    current_digests,
    digest_artifacts,
    recorded_directory,
    workdir_path,
)


@dataclass(frozen=True, slots=True)
class PendingReceipt:
    """The artifacts of a run as it finished, hashed, waiting for its transaction."""

    workdir: str | None
    artifacts: tuple[ArtifactDigest, ...] = ()

    def save(self, tx: Transaction, run: Run) -> Receipt | None:
        """Record the receipt of `run` if it committed (and a working directory was given)."""
        if self.workdir is None or run.status is not RunStatus.COMMITTED:
            return None
        receipt = Receipt(
            run_id=run.id,
            item_id=run.item_id,
            phase=run.phase,
            created_at=run.ended_at or format_timestamp(tx.now),
            idempotency_key=run.idempotency_key,
            snapshot_before=run.snapshot_before,
            snapshot_after=run.snapshot_after,
            workdir=self.workdir,
            artifacts=self.artifacts,
        )
        tx.save_receipt(receipt)
        return receipt


def prepare_receipt(
    workdir: Path | None, outcome: AgentOutcome, touched: Sequence[str] = ()
) -> PendingReceipt:
    """Hash what the result reported and what the run touched, relative to `workdir`.

    Without a working directory (in-process tests) nothing is hashed and no receipt is
    written. The receipt keeps the directory's absolute path: a per-item worktree is
    verified where it was.
    """
    if workdir is None or not may_commit(outcome):
        return PendingReceipt(None)
    reported = outcome.result.artifacts if outcome.result is not None else ()
    return PendingReceipt(str(workdir.resolve()), digest_artifacts(workdir, reported, touched))


def note_commit(tx: Transaction, run_ids: Sequence[str], commit: str) -> None:
    """The first git commit that saved a run's work goes on its receipt.

    Runs without a receipt (they did not commit: leftovers) are skipped, and a receipt
    that already names a commit keeps it (a run's own paths may be committed at once and
    its shared ones later, in a batch).
    """
    owed = []
    for run_id in run_ids:
        receipt = tx.get_receipt(run_id)
        if receipt is not None and receipt.commit is None:
            owed.append(run_id)
    if owed:
        tx.set_receipt_commit(owed, commit)


def may_commit(outcome: AgentOutcome) -> bool:
    """Only a result that completion applies can commit the run (the rest fail or wait)."""
    return outcome.result is not None and outcome.error_class in (
        None,
        ErrorClass.REPORTED_BLOCKED,
    )


@dataclass
class VerifyReport:
    receipts: int = 0
    checked: int = 0
    superseded: int = 0
    unverifiable: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "receipts": self.receipts,
            "checked": self.checked,
            "superseded": self.superseded,
            "unverifiable": self.unverifiable,
            "mismatches": [m.to_dict() for m in self.mismatches],
        }


def verify(
    store: Store, root: Path, item_id: str | None = None, *, all_runs: bool = False
) -> VerifyReport:
    """Re-hash the artifacts of every receipt (or one item's, archived items included)."""
    with store.reader() as tx:
        if item_id is not None and tx.get_item(item_id) is None:
            raise NotFoundError(f"no item {item_id}")
        every = tx.list_receipts()
        subject = every if item_id is None else tx.list_receipts(item_id=item_id)
    located = {
        label: str(workdir_path(root, label).resolve()) for label in {r.workdir for r in every}
    }
    gone = {label for label in located if not recorded_directory(root, label).is_dir()}
    checks, superseded = checks_for(every, all_runs=all_runs, subject=subject, located=located)
    report = VerifyReport(receipts=len(subject), checked=len(checks), superseded=superseded)
    report.unverifiable = sum(1 for r in subject for a in r.artifacts if not verifiable(a))
    by_directory: dict[str, list[Check]] = {}
    for check in checks:
        by_directory.setdefault(located[check.receipt.workdir], []).append(check)
    for directory, group in by_directory.items():
        now = current_digests(Path(directory), (c.artifact.path for c in group))
        for check in group:
            found = compare_artifact(check.receipt, check.artifact, now.get(check.artifact.path))
            if found is None:
                continue
            recorded = check.receipt.workdir
            if recorded in gone:
                note = f"{recorded} is gone, so it was looked for in the project root"
                reason = note if found.reason is None else f"{found.reason}; {note}"
                found = dataclasses.replace(found, reason=reason)
            report.mismatches.append(found)
    report.mismatches.sort(key=lambda m: (m.path, m.run_id))
    return report
