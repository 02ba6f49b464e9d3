"""The guardrails: how large, complex and risky an item may be assessed and still run
unattended (larger ones wait for a human)."""

from __future__ import annotations

from dataclasses import dataclass

from phase_golem.domain.items import Item, Level, Size


@dataclass(frozen=True, slots=True)
class Guardrails:
    max_size: Size = Size.MEDIUM
    max_complexity: Level = Level.MEDIUM
    max_risk: Level = Level.LOW


# `step` bypasses the guardrails: a person asked for exactly this phase.
NO_GUARDRAILS = Guardrails(max_size=Size.LARGE, max_complexity=Level.HIGH, max_risk=Level.HIGH)


def guardrail_violations(item: Item, guardrails: Guardrails) -> list[str]:
    """Each dimension over its maximum, as readable text; a missing value is no concern."""
    problems: list[str] = []
    if item.size is not None and item.size > guardrails.max_size:
        problems.append(f"size {item.size.value} > {guardrails.max_size.value}")
    if item.complexity is not None and item.complexity > guardrails.max_complexity:
        problems.append(f"complexity {item.complexity.value} > {guardrails.max_complexity.value}")
    if item.risk is not None and item.risk > guardrails.max_risk:
        problems.append(f"risk {item.risk.value} > {guardrails.max_risk.value}")
    return problems


def passes_guardrails(item: Item, guardrails: Guardrails) -> bool:
    return not guardrail_violations(item, guardrails)
