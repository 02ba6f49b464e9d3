"""Commands that run agents or decide for them: run, triage, step, approve, reject, resolve,
resume-agent, demo."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from phase_golem.cli.context import state_of
from phase_golem.cli.live import display, plain_emit
from phase_golem.cli.output import safe
from phase_golem.cli.render import console
from phase_golem.domain.errors import DomainError
from phase_golem.domain.filters import parse_filters
from phase_golem.engine.agent_pauses import resume_agent
from phase_golem.engine.approvals import approve_item, reject_item
from phase_golem.engine.resolution import pick_decision, resolve_run
from phase_golem.engine.selection import RunOptions
from phase_golem.engine.session import check_step_item, run_session, validate_targets

PlainFlag = Annotated[bool, typer.Option("--plain", help="One line per event, even on a terminal.")]


def _finish(ctx: typer.Context, options: RunOptions, plain: bool) -> int:
    project = state_of(ctx).project()
    with display(plain) as (emit, watch):
        summary = run_session(project, options, emit, watch)
    if options.filter is not None:
        plain_emit(f"Filter: {options.filter}")
    for line in summary.lines():
        plain_emit(line)
    if summary.stop_signal is None and summary.all_blocked:
        sys.stderr.write("phase-golem: All targets blocked; no items completed\n")
    return summary.exit_code


def run(
    ctx: typer.Context,
    target: Annotated[
        list[str] | None, typer.Option("--target", help="Work only on these items, in order.")
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="KEY=VALUE[,VALUE] filter; repeat to AND (keys: status, "
            "impact, size, risk, complexity, tag, pipeline_type).",
        ),
    ] = None,
    cap: Annotated[
        int | None, typer.Option("--cap", min=1, max=1_000_000, help="Stop after this many phases.")
    ] = None,
    auto_advance: Annotated[
        bool, typer.Option("--auto-advance", help="Move to the next target when one blocks.")
    ] = False,
    no_sources: Annotated[
        bool,
        typer.Option("--no-sources", help="Do not fire the intake sources ([[sources]])."),
    ] = False,
    plain: PlainFlag = False,
) -> None:
    """Work through the backlog with agents until everything is done or blocked.

    With intake sources configured ([[sources]]), it fires each one when it is due and
    keeps waiting for the next source time, so new work is taken up as it arrives: it
    runs until stopped (Ctrl-C, SIGTERM), `--cap` is reached, or with `--no-sources`.

    After a crash it simply continues: runs whose agent still lives are adopted, others are
    retried, and side-effect phases that may have acted ask their reconcile check or a human.

    While nothing is due it waits cheaply and notices, within about a second, items added
    or changed from another terminal.

    Needs a git repository on a branch with a clean tree (shared isolation); each phase
    commits exactly the files it touched, `[ID][phase] summary`; files of runs that did not
    succeed stay in the tree as leftovers (`show ID` lists them) and are never committed
    under another item.
    """
    targets = tuple(target or ())
    if targets and only:
        raise DomainError("--target and --only cannot be used together")
    if auto_advance and not targets:
        raise DomainError("--auto-advance needs --target")
    project = state_of(ctx).project()
    validate_targets(project, targets)
    filters = parse_filters(only or [])
    cap = cap or project.config.settings.execution.default_phase_cap
    code = _finish(
        ctx,
        RunOptions(
            targets=targets,
            filter=filters,
            cap=cap,
            auto_advance=auto_advance,
            sources=not no_sources,
        ),
        plain,
    )
    raise typer.Exit(code)


def triage(ctx: typer.Context, plain: PlainFlag = False) -> None:
    """Triage every new item, then stop."""
    raise typer.Exit(_finish(ctx, RunOptions(triage_only=True), plain))


def step(
    ctx: typer.Context,
    item_id: Annotated[str, typer.Argument(metavar="ID")],
    plain: PlainFlag = False,
) -> None:
    """Run exactly one phase (or triage) of one item, guardrails bypassed."""
    check_step_item(state_of(ctx).project(), item_id)
    raise typer.Exit(_finish(ctx, RunOptions(step_item=item_id), plain))


def approve(
    ctx: typer.Context,
    item_id: Annotated[str, typer.Argument(metavar="ID")],
    notes: Annotated[str | None, typer.Option("--notes", help="Told to the next agent.")] = None,
) -> None:
    """Let an item that waits for a human decision go on."""
    state = state_of(ctx)
    item = approve_item(state.store(), state.project().config.settings, item_id, notes)
    console().print(safe(f"{item.id} approved → {item.status.value}"), markup=False)


def reject(
    ctx: typer.Context,
    item_id: Annotated[str, typer.Argument(metavar="ID")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept on the item).")],
) -> None:
    """Close an item that waits for a human decision."""
    item = reject_item(state_of(ctx).store(), item_id, reason)
    outcome = "closed" if item.archived else f"sent back to {item.phase}"
    console().print(safe(f"{item.id} rejected and {outcome}"), markup=False)


def resolve(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    happened: Annotated[
        bool, typer.Option("--happened", help="It did act: the phase counts as complete.")
    ] = False,
    not_happened: Annotated[
        bool, typer.Option("--not-happened", help="It did not act: run the phase again.")
    ] = False,
    skip: Annotated[
        bool, typer.Option("--skip", help="Skip the phase; the item moves past it.")
    ] = False,
) -> None:
    """Decide a side-effect run that may or may not have acted (paused:indeterminate).

    Exactly one of --happened, --not-happened or --skip. The run's status stays; the
    decision is recorded in its mutation (and a retry run for --not-happened), in one
    transaction with its ledger event.
    """
    decision = pick_decision(happened, not_happened, skip)
    state = state_of(ctx)
    resolved = resolve_run(state.store(), state.project().config.settings, run_id, decision)
    console().print(safe(resolved.line(decision)), markup=False)


def resume_agent_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="claude, codex, opencode, …")],
) -> None:
    """Let a paused agent run again (paused after repeated rate limits or when unavailable)."""
    pause = resume_agent(state_of(ctx).store(), name)
    console().print(
        safe(f"agent {pause.agent} resumed (it was paused: {pause.reason})"), markup=False
    )


def demo(
    directory: Annotated[
        Path | None, typer.Argument(help="Where to build the demo project (default: a temp dir).")
    ] = None,
) -> None:
    """Build a small project and run the whole pipeline with the simulated agent."""
    from phase_golem.cli.demo import run_demo

    raise typer.Exit(run_demo(directory, plain_emit))
