"""The `phase-golem` command: global options, the command list, and error handling.

Every failure ends as one line on stderr and a documented exit code (DESIGN §9);
a traceback is only ever written to `.phase-golem/logs/errors.log`.

Start-up is paid by every command (DESIGN §3, cost rules): this module imports click and
nothing heavy. Commands are declared in `cli/commands.py` and imported when invoked.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from phase_golem import __version__
from phase_golem.cli.commands import COMMANDS
from phase_golem.cli.context import CliState
from phase_golem.cli.failures import argument_problem, error_line
from phase_golem.cli.lazy import LazyGroup
from phase_golem.errors import ExitCode, known_error_code
from phase_golem.secrets import register_environment_secrets

LOG_LEVELS = ("error", "warn", "info", "debug")


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"phase-golem {__version__}")
        ctx.exit()


def _check_log_level(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    level = value.lower()
    if level not in LOG_LEVELS:
        raise click.BadParameter(f"{value!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


@click.group(
    "phase-golem",
    cls=LazyGroup,
    specs=COMMANDS,
    no_args_is_help=True,
    help="Work through a backlog with AI coding agents, durably.",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    help="Project root (default: the nearest directory with .phase-golem/ or "
    "phase-golem.toml, else the current one).",
)
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file; workflow paths resolve relative to its directory.",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    callback=_check_log_level,
    help="error, warn, info or debug (messages go to stderr).",
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Print the version.",
)
@click.pass_context
def app(ctx: click.Context, root: Path | None, config: Path | None, log_level: str) -> None:
    import logging

    from phase_golem.cli.log_format import OneLineFormatter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter())
    logging.basicConfig(
        level={"warn": logging.WARNING}.get(log_level, getattr(logging, log_level.upper())),
        handlers=[handler],
        force=True,
    )
    ctx.obj = CliState(root=root, config_path=config, log_level=log_level)


def _log_internal_error(state: CliState | None) -> str:
    import traceback
    from datetime import UTC, datetime

    from phase_golem.domain.redaction import redact_text
    from phase_golem.safe_files import ensure_private_directory

    details = redact_text(traceback.format_exc())
    root = state.resolved_root() if state is not None else Path.cwd()
    log_dir = root / ".phase-golem" / "logs"
    if (root / ".phase-golem").is_dir():
        try:
            ensure_private_directory(log_dir)
            target = log_dir / "errors.log"
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            with os.fdopen(os.open(target, flags, 0o600), "a", encoding="utf-8") as handle:
                handle.write(f"--- {datetime.now(UTC).isoformat()}\n{details}\n")
            return str(target)
        except OSError:
            pass
    return "stderr (run with --log-level debug)"


def _fail(message: str, code: ExitCode) -> int:
    sys.stderr.write(f"phase-golem: error: {error_line(message)}\n")
    return int(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code instead of raising, for tests and the script."""
    args = list(sys.argv[1:] if argv is None else argv)
    problem = argument_problem(args)
    if problem is not None:
        return _fail(problem, ExitCode.BAD_INPUT)
    register_environment_secrets(os.environ)
    try:
        result = app.main(args=args, prog_name="phase-golem", standalone_mode=False)
        return int(result or 0)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.exceptions.Abort:
        return _fail("aborted", ExitCode.BAD_INPUT)
    except click.ClickException as exc:
        return _fail(exc.format_message().replace("\n", " "), ExitCode.BAD_INPUT)
    except KeyboardInterrupt:
        return _fail("interrupted", ExitCode.BAD_INPUT)
    except BrokenPipeError:
        return int(ExitCode.OK)
    except Exception as exc:
        code = known_error_code(exc)
        if code is not None:
            return _fail(str(exc), code)
        from phase_golem.faults import os_fault

        fault = os_fault(exc)
        if fault is not None:
            return _fail(fault, ExitCode.PRECONDITION)
        where = _log_internal_error(CliState.from_argv(args))
        return _fail(
            f"internal error ({type(exc).__name__}: {exc}); details in {where}", ExitCode.INTERNAL
        )


def run() -> None:
    sys.exit(main())
