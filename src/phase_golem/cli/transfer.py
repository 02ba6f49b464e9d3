"""`phase-golem import` and `export`: BACKLOG.yaml (v1 to v3), inbox files, task-golem JSONL."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from phase_golem.cli.context import state_of
from phase_golem.cli.render import print_json
from phase_golem.engine.transfer import (
    export_task_golem,
    export_text,
    import_file,
)
from phase_golem.fsutil import write_atomically

FORMATS = ("auto", "backlog", "inbox", "task-golem")
EXPORT_FORMATS = ("backlog", "task-golem")
logger = logging.getLogger("phase_golem.import")


def import_command(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="BACKLOG.yaml, an inbox file, tasks.jsonl or a .task-golem/ directory.",
        ),
    ],
    fmt: Annotated[
        str,
        typer.Option(
            "--format", help="auto (default), backlog (BACKLOG.yaml), inbox or task-golem."
        ),
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
        Path | None,
        typer.Argument(
            metavar="[FILE]",
            help="Write here (default: stdout); a directory for --format task-golem.",
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="backlog (BACKLOG.yaml schema v3, default) or task-golem "
            "(tasks.jsonl and archive.jsonl in the FILE directory).",
        ),
    ] = "backlog",
) -> None:
    """Write the backlog as Phase Golem BACKLOG.yaml schema v3, or as task-golem JSONL."""
    if fmt not in EXPORT_FORMATS:
        raise typer.BadParameter(
            f"{fmt!r} is not one of {', '.join(EXPORT_FORMATS)}", param_hint="--format"
        )
    if fmt == "task-golem":
        directory = _export_directory(file)
        written = export_task_golem(state_of(ctx).project().store(), directory)
        typer.echo(f"Exported to {written[0]} and {written[1]}")
        return
    project = state_of(ctx).project()
    text = export_text(project.store(), project.config.settings)
    if file is None:
        sys.stdout.write(text)
        return
    write_atomically(file, text)
    typer.echo(f"Exported to {file}")


def _export_directory(file: Path | None) -> Path:
    if file is None:
        raise typer.BadParameter(
            "task-golem writes two files; give the directory to write them into",
            param_hint="FILE",
        )
    if file.exists() and not file.is_dir():
        raise typer.BadParameter(f"{file} exists and is not a directory", param_hint="FILE")
    return file


def register(app: typer.Typer) -> None:
    app.command("import")(import_command)
    app.command("export")(export_command)
