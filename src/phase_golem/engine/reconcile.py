"""A side-effect phase's `reconcile` command: did its action happen? (DESIGN §5, §6)

After a crash, a timeout or a lost result nobody knows whether a side-effect phase acted.
When the phase has a `reconcile` command it decides instead of a human: exit 0 means it
happened, 1 that it did not, anything else — or a command that cannot run or runs past
its timeout — that we still do not know.

The command is a template split like a shell line (no shell runs it) with `{item}`,
`{phase}`, `{run_id}`, `{branch}` and `{key}` (the idempotency key) filled in. It runs in
the project root in its own process group, with stdin closed; its whole group is killed
at the timeout. It never runs inside a store transaction: it may take seconds.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from phase_golem.domain.endings import Verdict
from phase_golem.domain.items import Item
from phase_golem.domain.redaction import redact_text
from phase_golem.domain.runs import Run
from phase_golem.domain.templates import fill

OUTPUT_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class Reconciliation:
    verdict: Verdict
    detail: str
    exit_code: int | None = None
    command: str = ""

    def ledger_data(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "exit_code": self.exit_code,
            "detail": self.detail,
            "command": self.command,
        }


def reconcile_argv(template: str, run: Run, item: Item) -> list[str]:
    values = {
        "item": item.id,
        "phase": run.phase,
        "run_id": run.id,
        "branch": item.branch or "",
        "key": run.idempotency_key or "",
    }
    argv = [fill(token, values) for token in shlex.split(template)]
    if not argv:
        raise ValueError("the reconcile command is empty")
    return argv


def _environment(run: Run) -> dict[str, str]:
    # Not PHASE_GOLEM_ROOT: with it the command would pass for one of the run's agents.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHASE_GOLEM_")}
    env.update(
        PHASE_GOLEM_ITEM_ID=run.item_id,
        PHASE_GOLEM_PHASE=run.phase,
        PHASE_GOLEM_RUN_ID=run.id,
        PHASE_GOLEM_IDEMPOTENCY_KEY=run.idempotency_key or "",
    )
    return env


def _said(output: bytes) -> str:
    text = output.decode("utf-8", errors="replace").strip()
    return redact_text(text[-OUTPUT_LIMIT:])


def run_reconcile(
    template: str, run: Run, item: Item, root: Path, timeout: float
) -> Reconciliation:
    """Run the check; every failure of the check itself is an `unknown` verdict."""
    found = _run(template, run, item, root, timeout)
    return Reconciliation(found.verdict, found.detail, found.exit_code, template)


def _run(template: str, run: Run, item: Item, root: Path, timeout: float) -> Reconciliation:
    try:
        argv = reconcile_argv(template, run, item)
    except ValueError as exc:
        return Reconciliation(Verdict.UNKNOWN, f"reconcile command {template!r}: {exc}")
    try:
        process = subprocess.Popen(
            argv,
            cwd=root,
            env=_environment(run),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return Reconciliation(
            Verdict.UNKNOWN, f"reconcile command {argv[0]!r} cannot run: {exc.strerror or exc}"
        )
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return Reconciliation(
            Verdict.UNKNOWN, f"reconcile command ran past its {timeout:g} s timeout"
        )
    code = process.returncode
    said = _said(output)
    suffix = f": {said}" if said else ""
    if code == 0:
        return Reconciliation(Verdict.HAPPENED, f"reconcile exited 0 (it happened){suffix}", 0)
    if code == 1:
        return Reconciliation(
            Verdict.NOT_HAPPENED, f"reconcile exited 1 (it did not happen){suffix}", 1
        )
    return Reconciliation(
        Verdict.UNKNOWN, f"reconcile exited {code}, which says neither yes nor no{suffix}", code
    )
