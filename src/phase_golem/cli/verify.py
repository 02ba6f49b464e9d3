"""`phase-golem verify [ID]`: re-hash the artifacts every receipt recorded."""

from __future__ import annotations

from typing import Annotated

import typer

from phase_golem.cli.context import state_of
from phase_golem.cli.output import print_json, safe
from phase_golem.engine.receipts import verify
from phase_golem.errors import ExitCode


def verify_command(
    ctx: typer.Context,
    item_id: Annotated[
        str | None,
        typer.Argument(metavar="[ID]", help="Only this item's runs (archived items too)."),
    ] = None,
    all_runs: Annotated[
        bool,
        typer.Option(
            "--all-runs",
            help="Check every run's record of a path, not only the latest (earlier runs' "
            "records of a file a later run rewrote will then differ).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Re-hash every receipt's artifacts and report each mismatch.

    Each path is held to its latest receipt: a file that a later run rewrote is judged by
    that run's record. Exit 0 when everything matches, 1 when anything differs (changed,
    size changed, missing, appeared, now unsafe or unreadable), 2 for an unknown ID.
    """
    project = state_of(ctx).project()
    report = verify(project.store(), project.root, item_id, all_runs=all_runs)
    if as_json:
        print_json(report.to_dict())
    else:
        for mismatch in report.mismatches:
            typer.echo(safe(mismatch.describe()))
        scope = f" of {item_id}" if item_id else ""
        extra = []
        if report.superseded:
            extra.append(f"{report.superseded} superseded by a later run")
        if report.unverifiable:
            extra.append(f"{report.unverifiable} unsafe or unreadable when recorded")
        detail = f" ({'; '.join(extra)})" if extra else ""
        verdict = "all match" if report.ok else f"{len(report.mismatches)} mismatch(es)"
        typer.echo(
            f"Verified {report.checked} artifact(s) from {report.receipts} receipt(s){scope}"
            f"{detail}: {verdict}"
        )
    raise typer.Exit(int(ExitCode.OK if report.ok else ExitCode.MISMATCH))
