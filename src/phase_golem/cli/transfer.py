"""`phase-golem import` and `export`: Phase Golem BACKLOG.yaml (v1 to v3) and inbox files."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from phase_golem.cli.context import state_of
from phase_golem.cli.render import print_json
from phase_golem.engine.transfer import export_text, import_file, write_atomically

FORMATS = ("auto", "backlog", "inbox")
logger = logging.getLogger("phase_golem.import")


def import_command(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(metavar="FILE", help="BACKLOG.yaml or an inbox file.")],
    fmt: Annotated[
        str, typer.Option("--format", help="auto (default), backlog (BACKLOG.yaml) or inbox.")
    ] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Import items; all or nothing (an error changes nothing)."""
    if fmt not in FORMATS:
        raise typer.BadParameter(
            f"{fmt!r} is not one of {', '.join(FORMATS)}", param_hint="--format"
        )
    project = state_of(ctx).project()
    report = import_file(project.store(), project.config.settings, file, fmt)
    if as_json:
        print_json(
            {
                "format": report.format,
                "schema_version": report.schema_version,
                "created": list(report.created),
                "warnings": list(report.warnings),
            }
        )
        return
    for warning in report.warnings:
        logger.warning("%s", warning)
    version = f" (schema v{report.schema_version})" if report.schema_version else ""
    typer.echo(f"Imported {len(report.created)} item(s) from {file.name}{version}")


def export_command(
    ctx: typer.Context,
    file: Annotated[
        Path | None, typer.Argument(metavar="[FILE]", help="Write here (default: stdout).")
    ] = None,
) -> None:
    """Write the backlog as Phase Golem BACKLOG.yaml schema v3."""
    project = state_of(ctx).project()
    text = export_text(project.store(), project.config.settings)
    if file is None:
        sys.stdout.write(text)
        return
    write_atomically(file, text)
    typer.echo(f"Exported to {file}")


def register(app: typer.Typer) -> None:
    app.command("import")(import_command)
    app.command("export")(export_command)
