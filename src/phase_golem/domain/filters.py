"""`run --only KEY=VALUE[,VALUE…]` filters, with Phase Golem's syntax and logic.

Values of one criterion are OR'd; separate criteria are AND'd. A scalar field may appear
in one criterion only (use commas); `tag` may repeat (the item needs every tag), but not
with the same values twice. An item with no value for a field never matches it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from phase_golem.domain.errors import DomainError, ParseError
from phase_golem.domain.items import Item, ItemStatus, Level, Size


class FilterError(DomainError):
    pass


class FilterField(StrEnum):
    STATUS = "status"
    IMPACT = "impact"
    SIZE = "size"
    RISK = "risk"
    COMPLEXITY = "complexity"
    TAG = "tag"
    PIPELINE_TYPE = "pipeline_type"


_VALID_FIELDS = ", ".join(f.value for f in FilterField)
_LEVEL_FIELDS = (FilterField.IMPACT, FilterField.RISK, FilterField.COMPLEXITY)


@dataclass(frozen=True, slots=True)
class Criterion:
    field: FilterField
    values: tuple[str, ...]

    def matches(self, item: Item) -> bool:
        if self.field is FilterField.TAG:
            return any(value in item.tags for value in self.values)
        actual = _field_value(item, self.field)
        return actual is not None and actual in self.values

    def __str__(self) -> str:
        return f"{self.field.value}={','.join(self.values)}"


def _field_value(item: Item, field: FilterField) -> str | None:
    if field is FilterField.STATUS:
        return item.status.value
    if field is FilterField.PIPELINE_TYPE:
        return item.pipeline_type
    value = getattr(item, field.value)
    return None if value is None else str(value.value)


def _canonical_value(field: FilterField, raw: str, token: str) -> str:
    try:
        if field is FilterField.STATUS:
            return ItemStatus.parse(raw).value
        if field is FilterField.SIZE:
            return Size.parse(raw).value
        if field in _LEVEL_FIELDS:
            return Level.parse(raw).value
    except ParseError:
        valid = {
            FilterField.STATUS: ", ".join(s.value for s in ItemStatus),
            FilterField.SIZE: ", ".join(s.value for s in Size),
        }.get(field, ", ".join(level.value for level in Level))
        raise FilterError(
            f"invalid value {raw!r} for {field.value} in filter {token!r}; valid values: {valid}"
        ) from None
    return raw


def parse_criterion(token: str) -> Criterion:
    """One `--only` argument → a criterion, or a FilterError saying exactly what is wrong."""
    if "=" not in token:
        raise FilterError(f"filter {token!r} must be KEY=VALUE[,VALUE...]")
    key, _, raw_values = token.partition("=")
    key = key.strip().lower()
    if not key:
        raise FilterError(f"filter {token!r} has an empty key; valid keys: {_VALID_FIELDS}")
    try:
        field = FilterField(key)
    except ValueError:
        raise FilterError(f"unknown filter key {key!r}; valid keys: {_VALID_FIELDS}") from None
    values: list[str] = []
    for part in raw_values.split(","):
        clean = part.strip()
        if not clean:
            raise FilterError(f"filter {token!r} has an empty value")
        value = _canonical_value(field, clean, token)
        if value in values:
            raise FilterError(f"filter {token!r} lists {value!r} twice")
        values.append(value)
    return Criterion(field, tuple(values))


@dataclass(frozen=True, slots=True)
class Filter:
    criteria: tuple[Criterion, ...]

    def matches(self, item: Item) -> bool:
        return all(criterion.matches(item) for criterion in self.criteria)

    def select(self, items: Iterable[Item]) -> list[Item]:
        return [item for item in items if self.matches(item)]

    def __str__(self) -> str:
        return " AND ".join(str(c) for c in self.criteria)


def parse_filters(tokens: Sequence[str]) -> Filter | None:
    """All `--only` flags → one filter (None when there are none)."""
    if not tokens:
        return None
    criteria: list[Criterion] = []
    for token in tokens:
        criterion = parse_criterion(token)
        for earlier in criteria:
            if earlier.field is not criterion.field:
                continue
            if criterion.field is not FilterField.TAG:
                raise FilterError(
                    f"{criterion.field.value} is given in more than one --only; "
                    f"use commas instead: --only {criterion.field.value}="
                    f"{','.join(earlier.values + criterion.values)}"
                )
            if set(earlier.values) == set(criterion.values):
                raise FilterError(f"filter {criterion} is given twice")
        criteria.append(criterion)
    return Filter(tuple(criteria))
