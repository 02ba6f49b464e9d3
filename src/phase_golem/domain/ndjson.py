"""Reading NDJSON / JSON-lines text back, the way a crash leaves it.

A writer killed mid-append leaves an incomplete last line. That line is dropped with a
warning naming the file and line; an unparseable line anywhere else is damage, not a
torn append, and is an error naming the file and line. Pure: text in, values out.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from phase_golem.domain.errors import ParseError


class NdjsonError(ParseError):
    """A malformed line that is not the last one."""


@dataclass(frozen=True, slots=True)
class NdjsonParse:
    records: tuple[tuple[int, Any], ...]  # (1-based line number, decoded value)
    warnings: tuple[str, ...]


# What decoding a hostile line can raise: bad JSON, a number of thousands of digits
# (ValueError), nesting deeper than the decoder's recursion allows (RecursionError).
JSON_ERRORS: tuple[type[Exception], ...] = (ValueError, RecursionError)


def json_error_message(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return exc.msg
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)


def torn_line_warning(source: str, number: int, message: str) -> str:
    return f"{source}: line {number}: ignored a torn final line ({message})"


def parse_ndjson(
    text: str,
    source: str,
    *,
    candidate: Callable[[str], bool] = lambda line: True,
    first_line: int = 1,
    on_damage: Callable[[str], None] | None = None,
) -> NdjsonParse:
    """Decode every non-blank line; `candidate` picks the lines that are meant to be JSON
    (an agent's stream may carry plain text between its JSON lines). A damaged line in
    the middle raises, unless `on_damage` takes the message and the line is skipped (for
    streams that are evidence, not state)."""
    lines = [
        (number, line.strip())
        for number, line in enumerate(text.split("\n"), start=first_line)
        if line.strip() and candidate(line.strip())
    ]
    records: list[tuple[int, Any]] = []
    warnings: list[str] = []
    for index, (number, line) in enumerate(lines):
        try:
            records.append((number, json.loads(line)))
        except JSON_ERRORS as exc:
            if index == len(lines) - 1:
                warnings.append(torn_line_warning(source, number, json_error_message(exc)))
                break
            message = f"{source}: line {number}: malformed JSON: {json_error_message(exc)}"
            if on_damage is None:
                raise NdjsonError(message) from None
            on_damage(message)
    return NdjsonParse(tuple(records), tuple(warnings))
