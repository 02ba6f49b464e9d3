"""What every command shares: the global options and the project they name.

Cheap to import (it runs for every command): the project, its config and its store are
imported and opened only when a command asks for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from phase_golem.project import Project
    from phase_golem.store import Store

SQL_INT_MAX = 2**63 - 1  # the largest number a SQLite (or PostgreSQL bigint) column holds


@dataclass
class CliState:
    root: Path | None = None
    config_path: Path | None = None
    log_level: str = "info"
    _project: Project | None = field(default=None, repr=False)

    def resolved_root(self) -> Path:
        from phase_golem.project import find_root

        return self.root.resolve() if self.root is not None else find_root(Path.cwd())

    def _unvalidated_project(self) -> Project:
        if self._project is None:
            from phase_golem.project import Project

            self._project = Project(self.resolved_root(), self.config_path)
        return self._project

    def project(self) -> Project:
        """The project with its config validated: for commands that act on the settings."""
        project = self._unvalidated_project()
        project.load_config()
        return project

    def store(self) -> Store:
        """The store alone; a read-only command needs no more of the config than its URL."""
        return self._unvalidated_project().store()

    @classmethod
    def from_argv(cls, args: Sequence[str]) -> CliState:
        """Best-effort recovery of --root after a crash, to know where to log it."""
        for index, arg in enumerate(args):
            if arg == "--root" and index + 1 < len(args):
                return cls(root=Path(args[index + 1]))
            if arg.startswith("--root="):
                return cls(root=Path(arg.split("=", 1)[1]))
        return cls()


_MOVED_TO_OPTIONS = frozenset(
    {"parse_size", "parse_level", "parse_clearable_size", "parse_clearable_level"}
)


def __getattr__(name: str) -> Any:
    """The option parsers moved to `cli/options.py` (they import typer and the domain);
    imported from here they are loaded on first use, so this module stays light."""
    if name in _MOVED_TO_OPTIONS:
        from phase_golem.cli import options

        return getattr(options, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def state_of(ctx: click.Context) -> CliState:
    obj = ctx.find_root().obj
    if not isinstance(obj, CliState):
        obj = CliState()
        ctx.find_root().obj = obj
    return obj
