"""Backlog commands that change it: init, add, edit, advance, unblock, close.

(`status` and `show` only read, and live in their own light modules.)
"""

from __future__ import annotations

from typing import Annotated

import typer

from phase_golem.cli.context import state_of
from phase_golem.cli.options import (
    parse_clearable_level,
    parse_clearable_size,
    parse_level,
    parse_size,
)
from phase_golem.cli.output import print_json, safe
from phase_golem.domain.items import Level, Size
from phase_golem.domain.serialization import item_to_dict
from phase_golem.engine import backlog
from phase_golem.engine.backlog import UNSET, EditRequest, NewItemRequest
from phase_golem.project import init_project

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def init(
    ctx: typer.Context,
    prefix: Annotated[
        str | None, typer.Option("--prefix", help="ID prefix for new items (default WRK).")
    ] = None,
) -> None:
    """Set up phase-golem in this git repository (safe to run again).

    Prints the git command that commits what it wrote: `run` needs a clean tree.
    """
    state = state_of(ctx)
    report = init_project(state.resolved_root(), prefix, state.config_path)
    typer.echo(safe(f"Initialised phase-golem in {report.root}"))
    for name in report.created:
        typer.echo(safe(f"  created {name}"))
    for name in report.kept:
        typer.echo(safe(f"  kept    {name}"))
    if report.next_step is not None:
        typer.echo(f"Next: commit the set-up (`run` needs a clean tree): {report.next_step}")


def add(
    ctx: typer.Context,
    title: Annotated[str, typer.Argument(help="What the item is about.")],
    size: Annotated[
        str | None, typer.Option("--size", "-s", help="small|medium|large (s/m/l).")
    ] = None,
    complexity: Annotated[
        str | None, typer.Option("--complexity", "-c", help="low|medium|high (l/m/h).")
    ] = None,
    risk: Annotated[str | None, typer.Option("--risk", "-r", help="low|medium|high.")] = None,
    impact: Annotated[str | None, typer.Option("--impact", "-i", help="low|medium|high.")] = None,
    pipeline: Annotated[
        str | None, typer.Option("--pipeline", "-p", help="Pipeline name (default feature).")
    ] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag (repeatable).")] = None,
    dep: Annotated[
        list[str] | None, typer.Option("--dep", help="An item this depends on (repeatable).")
    ] = None,
    description: Annotated[
        str | None,
        typer.Option(
            "--description",
            "-d",
            help="Free text; 'Context:', 'Problem:', 'Solution:', 'Impact:', "
            "'Sizing rationale:' lines fill the structured fields.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Add an item to the backlog as `new` (triage picks it up)."""
    state = state_of(ctx)
    project = state.project()
    request = NewItemRequest(
        title=title,
        size=parse_size(size),
        complexity=parse_level("complexity")(complexity),
        risk=parse_level("risk")(risk),
        impact=parse_level("impact")(impact),
        pipeline_type=pipeline,
        tags=tuple(tag or ()),
        dependencies=tuple(dep or ()),
        description=description,
    )
    item = backlog.add_item(project.store(), project.config.settings, request)
    if as_json:
        print_json(item_to_dict(item))
        return
    typer.echo(safe(f"Added {item.id} — {item.title} (pipeline: {item.effective_pipeline})"))


def edit(
    ctx: typer.Context,
    item_id: Annotated[str, typer.Argument(metavar="ID")],
    title: Annotated[str | None, typer.Option("--title")] = None,
    size: Annotated[str | None, typer.Option("--size", help="s/m/l, or 'none' to clear.")] = None,
    complexity: Annotated[str | None, typer.Option("--complexity", help="l/m/h or 'none'.")] = None,
    risk: Annotated[str | None, typer.Option("--risk", help="l/m/h or 'none'.")] = None,
    impact: Annotated[str | None, typer.Option("--impact", help="l/m/h or 'none'.")] = None,
    pipeline: Annotated[str | None, typer.Option("--pipeline")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Replace all tags.")] = None,
    add_tag: Annotated[list[str] | None, typer.Option("--add-tag")] = None,
    remove_tag: Annotated[list[str] | None, typer.Option("--remove-tag")] = None,
    dep: Annotated[
        list[str] | None, typer.Option("--dep", help="Replace all dependencies.")
    ] = None,
    add_dep: Annotated[list[str] | None, typer.Option("--add-dep")] = None,
    remove_dep: Annotated[list[str] | None, typer.Option("--remove-dep")] = None,
    description: Annotated[
        str | None, typer.Option("--description", help="New description ('' clears it).")
    ] = None,
    human_review: Annotated[
        bool | None,
        typer.Option("--human-review/--no-human-review", help="Require a human after scoping."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Change an item's fields; only the options given change."""
    project = state_of(ctx).project()
    size_value: Size | object | None = UNSET if size is None else parse_clearable_size(size)
    levels: dict[str, Level | object | None] = {
        name: UNSET if raw is None else parse_clearable_level(name, raw)
        for name, raw in (("complexity", complexity), ("risk", risk), ("impact", impact))
    }
    request = EditRequest(
        title=UNSET if title is None else title,
        size=size_value,  # type: ignore[arg-type]
        complexity=levels["complexity"],  # type: ignore[arg-type]
        risk=levels["risk"],  # type: ignore[arg-type]
        impact=levels["impact"],  # type: ignore[arg-type]
        pipeline_type=UNSET if pipeline is None else pipeline,
        tags=UNSET if tag is None else tuple(tag),
        add_tags=tuple(add_tag or ()),
        remove_tags=tuple(remove_tag or ()),
        dependencies=UNSET if dep is None else tuple(dep),
        add_dependencies=tuple(add_dep or ()),
        remove_dependencies=tuple(remove_dep or ()),
        description=UNSET if description is None else description,
        requires_human_review=UNSET if human_review is None else human_review,
    )
    item = backlog.edit_item(project.store(), project.config.settings, item_id, request)
    if as_json:
        print_json(item_to_dict(item))
        return
    typer.echo(f"Updated {item.id}")


def advance(
    ctx: typer.Context,
    item_id: Annotated[str, typer.Argument(metavar="ID")],
    to: Annotated[
        str | None, typer.Option("--to", metavar="PHASE", help="A main phase to jump to.")
    ] = None,
) -> None:
    """Move an in-progress item to its next main phase (or --to a named one)."""
    project = state_of(ctx).project()
    item = backlog.advance_item(project.store(), project.config.settings, item_id, to)
    typer.echo(safe(f"{item.id} → {item.phase}"))


def unblock(
    ctx: typer.Context,
    item_id: Annotated[str, typer.Argument(metavar="ID")],
    notes: Annotated[
        str | None, typer.Option("--notes", help="Context for the next agent run.")
    ] = None,
) -> None:
    """Return a blocked item to the status it was blocked from."""
    item = backlog.unblock_item(state_of(ctx).store(), item_id, notes)
    typer.echo(safe(f"{item.id} unblocked → {item.status.value}"))


def close(
    ctx: typer.Context,
    item_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option("--reason", help="Why it is not being done.")],
) -> None:
    """Take an item off the active backlog without doing it (kept in the archive)."""
    item = backlog.close_item(state_of(ctx).store(), item_id, reason)
    typer.echo(safe(f"{item.id} closed: {item.closed_reason}"))
