"""Unit tests for `run --only` filters (domain/filters.py), after Phase Golem's filter matrix."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phase_golem.domain.errors import DomainError
from phase_golem.domain.filters import (
    Criterion,
    Filter,
    FilterError,
    FilterField,
    parse_criterion,
    parse_filters,
)
from phase_golem.domain.items import Item, ItemStatus, Level, Size, new_item

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
F = FilterField


def make(**fields: object) -> Item:
    return new_item("WRK-001", "Title", NOW).replace(**fields)


def matches(tokens: list[str], item: Item) -> bool:
    parsed = parse_filters(tokens)
    assert parsed is not None
    return parsed.matches(item)


def error(tokens: list[str]) -> str:
    with pytest.raises(FilterError) as caught:
        parse_filters(tokens)
    return str(caught.value)


# --- syntax ----------------------------------------------------------------------------


def test_no_flags_means_no_filter() -> None:
    assert parse_filters([]) is None


@pytest.mark.parametrize(
    ("token", "field", "values"),
    [
        ("status=ready", F.STATUS, ("ready",)),
        ("status=new,in_progress", F.STATUS, ("new", "in_progress")),
        ("impact=high,medium", F.IMPACT, ("high", "medium")),
        ("size=small", F.SIZE, ("small",)),
        ("risk=low", F.RISK, ("low",)),
        ("complexity=medium", F.COMPLEXITY, ("medium",)),
        ("tag=backend", F.TAG, ("backend",)),
        ("pipeline_type=simple", F.PIPELINE_TYPE, ("simple",)),
        (" size = small , medium ", F.SIZE, ("small", "medium")),
        ("SIZE=SMALL", F.SIZE, ("small",)),
        ("Status=In_Progress", F.STATUS, ("in_progress",)),
        ("tag=a=b", F.TAG, ("a=b",)),
        ("tag=Backend", F.TAG, ("Backend",)),
    ],
)
def test_parse_criterion(token: str, field: FilterField, values: tuple[str, ...]) -> None:
    assert parse_criterion(token) == Criterion(field, values)


@pytest.mark.parametrize(
    ("token", "canonical"),
    [
        ("size=s", "small"),
        ("size=m", "medium"),
        ("size=l", "large"),
        ("impact=l", "low"),
        ("impact=m", "medium"),
        ("impact=h", "high"),
        ("risk=H", "high"),
        ("complexity=L", "low"),
    ],
)
def test_abbreviations_accepted(token: str, canonical: str) -> None:
    assert parse_criterion(token).values == (canonical,)


def test_l_means_large_for_size_and_low_for_levels() -> None:
    parsed = parse_filters(["size=l", "risk=l"])
    assert str(parsed) == "size=large AND risk=low"


@pytest.mark.parametrize("token", ["", "   ", "size", "ready", "size:small"])
def test_token_without_equals_sign(token: str) -> None:
    assert "KEY=VALUE" in error([token])


def test_empty_key() -> None:
    message = error(["=small"])
    assert "empty key" in message
    assert "status, impact, size, risk, complexity, tag, pipeline_type" in message


@pytest.mark.parametrize("token", ["size=", "size= ", "size=small,", "size=,small", "tag=a,,b"])
def test_empty_values(token: str) -> None:
    assert "empty value" in error([token])


@pytest.mark.parametrize("key", ["priority", "sizes", "pipeline-type", "id"])
def test_unknown_key_lists_valid_keys(key: str) -> None:
    message = error([f"{key}=x"])
    assert f"unknown filter key {key!r}" in message
    assert "valid keys: status, impact, size, risk, complexity, tag, pipeline_type" in message


@pytest.mark.parametrize(
    ("token", "valid"),
    [
        ("status=done-ish", "new, scoping, ready, in_progress, done, blocked"),
        ("status=in-progress", "new, scoping, ready, in_progress, done, blocked"),
        ("size=huge", "small, medium, large"),
        ("size=h", "small, medium, large"),
        ("impact=s", "low, medium, high"),
        ("risk=extreme", "low, medium, high"),
        ("complexity=large", "low, medium, high"),
    ],
)
def test_bad_value_lists_valid_values(token: str, valid: str) -> None:
    message = error([token])
    assert "invalid value" in message
    assert token.split("=", maxsplit=1)[0] in message
    assert f"valid values: {valid}" in message


@pytest.mark.parametrize(
    "token", ["size=small,small", "size=s,small", "impact=h,high", "tag=a,a", "status=new,NEW"]
)
def test_duplicate_values_are_an_error(token: str) -> None:
    assert "twice" in error([token])


def test_filter_errors_are_domain_errors() -> None:
    assert issubclass(FilterError, DomainError)


# --- repetition across flags -----------------------------------------------------------


@pytest.mark.parametrize(
    "field", ["status", "impact", "size", "risk", "complexity", "pipeline_type"]
)
def test_repeated_scalar_field_tells_to_use_commas(field: str) -> None:
    values = {"status": ("new", "ready"), "size": ("small", "large"), "pipeline_type": ("a", "b")}
    first, second = values.get(field, ("low", "high"))
    message = error([f"{field}={first}", f"{field}={second}"])
    assert "more than one --only" in message
    assert f"use commas instead: --only {field}={first},{second}" in message


def test_repeated_scalar_field_detected_case_insensitively() -> None:
    assert "use commas" in error(["SIZE=s", "size=m"])


def test_tag_may_repeat() -> None:
    parsed = parse_filters(["tag=a", "tag=b", "tag=a,b"])
    assert parsed is not None
    assert len(parsed.criteria) == 3


@pytest.mark.parametrize(("first", "second"), [("tag=a", "tag=a"), ("tag=a,b", "tag=b,a")])
def test_identical_tag_criterion_twice_is_an_error(first: str, second: str) -> None:
    assert "given twice" in error([first, second])


# --- matching --------------------------------------------------------------------------


def test_values_are_ored_within_a_field() -> None:
    tokens = ["impact=high,medium"]
    assert matches(tokens, make(impact=Level.HIGH))
    assert matches(tokens, make(impact=Level.MEDIUM))
    assert not matches(tokens, make(impact=Level.LOW))


def test_flags_are_anded_across_fields() -> None:
    tokens = ["impact=high", "size=small"]
    assert matches(tokens, make(impact=Level.HIGH, size=Size.SMALL))
    assert not matches(tokens, make(impact=Level.HIGH, size=Size.LARGE))
    assert not matches(tokens, make(impact=Level.LOW, size=Size.SMALL))


def test_repeated_tags_need_every_tag_and_commas_need_any() -> None:
    assert matches(["tag=a", "tag=b"], make(tags=("a", "b", "c")))
    assert not matches(["tag=a", "tag=b"], make(tags=("a",)))
    assert matches(["tag=a,b"], make(tags=("b",)))
    assert not matches(["tag=a,b"], make(tags=("c",)))


def test_tags_match_exactly() -> None:
    assert not matches(["tag=Backend"], make(tags=("backend",)))
    assert not matches(["tag=back"], make(tags=("backend",)))


@pytest.mark.parametrize(
    "token",
    [
        "impact=low,medium,high",
        "size=small,medium,large",
        "risk=low,medium,high",
        "complexity=low,medium,high",
        "tag=a",
        "pipeline_type=feature",
    ],
)
def test_items_without_a_value_never_match(token: str) -> None:
    assert not matches([token], make())


def test_status_always_has_a_value() -> None:
    assert matches(["status=new"], make())
    assert matches(["status=in_progress,blocked"], make(status=ItemStatus.BLOCKED))
    assert not matches(["status=ready"], make())


def test_pipeline_type_compares_the_stored_value() -> None:
    assert matches(["pipeline_type=simple"], make(pipeline_type="simple"))
    assert not matches(["pipeline_type=Simple"], make(pipeline_type="simple"))


def test_select_keeps_matching_items_in_order() -> None:
    items = [
        new_item("WRK-001", "a", NOW, size=Size.SMALL),
        new_item("WRK-002", "b", NOW, size=Size.LARGE),
        new_item("WRK-003", "c", NOW, size=Size.SMALL),
        new_item("WRK-004", "d", NOW),
    ]
    parsed = parse_filters(["size=s"])
    assert parsed is not None
    assert [i.id for i in parsed.select(items)] == ["WRK-001", "WRK-003"]


def test_filter_with_no_criteria_matches_everything() -> None:
    assert Filter(()).matches(make())


# --- display ---------------------------------------------------------------------------


def test_display_joins_criteria_with_and() -> None:
    parsed = parse_filters(["impact=h,m", "size=s"])
    assert str(parsed) == "impact=high,medium AND size=small"


def test_display_of_one_criterion_and_of_tags() -> None:
    assert str(parse_filters(["status=ready"])) == "status=ready"
    assert str(parse_filters(["tag=a,b", "tag=c"])) == "tag=a,b AND tag=c"


# --- properties ------------------------------------------------------------------------

LEVELS = st.sampled_from(list(Level))
OPT_LEVELS = st.none() | LEVELS


@given(
    wanted=st.lists(LEVELS, min_size=1, max_size=3, unique=True),
    actual=OPT_LEVELS,
)
def test_or_within_a_field_is_membership(wanted: list[Level], actual: Level | None) -> None:
    token = "impact=" + ",".join(level.value for level in wanted)
    assert matches([token], make(impact=actual)) is (actual in wanted)


@given(impact=OPT_LEVELS, risk=OPT_LEVELS, want_impact=LEVELS, want_risk=LEVELS)
def test_and_across_flags_is_conjunction(
    impact: Level | None, risk: Level | None, want_impact: Level, want_risk: Level
) -> None:
    item = make(impact=impact, risk=risk)
    both = matches([f"impact={want_impact.value}", f"risk={want_risk.value}"], item)
    assert both is (
        matches([f"impact={want_impact.value}"], item)
        and matches([f"risk={want_risk.value}"], item)
    )


@given(st.lists(st.sampled_from(["s", "m", "l", "small", "medium", "large"]), min_size=1))
def test_display_round_trips_through_the_parser(raw: list[str]) -> None:
    canonical = list(dict.fromkeys(Size.parse(r).value for r in raw))
    parsed = parse_filters(["size=" + ",".join(canonical)])
    assert parse_filters(str(parsed).split(" AND ")) == parsed
