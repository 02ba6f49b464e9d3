"""Scheduler control from any terminal: pause, resume, retry (engine/control.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from phase_golem.cli.context import state_of
from phase_golem.cli.output import safe
from phase_golem.engine import control


def pause(
    ctx: typer.Context,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (shown by run, watch and status).")
    ] = None,
) -> None:
    """Stop every `run` of this project starting new runs; running agents finish.

    A `run` in progress notices within about a second and says it is paused; one started
    while paused waits. The flag is kept in the store until `phase-golem resume`.
    """
    state, changed = control.pause(state_of(ctx).store(), reason)
    typer.echo(safe(control.pause_line(state, changed)))


def resume(ctx: typer.Context) -> None:
    """Let the scheduler start runs again after `phase-golem pause`."""
    typer.echo(control.resume_line(control.resume(state_of(ctx).store())))


def retry(
    ctx: typer.Context,
    item_id: Annotated[str, typer.Argument(metavar="ID")],
    notes: Annotated[
        str | None, typer.Option("--notes", help="Told to the next agent too.")
    ] = None,
) -> None:
    """Give a blocked item a fresh visit of its phase, its last failure in the prompt."""
    item = control.retry_item(state_of(ctx).store(), item_id, notes)
    typer.echo(safe(control.retry_line(item)))
