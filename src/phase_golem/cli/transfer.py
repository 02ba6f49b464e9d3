"""`phase-golem import` and `export`: BACKLOG.yaml (v1 to v3), inbox files, task-golem JSONL."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from phase_golem.cli.context import SQL_INT_MAX, state_of
from phase_golem.cli.output import print_json, safe
from phase_golem.engine.transfer import (
    check_export_directory,
    check_export_target,
    export_ledger,
    export_task_golem,
    export_text,
    import_file,
    ledger_ndjson,
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
    """Import items; all or nothing (an error changes nothing).

    The file must be a regular UTF-8 file under 256 MiB; an empty file, a FIFO, a device or a
    mapping that is no backlog is refused, saying what it is.
    """
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
    if not report.created:
        what = "an inbox" if report.format == "inbox" else f"a {report.format} file{version}"
        typer.echo(safe(f"Nothing imported: {file.name} is {what} with no items in it"))
        return
    typer.echo(safe(f"Imported {len(report.created)} item(s) from {file.name}{version}"))


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
    ledger: Annotated[
        str | None,
        typer.Option(
            "--ledger",
            metavar="FILE",
            help="Write the ledger instead, as NDJSON (one event per line, the fields of "
            "`log --json`) to FILE, or to stdout for '-'.",
        ),
    ] = None,
    item: Annotated[
        str | None, typer.Option("--item", metavar="ID", help="With --ledger: only this item.")
    ] = None,
    after: Annotated[
        int | None,
        typer.Option(
            "--after",
            metavar="SEQ",
            min=0,
            max=SQL_INT_MAX,
            help="With --ledger: events after SEQ.",
        ),
    ] = None,
) -> None:
    """Write the backlog as Phase Golem BACKLOG.yaml schema v3 or as task-golem JSONL, or
    (--ledger) the ledger as NDJSON; files are replaced atomically.

    Only an ordinary file is replaced (or a new one made in an existing directory): a target
    in .phase-golem/ or .git/, the config file, a directory, a device, a FIFO or a link is
    refused, and nothing is written. Secrets are redacted.
    """
    if ledger is not None:
        _export_ledger(ctx, ledger, file, fmt, item, after)
        return
    if item is not None or after is not None:
        raise typer.BadParameter("--item and --after go with --ledger", param_hint="--item")
    if fmt not in EXPORT_FORMATS:
        raise typer.BadParameter(
            f"{fmt!r} is not one of {', '.join(EXPORT_FORMATS)}", param_hint="--format"
        )
    project = state_of(ctx).project()
    if fmt == "task-golem":
        directory = check_export_directory(
            _export_directory(file), root=project.root, config_file=project.config.path
        )
        written = export_task_golem(project.store(), directory)
        typer.echo(safe(f"Exported to {written[0]} and {written[1]}"))
        return
    if file is not None:
        check_export_target(file, root=project.root, config_file=project.config.path)
    text = export_text(project.store(), project.config.settings)
    if file is None:
        sys.stdout.write(text)
        return
    write_atomically(file, text)
    typer.echo(safe(f"Exported to {file}"))


def _export_ledger(
    ctx: typer.Context,
    target: str,
    file: Path | None,
    fmt: str,
    item: str | None,
    after: int | None,
) -> None:
    if file is not None:
        raise typer.BadParameter(
            f"the ledger goes to --ledger {target}; drop the extra FILE {file}",
            param_hint="FILE",
        )
    if fmt != "backlog":
        raise typer.BadParameter("--ledger writes NDJSON; drop --format", param_hint="--format")
    project = state_of(ctx).project()
    path = Path(target)
    if target != "-":
        check_export_target(path, root=project.root, config_file=project.config.path)
    lines = ledger_ndjson(project.store(), item_id=item, after=after or 0)
    if target == "-":
        sys.stdout.writelines(lines)
        sys.stdout.flush()
        return
    try:
        export_ledger(path, lines)
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot write {path}: {exc.strerror or exc}", param_hint="--ledger"
        ) from None
    typer.echo(safe(f"Exported {len(lines)} ledger event(s) to {path}"))


def _export_directory(file: Path | None) -> Path:
    if file is None:
        raise typer.BadParameter(
            "task-golem writes two files; give the directory to write them into",
            param_hint="FILE",
        )
    return file
