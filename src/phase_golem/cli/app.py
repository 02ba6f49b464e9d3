"""The `phase-golem` command: global options, command registration, and error handling.

Every failure ends as one line on stderr and a documented exit code (DESIGN §9);
a traceback is only ever written to `.phase-golem/logs/errors.log`.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import click
import typer

from phase_golem import __version__
from phase_golem.cli.context import CliState
from phase_golem.config import ConfigError
from phase_golem.domain.errors import DomainError
from phase_golem.errors import ExitCode
from phase_golem.interchange.backlog_yaml import BacklogFormatError
from phase_golem.project import ProjectError
from phase_golem.store import NotFoundError, StoreError

app = typer.Typer(
    name="phase-golem",
    help="Work through a backlog with AI coding agents, durably.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

LOG_LEVELS = ("error", "warn", "info", "debug")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"phase-golem {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    root: Annotated[
        Path | None,
        typer.Option(
            "--root",
            help="Project root (default: the nearest directory with .phase-golem/ or "
            "phase-golem.toml, else the current one).",
            file_okay=False,
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Config file; workflow paths resolve relative to its directory.",
            dir_okay=False,
        ),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option("--log-level", help="error, warn, info or debug (messages go to stderr)."),
    ] = "info",
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    if log_level.lower() not in LOG_LEVELS:
        raise typer.BadParameter(
            f"{log_level!r} is not one of {', '.join(LOG_LEVELS)}", param_hint="--log-level"
        )
    level = log_level.lower()
    logging.basicConfig(
        level={"warn": logging.WARNING}.get(level, getattr(logging, level.upper())),
        stream=sys.stderr,
        format="phase-golem: %(levelname)s: %(message)s",
        force=True,
    )
    ctx.obj = CliState(root=root, config_path=config, log_level=level)


def _register() -> None:
    from phase_golem.cli import items, ledger, run, schema, transfer, verify

    schema.register(app)  # issue 11: the agent contract, published
    items.register(app)
    ledger.register(app)
    transfer.register(app)
    run.register(app)
    verify.register(app)


_register()


def _log_internal_error(state: CliState | None) -> str:
    details = traceback.format_exc()
    root = state.resolved_root() if state is not None else Path.cwd()
    log_dir = root / ".phase-golem" / "logs"
    if (root / ".phase-golem").is_dir():
        try:
            log_dir.mkdir(mode=0o700, exist_ok=True)
            target = log_dir / "errors.log"
            with target.open("a", encoding="utf-8") as handle:
                handle.write(f"--- {datetime.now(UTC).isoformat()}\n{details}\n")
            target.chmod(0o600)
            return str(target)
        except OSError:
            pass
    return "stderr (run with --log-level debug)"


def _fail(message: str, code: ExitCode) -> int:
    sys.stderr.write(f"phase-golem: error: {message}\n")
    return int(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code instead of raising, for tests and the script."""
    command = typer.main.get_command(app)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        result = command.main(args=args, prog_name="phase-golem", standalone_mode=False)
        return int(result or 0)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        return _fail("aborted", ExitCode.BAD_INPUT)
    except click.ClickException as exc:
        return _fail(exc.format_message().replace("\n", " "), ExitCode.BAD_INPUT)
    except (ConfigError, BacklogFormatError) as exc:
        return _fail(str(exc), ExitCode.BAD_INPUT)
    except (DomainError, NotFoundError) as exc:
        return _fail(str(exc), ExitCode.BAD_INPUT)
    except (ProjectError, StoreError) as exc:
        # A database that cannot be opened or written is a precondition, not our bug.
        return _fail(str(exc), ExitCode.PRECONDITION)
    except KeyboardInterrupt:
        return _fail("interrupted", ExitCode.BAD_INPUT)
    except BrokenPipeError:
        return int(ExitCode.OK)
    except Exception as exc:
        where = _log_internal_error(CliState.from_argv(args))
        return _fail(
            f"internal error ({type(exc).__name__}: {exc}); details in {where}", ExitCode.INTERNAL
        )


def run() -> None:
    sys.exit(main())
