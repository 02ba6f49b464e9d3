"""Text that is safe to store and safe to print.

- `printable` / `one_line`: what we echo back (tables, panels, error lines) shows control
  characters escaped (`\\x1b[2J` is printed as text, never cleared a screen), including C1
  controls, bidirectional overrides and lone surrogates; `one_line` escapes newlines too,
  so an ID or key with a newline never makes an error span two lines.
- `text_problem` / `check_text`: text we store may not hold a NUL (git, environment
  variables and C strings cannot carry one) or a lone surrogate (not encodable as UTF-8).
"""

from __future__ import annotations

import re

from phase_golem.domain.errors import ParseError

# C0 controls but tab and newline, DEL, C1 controls, bidi embeddings/overrides/isolates,
# line/paragraph separators, and lone surrogates.
_UNPRINTABLE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_UNPRINTABLE_OR_NEWLINE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_NOT_STORABLE = re.compile("[\x00\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with control characters shown escaped; newlines and tabs are kept."""
    if not _UNPRINTABLE.search(text):
        return text
    return _UNPRINTABLE.sub(_escape, text)


def one_line(text: str) -> str:
    """`text` escaped as `printable`, and newlines, carriage returns and tabs as well."""
    if not _UNPRINTABLE_OR_NEWLINE.search(text):
        return text
    return _UNPRINTABLE_OR_NEWLINE.sub(_escape, text)


def storable(text: str) -> str:
    """`text` with what no store can hold (a NUL, a lone surrogate) written as an escape:
    for evidence such as an agent's error message, which is kept rather than refused."""
    if not _NOT_STORABLE.search(text):
        return text
    return _NOT_STORABLE.sub(_escape, text)


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored, or None."""
    found = _NOT_STORABLE.search(text)
    if found is None:
        return None
    if found.group(0) == "\x00":
        return "contains a NUL character"
    return f"contains an invalid character (lone surrogate U+{ord(found.group(0)):04X})"


def check_text(where: str, text: str) -> str:
    """`text` unchanged, or ParseError naming `where` and what is wrong with it."""
    problem = text_problem(text)
    if problem is not None:
        raise ParseError(f"{where} {problem}")
    return text
