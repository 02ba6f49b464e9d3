"""The structured five-part item description, and the parser for Phase Golem's free-text form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from phase_golem.domain.errors import ParseError

DESCRIPTION_FIELDS: tuple[str, ...] = (
    "context",
    "problem",
    "solution",
    "impact",
    "sizing_rationale",
)
_DESCRIPTION_HEADERS: tuple[tuple[str, str], ...] = (
    ("context:", "context"),
    ("problem:", "problem"),
    ("solution:", "solution"),
    ("impact:", "impact"),
    ("sizing rationale:", "sizing_rationale"),
)


@dataclass(frozen=True, slots=True)
class StructuredDescription:
    context: str = ""
    problem: str = ""
    solution: str = ""
    impact: str = ""
    sizing_rationale: str = ""

    def is_empty(self) -> bool:
        return not any(getattr(self, name) for name in DESCRIPTION_FIELDS)

    def to_dict(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in DESCRIPTION_FIELDS}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> StructuredDescription:
        unknown = set(data) - set(DESCRIPTION_FIELDS)
        if unknown:
            raise ParseError(
                f"unknown description field(s): {', '.join(sorted(unknown))} "
                f"(expected: {', '.join(DESCRIPTION_FIELDS)})"
            )
        values: dict[str, str] = {}
        for name in DESCRIPTION_FIELDS:
            value = data.get(name)
            if value is None:
                continue
            if not isinstance(value, str):
                raise ParseError(f"description.{name} must be a string")
            values[name] = value
        return cls(**values)


def parse_freeform_description(text: str) -> tuple[StructuredDescription, bool]:
    """Split a schema-v2 free-text description on its `Header:` lines.

    Returns the structure and whether the text conformed (had at least one header).
    Lines before the first header belong to `context`; a repeated header replaces
    the earlier section entirely, as Phase Golem's v2→v3 migration does.
    """
    sections: dict[str, list[str]] = {}
    current = "context"
    preamble: list[str] = []
    saw_header = False
    for line in text.splitlines():
        stripped = line.strip()
        lowered = stripped.lower()
        for header, name in _DESCRIPTION_HEADERS:
            if lowered.startswith(header):
                saw_header = True
                current = name
                rest = stripped[len(header) :].strip()
                sections[name] = [rest] if rest else []
                break
        else:
            if saw_header:
                sections[current].append(line)
            else:
                preamble.append(line)
    if not saw_header:
        return StructuredDescription(context=text.strip()), False
    if any(part.strip() for part in preamble):
        context_lines = preamble + sections.get("context", [])
        sections["context"] = context_lines
    values = {name: "\n".join(lines).strip() for name, lines in sections.items()}
    return StructuredDescription(**values), True
