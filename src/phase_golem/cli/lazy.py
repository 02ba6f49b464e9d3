"""A click group that imports a command's module only when that command is used.

`phase-golem --help` lists every command from `cli/commands.py` without importing any of
them; `phase-golem status` imports the status module and nothing of `run`'s engine.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import click

from phase_golem.cli.commands import CommandSpec


def build_command(spec: CommandSpec) -> click.Command:
    """The spec's click command as is, or the one typer derives from its function or app."""
    target = getattr(importlib.import_module(spec.module), spec.attribute)
    if isinstance(target, click.Command):
        target.name = spec.name  # the list's name is the one users type
        return target
    import typer

    if isinstance(target, typer.Typer):
        app = target
    else:
        # Plain click help: typer's rich help would import rich for every `--help`.
        app = typer.Typer(
            rich_markup_mode=None, add_completion=False, pretty_exceptions_enable=False
        )
        app.command(spec.name)(target)
    command = typer.main.get_command(app)
    command.name = spec.name
    return command


class LazyGroup(click.Group):
    def __init__(self, *args: Any, specs: Sequence[CommandSpec], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.specs = {spec.name: spec for spec in specs}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.specs, *(name for name in self.commands if name not in self.specs)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            spec = self.specs.get(cmd_name)
            if spec is None:
                return None
            self.commands[cmd_name] = build_command(spec)
        return self.commands[cmd_name]

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(spec.name, spec.help) for spec in self.specs.values()]
        rows += [
            (name, command.get_short_help_str())
            for name, command in self.commands.items()
            if name not in self.specs and not command.hidden
        ]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
