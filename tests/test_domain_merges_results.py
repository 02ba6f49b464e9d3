"""Merges, follow-up ingestion and the result schema (research §4.12, §4.13, §7.2; DESIGN §6)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from phase_golem.domain.descriptions import StructuredDescription
from phase_golem.domain.errors import DomainError
from phase_golem.domain.items import Assessments, BlockedType, Item, Level, Size, new_item
from phase_golem.domain.merges import (
    merge_direction,
    merge_into,
    normalize_title,
    plan_follow_ups,
    plan_merges,
    without_dependency,
)
from phase_golem.domain.results import (
    FollowUp,
    PhaseResult,
    ResultCode,
    ResultProblem,
    parse_result,
    result_from_dict,
    result_to_dict,
)
from phase_golem.domain.runs import ErrorClass
from tests.conftest import own_and_upstream
from tests.test_domain_transitions import NOW, STAMP, R, S, result

# --- merges ----------------------------------------------------------------------------


def item_at(item_id: str, hours_ago: float = 0, title: str = "", **fields: Any) -> Item:
    moment = NOW - timedelta(hours=hours_ago)
    return new_item(item_id, title or f"Title {item_id}", moment, **fields)


@pytest.mark.parametrize(
    ("a", "b", "source"),
    [
        (item_at("WRK-010"), item_at("WRK-002", 0), "WRK-010"),
        (item_at("WRK-002", 0), item_at("WRK-010", 5), "WRK-010"),  # number beats age
        (item_at("WRK-099"), item_at("WRK-100"), "WRK-100"),
        (item_at("ABC-001", 0), item_at("WRK-009", 5), "ABC-001"),  # other prefix: newer
        (item_at("WRK-a1b", 5), item_at("WRK-003", 0), "WRK-003"),  # hex: newer into older
        (item_at("WRK-00f", 0), item_at("WRK-a1b", 5), "WRK-00f"),
    ],
)
def test_merge_direction(a: Item, b: Item, source: str) -> None:
    src, target = merge_direction(a, b)
    assert src.id == source and {src.id, target.id} == {a.id, b.id}


def test_merge_into_self_is_an_error() -> None:
    with pytest.raises(DomainError):
        merge_direction(item_at("WRK-001"), item_at("WRK-001"))


ids = st.one_of(
    st.integers(1, 999).map(lambda n: f"WRK-{n:03d}"),
    st.text("0123456789abcdef", min_size=3, max_size=5).map(lambda s: f"WRK-{s}x"),
)


@given(st.tuples(ids, st.integers(0, 50)), st.tuples(ids, st.integers(0, 50)))
def test_merge_direction_is_antisymmetric(a: tuple[str, int], b: tuple[str, int]) -> None:
    if a[0] == b[0]:
        return
    x, y = item_at(a[0], a[1]), item_at(b[0], b[1])
    assert merge_direction(x, y) == merge_direction(y, x)
    assert merge_direction(x, y)[0] != merge_direction(x, y)[1]


def test_plan_merges_skips_missing_done_self_archived_and_repeats() -> None:
    items = [
        item_at("WRK-001"),
        item_at("WRK-002"),
        item_at("WRK-003").replace(status=S.DONE),
        item_at("WRK-004", archived=True),
        item_at("WRK-005"),
    ]
    dups = ["WRK-005", "WRK-001", "WRK-003", "WRK-004", "WRK-009", "WRK-002", "WRK-005"]
    assert plan_merges(items[0], dups, items) == ["WRK-005", "WRK-002"]


def test_merge_into_appends_note_and_unions_dependencies() -> None:
    source = item_at(
        "WRK-007",
        description=StructuredDescription(context="ctx", problem="prob"),
        origin="WRK-002/design",
        dependencies=("WRK-003", "WRK-001", "WRK-004"),
    )
    target = item_at(
        "WRK-001",
        5,
        description=StructuredDescription(context="Existing", solution="keep me"),
        dependencies=("WRK-004", "WRK-007", "WRK-005"),
    )
    merged = merge_into(source, target, NOW)
    note = "[Merged from WRK-007] Title WRK-007. ctx. prob. origin: WRK-002/design"
    assert merged.description == StructuredDescription(
        context=f"Existing\n{note}", solution="keep me"
    )
    assert merged.dependencies == ("WRK-004", "WRK-005", "WRK-003")
    assert merged.updated == STAMP and merged.id == "WRK-001"


def test_merge_into_creates_the_context_when_missing() -> None:
    merged = merge_into(item_at("WRK-002"), item_at("WRK-001"), NOW)
    assert merged.description == StructuredDescription(
        context="[Merged from WRK-002] Title WRK-002"
    )


def test_without_dependency() -> None:
    item = item_at("WRK-001", dependencies=("WRK-002", "WRK-003"))
    assert without_dependency(item, "WRK-009", NOW) is None
    dropped = without_dependency(item, "WRK-002", NOW)
    assert dropped is not None and dropped.dependencies == ("WRK-003",)


# --- follow-ups ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "normal"),
    [
        ("Add Metrics", "add metrics"),
        ("  add   metrics!!", "add metrics"),
        ("Add-metrics.", "add metrics"),
        ("Réparer l'éàü Café", "reparer l eau cafe"),
        ("ADD\tMETRICS\n", "add metrics"),
        ("ﬁx snake_case", "fix snake_case"),
        ("!!!", ""),
    ],
)
def test_normalize_title(title: str, normal: str) -> None:
    assert normalize_title(title) == normal


@example("\u210cello")  # BLACK-LETTER CAPITAL H
@given(st.text(max_size=40))
def test_normalize_title_is_idempotent(title: str) -> None:
    once = normalize_title(title)
    assert normalize_title(once) == once


@given(st.text(alphabet="abcXYZ éÉ", max_size=20), st.sampled_from(["", " ", "!", "  .  "]))
def test_normalize_title_ignores_case_and_punctuation(title: str, noise: str) -> None:
    assert normalize_title(noise + title.upper() + noise) == normalize_title(title.lower())


def test_follow_ups_deduped_against_active_items_and_within_batch() -> None:
    active = [
        item_at("WRK-001", title="Add metrics"),
        item_at("WRK-002").replace(title="Write docs", status=S.DONE),
        item_at("WRK-003", title="Fix login", archived=True),
    ]
    wanted = ["add  METRICS.", "Write docs", "Fix login", "Café crème", "CAFE CREME!", "?!", "New"]
    plan = plan_follow_ups([FollowUp(title=t) for t in wanted], active)
    assert [f.title for f in plan.create] == ["Write docs", "Fix login", "Café crème", "New"]
    assert plan.skipped == (
        ("add  METRICS.", "WRK-001"),
        ("CAFE CREME!", "an earlier follow-up of this result"),
        ("?!", "empty title"),
    )


def test_non_latin_follow_up_titles_are_kept() -> None:
    titles = ["Исправить ошибку", "Fix 登录", "Fix 注册"]
    plan = plan_follow_ups([FollowUp(title=t) for t in titles], [])
    assert [f.title for f in plan.create] == titles


# --- parse_result ----------------------------------------------------------------------


def raw(**fields: Any) -> bytes:
    data = {"item_id": "WRK-001", "phase": "prd", "result": "phase_complete", "summary": "ok"}
    data.update(fields)
    return json.dumps({k: v for k, v in data.items() if v is not None}).encode()


def parse(data: bytes, max_bytes: int = 10_000) -> PhaseResult:
    return parse_result(data, expected_item="WRK-001", expected_phase="prd", max_bytes=max_bytes)


def problem(data: bytes, max_bytes: int = 10_000) -> ResultProblem:
    with pytest.raises(ResultProblem) as caught:
        parse(data, max_bytes)
    return caught.value


def test_parse_full_result() -> None:
    got = parse(
        raw(
            context="c",
            updated_assessments={"size": "s", "risk": "l", "impact": "High"},
            follow_ups=["Write a guide", {"title": "Add metrics", "suggested_size": "small"}],
            duplicates=[" WRK-002 ", "", "WRK-003"],
            description={"context": "why", "problem": "what"},
            requires_human_review=True,
            blocked_type="decision",
            retry_after_seconds=60,
            artifacts=["a.txt"],
            something_else={"ignored": True},
        )
    )
    assert got.assessments == Assessments(Size.SMALL, None, Level.LOW, Level.HIGH)
    assert got.follow_ups == (
        FollowUp(title="Write a guide"),
        FollowUp(title="Add metrics", suggested_size=Size.SMALL),
    )
    assert got.duplicates == ("WRK-002", "WRK-003")
    assert got.description == StructuredDescription(context="why", problem="what")
    assert (got.requires_human_review, got.blocked_type) == (True, BlockedType.DECISION)
    assert (got.retry_after_seconds, got.artifacts) == (60, ("a.txt",))
    assert result_from_dict(result_to_dict(got)) == got


@pytest.mark.parametrize(("item_id", "phase"), [("WRK-002", "prd"), ("WRK-001", "design")])
def test_identity_mismatch(item_id: str, phase: str) -> None:
    err = problem(raw(item_id=item_id, phase=phase))
    assert err.error_class is ErrorClass.MISMATCH
    assert "expected WRK-001/prd" in str(err) and f"got {item_id}/{phase}" in str(err)


def test_size_limit() -> None:
    data = raw()
    assert parse(data, max_bytes=len(data)).summary == "ok"
    err = problem(data, max_bytes=len(data) - 1)
    assert err.error_class is ErrorClass.INVALID_RESULT and "byte limit" in str(err)


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b'{"item_id": "WRK-001",', "not valid JSON"),
        (b"\xff\xfe\xfa", "not valid JSON"),
        (b"[1, 2]", "JSON object, not list"),
        (b'"done"', "JSON object, not str"),
        (raw(summary=None), "summary"),
        (raw(result="complete"), "result"),
        (raw(updated_assessments={"size": "huge"}), "updated_assessments.size"),
        (raw(retry_after_seconds=-1), "retry_after_seconds"),
        (raw(retry_after_seconds=float("inf")), "retry_after_seconds"),
        (raw(retry_after_seconds=float("nan")), "retry_after_seconds"),
        (raw(follow_ups=[""]), "follow_ups.0"),
        (raw(follow_ups=[5]), "follow_ups.0"),
        (raw(blocked_type="urgent"), "blocked_type"),
        (raw(item_id="WRK-002", summary=None), "summary"),  # schema before identity
    ],
)
def test_invalid_results(data: bytes, text: str) -> None:
    err = problem(data)
    assert err.error_class is ErrorClass.INVALID_RESULT
    assert text in str(err)


def test_reason_prefers_context_then_summary() -> None:
    assert result(context=" why ").reason == "why"
    assert result(summary=" s ").reason == "s"
    assert result(summary="", code=R.FAILED).reason == "failed"


@pytest.mark.parametrize(
    "source", own_and_upstream("agent-result.success.json", "agent-result.success.json")
)
def test_a_result_file_as_agents_write_it_parses(source: Path) -> None:
    written = json.loads(source.read_text())
    parsed = parse_result(
        source.read_bytes(),
        expected_item=written["item_id"],
        expected_phase=written["phase"],
        max_bytes=10_000,
    )
    assert parsed.result is ResultCode.PHASE_COMPLETE
    assert parsed.summary == written["summary"]
    assert len(parsed.follow_ups) == len(written.get("follow_ups") or [])


@pytest.mark.parametrize(
    "source", own_and_upstream("agent-result.torn.txt", "agent-result.bad-json.txt")
)
def test_a_torn_result_file_is_an_invalid_result(source: Path) -> None:
    caught = problem(source.read_bytes())
    assert caught.error_class is ErrorClass.INVALID_RESULT
    assert str(caught).startswith("result is not valid JSON")
