"""What every command shares: global options, the loaded project, option parsers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import typer

from phase_golem.domain.errors import ParseError
from phase_golem.domain.items import Level, Size
from phase_golem.project import Project, find_root, load_project
from phase_golem.store import Store

T = TypeVar("T")


@dataclass
class CliState:
    root: Path | None = None
    config_path: Path | None = None
    log_level: str = "info"
    _project: Project | None = field(default=None, repr=False)

    def resolved_root(self) -> Path:
        return self.root.resolve() if self.root is not None else find_root(Path.cwd())

    def project(self) -> Project:
        if self._project is None:
            self._project = load_project(self.root, self.config_path)
        return self._project

    def store(self) -> Store:
        return self.project().store()

    @classmethod
    def from_argv(cls, args: Sequence[str]) -> CliState:
        """Best-effort recovery of --root after a crash, to know where to log it."""
        for index, arg in enumerate(args):
            if arg == "--root" and index + 1 < len(args):
                return cls(root=Path(args[index + 1]))
            if arg.startswith("--root="):
                return cls(root=Path(arg.split("=", 1)[1]))
        return cls()


def state_of(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    if not isinstance(obj, CliState):
        obj = CliState()
        ctx.find_root().obj = obj
    return obj


def _enum_option(
    parse: Callable[[str], T], *, allow_none: bool
) -> Callable[[str | None], T | None]:
    def convert(raw: str | None) -> T | None:
        if raw is None:
            return None
        if allow_none and raw.strip().lower() in ("none", "-", ""):
            return None
        try:
            return parse(raw)
        except ParseError as exc:
            raise typer.BadParameter(str(exc)) from None

    return convert


def parse_size(raw: str | None) -> Size | None:
    return _enum_option(lambda v: Size.parse(v, what="size"), allow_none=False)(raw)


def parse_level(what: str) -> Callable[[str | None], Level | None]:
    return _enum_option(lambda v: Level.parse(v, what=what), allow_none=False)


def parse_clearable_size(raw: str) -> Size | None:
    return _enum_option(lambda v: Size.parse(v, what="size"), allow_none=True)(raw)


def parse_clearable_level(what: str, raw: str) -> Level | None:
    return _enum_option(lambda v: Level.parse(v, what=what), allow_none=True)(raw)
