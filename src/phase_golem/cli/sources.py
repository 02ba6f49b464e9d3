"""`phase-golem sources [--json]` and `sources run [NAME]` (DESIGN §11)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from phase_golem.cli.context import state_of
from phase_golem.cli.output import print_json_array, safe
from phase_golem.errors import ExitCode

app = typer.Typer(
    rich_markup_mode=None,
    add_completion=False,
    pretty_exceptions_enable=False,
    invoke_without_command=True,
    help="Intake sources: each source's schedule, next and last run, last error and counts; "
    "`sources run [NAME]` runs them now.",
)


def _rows(ctx: typer.Context) -> list[dict[str, Any]]:
    from phase_golem.engine.sources import sync

    project = state_of(ctx).project()
    settings = project.config.settings
    rows = {row.source: row for row in sync(project.store(), settings)}
    listed = []
    for source in settings.sources:
        row = rows.get(source.name)
        record = row.to_dict() if row is not None else {}
        listed.append(
            {
                "name": source.name,
                "kind": source.kind.value,
                "target": source.target,
                "labels": list(source.labels),
                "schedule": source.describe_schedule(),
                "next_run_at": record.get("next_run_at"),
                "last_run_at": record.get("last_run_at"),
                "last_error": record.get("last_error"),
                "failures": record.get("failures", 0),
                "running": record.get("claimed_by") is not None,
                "runs": record.get("runs", 0),
                "items_created": record.get("items_created", 0),
                "items_updated": record.get("items_updated", 0),
                "items_closed": record.get("items_closed", 0),
            }
        )
    return listed


def _line(row: dict[str, Any]) -> str:
    state = " RUNNING" if row["running"] else ""
    error = (
        f"  last error ({row['failures']} in a row): {row['last_error']}"
        if row["last_error"]
        else ""
    )
    return (
        f"{row['name']:<14} {row['kind']:<8} {row['schedule']:<22} "
        f"next {row['next_run_at'] or '-'}  last {row['last_run_at'] or 'never'}  "
        f"runs {row['runs']}: {row['items_created']} created, {row['items_updated']} updated, "
        f"{row['items_closed']} closed{state}{error}"
    )


@app.callback()
def sources(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Intake sources: each source's schedule, next and last run, last error and counts;
    `sources run [NAME]` runs them now."""
    if ctx.invoked_subcommand is not None:
        return
    rows = _rows(ctx)
    if as_json:
        print_json_array(rows)
        return
    if not rows:
        typer.echo("No sources configured ([[sources]] in phase-golem.toml).")
    for row in rows:
        typer.echo(safe(_line(row)))


@app.command("run")
def run_now(
    ctx: typer.Context,
    name: Annotated[
        str | None, typer.Argument(metavar="[NAME]", help="One source (default: every one).")
    ] = None,
) -> None:
    """Run a source now (every configured one without NAME), whatever its schedule;
    refused while that source is already running."""
    from phase_golem.engine.sources import find_source, run_now

    project = state_of(ctx).project()
    settings = project.config.settings
    store = project.store()
    chosen = [find_source(settings, name)] if name is not None else list(settings.sources)
    if not chosen:
        typer.echo("No sources configured ([[sources]] in phase-golem.toml).")
        return
    code = ExitCode.OK
    for source in chosen:
        outcome = run_now(project.root, store, settings, source.name)
        for warning in outcome.warnings:
            typer.echo(safe(f"[source {source.name}] warning: {warning}"), err=True)
        if outcome.ok:
            typer.echo(safe(outcome.line()))
        else:
            typer.echo(safe(f"phase-golem: error: {outcome.line()}"), err=True)
            worse = ExitCode.BAD_INPUT if outcome.bad_output else ExitCode.PRECONDITION
            code = max(code, worse)
    if code:
        raise typer.Exit(int(code))
