"""Every command of `phase-golem`, named without importing it.

A command's module (and everything it pulls in: the engine, the agents, git helpers,
rich, pydantic) is imported only when that command runs, so `--version` and `--help` cost
about what importing click does. Each entry names the function (or `typer.Typer`) that
implements the command and carries the first paragraph of its help for the command list;
`tests/test_cli_startup.py` checks that the two never drift apart.

To add a command: write it as a typer function (or, where start-up matters, a click
command) in a module of `phase_golem.cli`, then add one line here.
"""

from __future__ import annotations

from typing import NamedTuple


class CommandSpec(NamedTuple):
    name: str
    target: str  # "package.module:attribute": a click command, a typer function or typer.Typer
    help: str  # the first paragraph of the command's help, shown by `phase-golem --help`

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    @property
    def attribute(self) -> str:
        return self.target.partition(":")[2]


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec(
        "init",
        "phase_golem.cli.items:init",
        "Set up phase-golem in this git repository (safe to run again).",
    ),
    CommandSpec(
        "add",
        "phase_golem.cli.items:add",
        "Add an item to the backlog as `new` (triage picks it up).",
    ),
    CommandSpec(
        "status",
        "phase_golem.cli.status:status",
        "The backlog at a glance: counts by status and the first rows of each (in progress, "
        "blocked, ready, scoping, new; done and closed with --all).",
    ),
    CommandSpec(
        "show",
        "phase_golem.cli.show:show",
        "One item with its runs and its ledger events.",
    ),
    CommandSpec(
        "edit",
        "phase_golem.cli.items:edit",
        "Change an item's fields; only the options given change.",
    ),
    CommandSpec(
        "advance",
        "phase_golem.cli.items:advance",
        "Move an in-progress item to its next main phase (or --to a named one).",
    ),
    CommandSpec(
        "unblock",
        "phase_golem.cli.items:unblock",
        "Return a blocked item to the status it was blocked from.",
    ),
    CommandSpec(
        "close",
        "phase_golem.cli.items:close",
        "Take an item off the active backlog without doing it (kept in the archive).",
    ),
    CommandSpec(
        "log",
        "phase_golem.cli.ledger:log",
        "The ledger: every state change, in order (paged in the database).",
    ),
    CommandSpec(
        "import",
        "phase_golem.cli.transfer:import_command",
        "Import items; all or nothing (an error changes nothing).",
    ),
    CommandSpec(
        "export",
        "phase_golem.cli.transfer:export_command",
        "Write the backlog as Phase Golem BACKLOG.yaml schema v3 or as task-golem JSONL, or "
        "(--ledger) the ledger as NDJSON; files are replaced atomically.",
    ),
    CommandSpec(
        "migrate-store",
        "phase_golem.cli.migrate_store:migrate_store",
        "Copy this project's SQLite store into an empty PostgreSQL database, in one "
        "transaction (the SQLite file is only read).",
    ),
    CommandSpec(
        "run",
        "phase_golem.cli.run:run",
        "Work through the backlog with agents until everything is done or blocked.",
    ),
    CommandSpec(
        "triage",
        "phase_golem.cli.run:triage",
        "Triage every new item, then stop.",
    ),
    CommandSpec(
        "step",
        "phase_golem.cli.run:step",
        "Run exactly one phase (or triage) of one item, guardrails bypassed.",
    ),
    CommandSpec(
        "approve",
        "phase_golem.cli.run:approve",
        "Let an item that waits for a human decision go on.",
    ),
    CommandSpec(
        "reject",
        "phase_golem.cli.run:reject",
        "Close an item that waits for a human decision.",
    ),
    CommandSpec(
        "resolve",
        "phase_golem.cli.run:resolve",
        "Decide a side-effect run that may or may not have acted (paused:indeterminate).",
    ),
    CommandSpec(
        "runs",
        "phase_golem.cli.runs:runs",
        "Every attempt, newest first (paged in the database).",
    ),
    CommandSpec(
        "demo",
        "phase_golem.cli.run:demo",
        "Build a small project and run the whole pipeline with the simulated agent.",
    ),
    CommandSpec(
        "resume-agent",
        "phase_golem.cli.run:resume_agent_command",
        "Let a paused agent run again (paused after repeated rate limits or when unavailable).",
    ),
    CommandSpec(
        "verify",
        "phase_golem.cli.verify:verify_command",
        "Re-hash every receipt's artifacts and report each mismatch.",
    ),
    CommandSpec(
        "pause",
        "phase_golem.cli.control:pause",
        "Stop every `run` of this project starting new runs; running agents finish.",
    ),
    CommandSpec(
        "resume",
        "phase_golem.cli.control:resume",
        "Let the scheduler start runs again after `phase-golem pause`.",
    ),
    CommandSpec(
        "retry",
        "phase_golem.cli.control:retry",
        "Give a blocked item a fresh visit of its phase, its last failure in the prompt.",
    ),
    CommandSpec(
        "watch",
        "phase_golem.cli.watch:watch",
        "Watch a `run` working elsewhere: agents now, latest events, totals (read-only).",
    ),
    CommandSpec(
        "sources",
        "phase_golem.cli.sources:app",
        "Intake sources: each source's schedule, next and last run, last error and counts; "
        "`sources run [NAME]` runs them now.",
    ),
    CommandSpec(
        "notifications",
        "phase_golem.cli.notifications:app",
        "The notifications outbox: every one is delivered at least once, with the same "
        "Idempotency-Key each time (a receiver drops repeats by it).",
    ),
    CommandSpec(
        "serve",
        "phase_golem.cli.serve:serve",
        "The web dashboard: board, decisions, runs and live updates, on 127.0.0.1 by default.",
    ),
    CommandSpec(
        "schema",
        "phase_golem.cli.schema:schema_command",
        "Print the JSON Schema of a file agents write (result: the agent contract).",
    ),
)
