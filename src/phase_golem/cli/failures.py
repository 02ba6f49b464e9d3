"""What every error line is made safe by, before it is printed.

- Arguments must be text: bytes that are not UTF-8 (which Python keeps as lone surrogates)
  are refused at once, before any command runs, so none can reach the store.
- An error line is one line: secrets are redacted, newlines and terminal escapes in what we
  echo back (an ID, a key, a title) are shown escaped.
"""

from __future__ import annotations

from collections.abc import Sequence

from phase_golem.domain.redaction import redact_text
from phase_golem.domain.text import one_line, text_problem


def argument_problem(args: Sequence[str]) -> str | None:
    """Why the command line cannot be used, or None."""
    for index, arg in enumerate(args, start=1):
        problem = text_problem(arg)
        if problem is None:
            continue
        shown = one_line(arg.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
        if "NUL" in problem:
            return f"argument {index} ({shown!r}) {problem}"
        return f"argument {index} ({shown!r}) is not valid UTF-8"
    return None


def error_line(message: str) -> str:
    """`message` as one printable line with no secret in it."""
    return one_line(redact_text(message))
