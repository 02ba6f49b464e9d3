"""Output for scripts (JSON with DESIGN §4 names) and plain lines: no rich, cheap to import."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable
from typing import Any

from phase_golem.domain.events import LedgerEvent
from phase_golem.domain.redaction import redact, redact_text
from phase_golem.domain.text import one_line, printable

# Inside JSON strings these are legal raw, but a terminal acts on them (C1 controls such as
# CSI, bidi overrides) or they cannot be encoded (lone surrogates): written as \u escapes.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def safe(text: object) -> str:
    """What we print of text we did not write: one line, escapes shown, secrets removed."""
    return one_line(redact_text(str(text)))


def safe_block(text: object) -> str:
    """As `safe`, but newlines are kept (a description, a multi-line reason)."""
    return printable(redact_text(str(text)))


def json_text(value: Any, **options: Any) -> str:
    dumped = json.dumps(redact(value), ensure_ascii=False, **options)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", dumped)


def print_json(value: Any) -> None:
    sys.stdout.write(json_text(value, indent=2) + "\n")


def print_json_array(values: Iterable[Any]) -> None:
    """Exactly what `print_json(list(values))` prints, written as the values come.

    A large backlog is never held as one string: each element is indented on its own.
    """
    out = sys.stdout
    first = True
    for value in values:
        element = json_text(value, indent=2).replace("\n", "\n  ")
        out.write(("[\n  " if first else ",\n  ") + element)
        first = False
    out.write("[]\n" if first else "\n]\n")


def ndjson_line(value: Any) -> str:
    return json_text(value, separators=(",", ":")) + "\n"


def print_ndjson(values: Iterable[Any]) -> None:
    for value in values:
        sys.stdout.write(ndjson_line(value))
    sys.stdout.flush()


def event_line(event: LedgerEvent) -> str:
    subject = " ".join(part for part in (event.item_id, event.run_id) if part)
    data = json_text(dict(event.data), separators=(",", ":"), sort_keys=True)
    return safe(f"{event.seq:>6}  {event.at[:23]}  {event.kind.value:<22} {subject:<20} {data}")
