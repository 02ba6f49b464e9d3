"""Command templates (`{prompt_file}`, `{item}`, …): which placeholders exist, and filling them.

A template is split like a shell line (no shell runs it) and each `{name}` in a word is
replaced by its value. A name we do not know (`{result_fille}`) is a config error, found
at load time rather than passed to the program as literal text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

COMMAND_PLACEHOLDERS = ("prompt_file", "result_file", "item", "phase", "run_id", "model")
RECONCILE_PLACEHOLDERS = ("item", "phase", "run_id", "branch", "key")

_PLACEHOLDER = re.compile(r"\{([^{}\s]{0,64})\}")


def unknown_placeholders(template: str, allowed: Iterable[str]) -> list[str]:
    """Each `{name}` in `template` that is not one of `allowed`, in order, once."""
    known = set(allowed)
    found: list[str] = []
    for match in _PLACEHOLDER.finditer(template):
        name = match.group(1)
        if name not in known and name not in found:
            found.append(name)
    return found


def fill(word: str, values: Mapping[str, str]) -> str:
    for name, value in values.items():
        word = word.replace("{" + name + "}", value)
    return word
