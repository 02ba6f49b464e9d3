"""Output for scripts (JSON with DESIGN §4 names) and plain lines: no rich, cheap to import."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

from phase_golem.domain.events import LedgerEvent


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def print_json_array(values: Iterable[Any]) -> None:
    """Exactly what `print_json(list(values))` prints, written as the values come.

    A large backlog is never held as one string: each element is indented on its own.
    """
    out = sys.stdout
    first = True
    for value in values:
        element = json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n  ")
        out.write(("[\n  " if first else ",\n  ") + element)
        first = False
    out.write("[]\n" if first else "\n]\n")


def ndjson_line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n"


def print_ndjson(values: Iterable[Any]) -> None:
    for value in values:
        sys.stdout.write(ndjson_line(value))
    sys.stdout.flush()


def event_line(event: LedgerEvent) -> str:
    subject = " ".join(part for part in (event.item_id, event.run_id) if part)
    data = json.dumps(dict(event.data), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return f"{event.seq:>6}  {event.at[:23]}  {event.kind.value:<22} {subject:<20} {data}"
