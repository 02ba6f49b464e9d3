"""Hostile agent results and hostile text at the rules' layer (domain/results.py, text.py,
items.py, merges.py): every bad result is `invalid_result`, never an internal error."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phase_golem.domain.errors import ParseError
from phase_golem.domain.item_text import item_text_problem
from phase_golem.domain.items import ItemStatus, new_item, split_item_id, transition
from phase_golem.domain.merges import merge_refusal, unmergeable
from phase_golem.domain.results import ResultProblem, parse_result
from phase_golem.domain.runs import ErrorClass
from phase_golem.domain.text import check_text, one_line, printable, text_problem

NOW = datetime(2026, 1, 1, tzinfo=UTC)
BASE = {"item_id": "WRK-001", "phase": "build", "result": "phase_complete", "summary": "ok"}


def parse(raw: bytes | str, max_bytes: int = 1 << 20) -> Any:
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    return parse_result(data, expected_item="WRK-001", expected_phase="build", max_bytes=max_bytes)


def problem_of(raw: bytes | str) -> ResultProblem:
    with pytest.raises(ResultProblem) as caught:
        parse(raw)
    return caught.value


def with_fields(**fields: Any) -> str:
    return json.dumps({**BASE, **fields})


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ('{"item_id": ' * 5000 + "1" + "}" * 5000, "nested"),
        ("[" * 100_000 + "]" * 100_000, "nested"),
        (with_fields(extra=nested(70)), "nested more than"),
        ('{"item_id": "WRK-001", "n": ' + "9" * 5000 + "}", "not usable JSON"),
        (with_fields(summary="a\x00b"), "result.summary contains a NUL"),
        (with_fields(commit_summary="x\ud800y"), "result.commit_summary contains an invalid"),
        (with_fields(artifacts=["ok.txt", "bad\ud83d.txt"]), "result.artifacts[1]"),
        (with_fields(follow_ups=[{"title": "a\x00"}]), "result.follow_ups[0].title"),
        (json.dumps({**BASE, "k\x00": 1}), "a key in result"),
        (with_fields(retry_after_seconds=1e20), "retry_after_seconds"),
        (with_fields(retry_after_seconds=float("inf")).replace("Infinity", "1e999"), "retry"),
        (b"\xff\xfe{}", "not valid JSON"),
    ],
)
def test_hostile_results_are_invalid_results_naming_the_problem(raw: str, needle: str) -> None:
    problem = problem_of(raw)
    assert problem.error_class is ErrorClass.INVALID_RESULT
    assert needle in str(problem)
    assert "\n" not in str(problem)


def test_a_result_just_under_the_depth_limit_and_with_escapes_is_accepted() -> None:
    result = parse(with_fields(summary="\x1b[2J cleared?", extra=nested(60)))
    assert result.summary == "\x1b[2J cleared?"  # kept as given; escaped wherever shown


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(alphabet=st.characters(codec=None), max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=25,
)


@settings(max_examples=300)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                *("item_id", "phase", "result", "summary", "follow_ups", "duplicates"),
                *("artifacts", "retry_after_seconds", "wake_at", "description", "x"),
                "updated_assessments",
            ]
        ),
        JSON_VALUES,
    )
)
def test_any_json_object_either_parses_or_is_a_result_problem(fields: dict[str, Any]) -> None:
    raw = json.dumps({**BASE, **fields}, allow_nan=True).encode("utf-8", "surrogatepass")
    try:
        parse(raw)
    except ResultProblem as problem:
        assert problem.error_class in (ErrorClass.INVALID_RESULT, ErrorClass.MISMATCH)


@settings(max_examples=300)
@given(st.binary(max_size=300))
def test_any_bytes_either_parse_or_are_a_result_problem(raw: bytes) -> None:
    try:
        parse(raw)
    except ResultProblem as problem:
        assert problem.error_class in (ErrorClass.INVALID_RESULT, ErrorClass.MISMATCH)


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(codec=None)))
def test_one_line_output_holds_no_control_character_and_printable_keeps_only_lines(
    text: str,
) -> None:
    line = one_line(text)
    assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in line)
    assert not any(0xD800 <= ord(c) <= 0xDFFF for c in line)
    block = printable(text)
    assert not any((ord(c) < 0x20 and c not in "\n\t") or 0x7F <= ord(c) <= 0x9F for c in block)


def test_terminal_escapes_are_shown_not_obeyed() -> None:
    assert one_line("a\x1b[2Jb\x1b]0;title\x07c\nd") == "a\\x1b[2Jb\\x1b]0;title\\x07c\\nd"
    assert printable("x\u202eevil\ny") == "x\\u202eevil\ny"
    assert one_line("plain text, ünïcödé") == "plain text, ünïcödé"


def test_text_that_cannot_be_stored_is_named() -> None:
    assert text_problem("fine") is None
    assert text_problem("a\x00") == "contains a NUL character"
    assert "lone surrogate U+DC80" in (text_problem("a\udc80") or "")
    with pytest.raises(ParseError, match="title contains a NUL"):
        check_text("title", "x\x00")


def test_items_with_unstorable_text_are_named_by_field() -> None:
    item = new_item("WRK-001", "ok", NOW)
    assert item_text_problem(item) is None
    problem = item_text_problem(item.replace(title="a\x00b"))
    assert problem == "WRK-001: title contains a NUL character"
    assert "tags[1]" in (item_text_problem(item.replace(tags=("a", "b\udc80"))) or "")


@pytest.mark.parametrize(
    "raw",
    ["WRK-001\n", "X\nY", "WRK-" + "9" * 30, "WRK-1000000000000", "W" * 200 + "-1", "WRK-0\x00"],
)
def test_ids_that_do_not_fit_are_parse_errors(raw: str) -> None:
    with pytest.raises(ParseError):
        split_item_id(raw)


def test_split_item_id_still_accepts_every_normal_id() -> None:
    assert split_item_id("WRK-001") == ("WRK", 1)
    assert split_item_id("MY-PROJ-999999999999") == ("MY-PROJ", 999_999_999_999)
    assert split_item_id("tg-a1b2c") == ("tg", None)


def test_triage_merges_only_take_away_new_items_without_live_runs() -> None:
    new = new_item("WRK-005", "dup", NOW)
    assert merge_refusal(new, has_live_run=False) is None
    assert "live run" in (merge_refusal(new, has_live_run=True) or "")
    started = new
    for status in (ItemStatus.SCOPING, ItemStatus.READY, ItemStatus.IN_PROGRESS):
        started = transition(started, status, NOW)
    refusal = merge_refusal(started, has_live_run=False) or ""
    assert "in_progress" in refusal and "human" in refusal


def test_unmergeable_duplicates_each_get_a_reason() -> None:
    triaged = new_item("WRK-009", "x", NOW)
    done = new_item("WRK-001", "y", NOW).replace(status=ItemStatus.DONE, archived=True)
    duplicates = ["WRK-009", "WRK-404", "WRK-001", "WRK-404"]
    reasons = dict(unmergeable(triaged, duplicates, [triaged, done]))
    assert reasons == {
        "WRK-009": "it is the item being triaged",
        "WRK-404": "no such item",
        "WRK-001": "it is already done or archived (archived: done); the item stays as it is",
    }
