"""Parsers for the options of `add` and `edit`: sizes and levels, clearable with 'none'."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer

from phase_golem.domain.errors import ParseError
from phase_golem.domain.items import Level, Size

T = TypeVar("T")


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
