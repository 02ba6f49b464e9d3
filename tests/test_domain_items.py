"""Unit tests for the pure item rules (domain/items.py, dependencies.py, runs.py, redaction.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phase_golem.domain.dependencies import cycle_with, find_cycle, unmet_dependencies
from phase_golem.domain.descriptions import StructuredDescription, parse_freeform_description
from phase_golem.domain.errors import DomainError, InvalidTransition, ParseError
from phase_golem.domain.guardrails import Guardrails, guardrail_violations, passes_guardrails
from phase_golem.domain.items import (
    Assessments,
    BlockedType,
    Item,
    ItemStatus,
    Level,
    Size,
    archive,
    block,
    format_item_id,
    is_valid_transition,
    merge_assessments,
    new_item,
    normalize_dependencies,
    parse_timestamp,
    split_item_id,
    status_sort_key,
    transition,
    unblock,
    validate_prefix,
)
from phase_golem.domain.redaction import REDACTED, redact, redact_text
from phase_golem.domain.runs import (
    Run,
    RunKind,
    RunRuleError,
    RunStatus,
    Step,
    advance_step,
    ensure_valid_transition,
    finish,
)
from phase_golem.domain.serialization import item_from_dict, item_to_dict

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
S = ItemStatus


def make(status: ItemStatus = S.NEW, **fields: object) -> Item:
    return new_item("WRK-001", "Title", NOW).replace(status=status, **fields)


# --- the transition matrix -----------------------------------------------------------

ALLOWED = {
    (S.NEW, S.SCOPING),
    (S.SCOPING, S.READY),
    (S.READY, S.IN_PROGRESS),
    (S.IN_PROGRESS, S.DONE),
    (S.NEW, S.BLOCKED),
    (S.SCOPING, S.BLOCKED),
    (S.READY, S.BLOCKED),
    (S.IN_PROGRESS, S.BLOCKED),
    (S.BLOCKED, S.NEW),
    (S.BLOCKED, S.SCOPING),
    (S.BLOCKED, S.READY),
    (S.BLOCKED, S.IN_PROGRESS),
}


@pytest.mark.parametrize("current", list(S))
@pytest.mark.parametrize("target", list(S))
def test_transition_matrix_is_phase_golems(current: ItemStatus, target: ItemStatus) -> None:
    assert is_valid_transition(current, target) == ((current, target) in ALLOWED)


def test_invalid_transition_raises_and_names_item() -> None:
    with pytest.raises(InvalidTransition, match="WRK-001: cannot move from new to done"):
        transition(make(), S.DONE, NOW)


def test_block_saves_prior_status_and_unblock_restores_it() -> None:
    item = make(S.IN_PROGRESS, phase="build", last_phase_commit="abc", previous_summary="x")
    blocked = block(item, "needs a decision", NOW, BlockedType.DECISION)
    assert blocked.status is S.BLOCKED
    assert blocked.blocked_from_status is S.IN_PROGRESS
    assert blocked.blocked_reason == "needs a decision"
    assert blocked.blocked_type is BlockedType.DECISION
    assert blocked.previous_summary is None  # WRK-022: cleared on blocked
    later = NOW + timedelta(hours=1)
    released = unblock(blocked, later, notes="  use OAuth  ")
    assert released.status is S.IN_PROGRESS
    assert released.phase == "build"
    assert released.unblock_context == "use OAuth"
    assert released.last_phase_commit is None
    assert released.blocked_from_status is None
    assert released.blocked_reason is None
    assert released.blocked_type is None
    assert released.updated == later.isoformat(timespec="microseconds")


def test_unblock_without_saved_status_goes_to_new() -> None:
    item = make(S.BLOCKED, blocked_reason="x")
    assert unblock(item, NOW).status is S.NEW


def test_unblock_only_blocked() -> None:
    with pytest.raises(InvalidTransition, match="not blocked"):
        unblock(make(S.READY), NOW)


def test_leaving_blocked_by_transition_clears_block_fields_and_context() -> None:
    item = make(
        S.BLOCKED,
        blocked_from_status=S.SCOPING,
        blocked_reason="r",
        blocked_type=BlockedType.CLARIFICATION,
        unblock_context="n",
    )
    moved = transition(item, S.READY, NOW)
    assert (moved.blocked_reason, moved.blocked_type, moved.unblock_context) == (None, None, None)


def test_done_clears_previous_summary() -> None:
    item = make(S.IN_PROGRESS, previous_summary="carried")
    assert transition(item, S.DONE, NOW).previous_summary is None


def test_items_are_immutable() -> None:
    item = make()
    with pytest.raises(AttributeError):
        item.title = "changed"  # type: ignore[misc]


# --- enums ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("s", Size.SMALL), ("M", Size.MEDIUM), ("l", Size.LARGE), ("Large", Size.LARGE)],
)
def test_size_parsing(raw: str, expected: Size) -> None:
    assert Size.parse(raw) is expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("l", Level.LOW), ("M", Level.MEDIUM), ("h", Level.HIGH), ("HIGH", Level.HIGH)],
)
def test_level_parsing_l_means_low(raw: str, expected: Level) -> None:
    assert Level.parse(raw) is expected


def test_bad_enum_lists_allowed_values() -> None:
    with pytest.raises(ParseError, match=r"invalid risk 'huge' \(expected one of: low, medium"):
        Level.parse("huge", what="risk")


def test_enums_are_ordered() -> None:
    assert Size.SMALL < Size.MEDIUM < Size.LARGE
    assert Level.LOW < Level.MEDIUM < Level.HIGH
    assert max(Level) is Level.HIGH


# --- guardrails ---------------------------------------------------------------------------


def test_guardrails_default_and_missing_values_pass() -> None:
    rails = Guardrails()
    assert passes_guardrails(make(), rails)
    assert passes_guardrails(make(size=Size.MEDIUM, complexity=Level.MEDIUM, risk=Level.LOW), rails)
    problems = guardrail_violations(make(size=Size.LARGE, risk=Level.MEDIUM), rails)
    assert problems == ["size large > medium", "risk medium > low"]


def test_merge_assessments_is_partial() -> None:
    item = make(size=Size.SMALL, risk=Level.LOW)
    merged = merge_assessments(item, Assessments(risk=Level.HIGH), NOW)
    assert (merged.size, merged.risk) == (Size.SMALL, Level.HIGH)
    assert merge_assessments(item, Assessments(), NOW) is item


# --- descriptions ---------------------------------------------------------------------------


def test_freeform_description_with_headers() -> None:
    text = (
        "Context: Users need to log in.\nProblem: No auth exists.\nSolution: Add JWT.\n"
        "Impact: Enables features.\nSizing rationale: Medium because layers."
    )
    desc, conforming = parse_freeform_description(text)
    assert conforming
    assert desc == StructuredDescription(
        "Users need to log in.",
        "No auth exists.",
        "Add JWT.",
        "Enables features.",
        "Medium because layers.",
    )


def test_freeform_description_preamble_repeated_header_and_case() -> None:
    text = "Some intro\nPROBLEM: first\nproblem: second\n  more problem\nsolution:x"
    desc, conforming = parse_freeform_description(text)
    assert conforming
    assert desc.context == "Some intro"
    assert desc.problem == "second\n  more problem"
    assert desc.solution == "x"


def test_freeform_description_without_headers_goes_to_context() -> None:
    desc, conforming = parse_freeform_description("  Just a typo fix  ")
    assert not conforming
    assert desc == StructuredDescription(context="Just a typo fix")


def test_description_from_mapping_rejects_unknown_fields() -> None:
    with pytest.raises(ParseError, match="unknown description field"):
        StructuredDescription.from_mapping({"context": "a", "colour": "b"})
    assert StructuredDescription().is_empty()


# --- IDs and timestamps -----------------------------------------------------------------------


def test_ids() -> None:
    assert format_item_id("WRK", 7) == "WRK-007"
    assert format_item_id("WRK", 1234) == "WRK-1234"
    assert split_item_id("HAMY-142") == ("HAMY", 142)
    assert split_item_id("tg-8a8f7") == ("tg", None)
    assert split_item_id("MY-TEAM-003") == ("MY-TEAM", 3)
    for bad in ("WRK", "-001", "WRK-", "WR K-001", "../x-1"):
        with pytest.raises(ParseError):
            split_item_id(bad)
    assert validate_prefix("A_b-9") == "A_b-9"
    with pytest.raises(ParseError):
        validate_prefix("W R K")


def test_new_item_rejects_empty_title() -> None:
    with pytest.raises(DomainError, match="title"):
        new_item("WRK-001", "   ", NOW)


def test_timestamps_accept_nanoseconds_and_z() -> None:
    assert parse_timestamp("2026-02-12T16:23:33.711239234+00:00").microsecond == 711239
    assert parse_timestamp("2026-01-10T10:00:00Z").tzinfo is not None
    with pytest.raises(ParseError):
        parse_timestamp("yesterday")


def test_status_sort_order() -> None:
    items = [
        make(S.NEW).replace(id="WRK-001"),
        make(S.IN_PROGRESS).replace(id="WRK-002"),
        make(S.READY, impact=Level.LOW).replace(id="WRK-003"),
        make(S.READY, impact=Level.HIGH).replace(id="WRK-004"),
        make(S.BLOCKED).replace(id="WRK-005"),
    ]
    ordered = [i.id for i in sorted(items, key=status_sort_key)]
    assert ordered == ["WRK-002", "WRK-005", "WRK-004", "WRK-003", "WRK-001"]


def test_archive_once() -> None:
    archived = archive(make(S.READY), NOW, closed_reason="obsolete")
    assert archived.archived and archived.closed_reason == "obsolete"
    with pytest.raises(DomainError):
        archive(archived, NOW)


# --- dependencies -------------------------------------------------------------------------------


def test_dependencies_absent_or_done_are_met() -> None:
    dep_ready = make(S.READY).replace(id="WRK-002")
    dep_done = make(S.DONE).replace(id="WRK-003")
    item = make(dependencies=("WRK-002", "WRK-003", "WRK-999"))
    active = {i.id: i for i in (dep_ready, dep_done)}
    assert unmet_dependencies(item, active) == ["WRK-002 (ready)"]


def test_cycles_found_with_path() -> None:
    assert find_cycle({"A": ["B"], "B": ["C"], "C": ["A"]}) == ["A", "B", "C", "A"]
    assert find_cycle({"A": ["B"], "B": ["C"], "C": []}) is None
    items = [make().replace(id="WRK-001", dependencies=("WRK-002",)), make().replace(id="WRK-002")]
    assert cycle_with(items, "WRK-002", ["WRK-001"]) == ["WRK-001", "WRK-002", "WRK-001"]


def test_long_chain_has_no_recursion_limit() -> None:
    edges = {f"N{i}": [f"N{i + 1}"] for i in range(5000)}
    assert find_cycle(edges) is None
    edges["N5000"] = ["N0"]
    cycle = find_cycle(edges)
    assert cycle is not None and cycle[0] == cycle[-1]


def test_self_dependency_rejected() -> None:
    with pytest.raises(DomainError, match="itself"):
        normalize_dependencies("WRK-001", ["WRK-001"])
    assert normalize_dependencies("WRK-001", [" WRK-002", "WRK-002"]) == ("WRK-002",)


# --- serialization ----------------------------------------------------------------------------

statuses = st.sampled_from(list(ItemStatus))


@given(
    title=st.text(min_size=1).filter(lambda t: t.strip() != ""),
    status=statuses,
    size=st.none() | st.sampled_from(list(Size)),
    risk=st.none() | st.sampled_from(list(Level)),
    tags=st.lists(st.text(min_size=1), max_size=3).map(tuple),
)
def test_item_dict_round_trip(
    title: str, status: ItemStatus, size: Size | None, risk: Level | None, tags: tuple[str, ...]
) -> None:
    item = new_item("WRK-001", title, NOW).replace(
        status=status,
        size=size,
        risk=risk,
        tags=tags,
        description=StructuredDescription(context="c"),
    )
    assert item_from_dict(item_to_dict(item)) == item


# --- runs --------------------------------------------------------------------------------------


def make_run() -> Run:
    return Run(id="run-000001", item_id="WRK-001", phase="prd", kind=RunKind.PHASE, queued_at="t")


def test_run_steps_only_move_forward() -> None:
    run = advance_step(make_run(), Step.CLAIMED)
    run = advance_step(run, Step.STARTED)
    with pytest.raises(RunRuleError, match="cannot go from started to claimed"):
        advance_step(run, Step.CLAIMED)
    with pytest.raises(RunRuleError):
        advance_step(run, Step.STARTED)


def test_run_status_changes_once() -> None:
    run = make_run()
    ended = finish(run, RunStatus.FAILED_AGENT, "t2", error="boom")
    with pytest.raises(RunRuleError, match="already ended"):
        finish(ended, RunStatus.CRASHED, "t3")
    with pytest.raises(RunRuleError, match="committed step"):
        finish(run, RunStatus.COMMITTED, "t2")
    done = finish(run.replace(step=Step.COMMITTED), RunStatus.COMMITTED, "t2")
    assert done.status is RunStatus.COMMITTED
    with pytest.raises(RunRuleError, match="status cannot change"):
        ensure_valid_transition(ended, ended.replace(status=RunStatus.ACTIVE))


# --- redaction -----------------------------------------------------------------------------------


def test_redaction_of_known_secret_shapes() -> None:
    text = (
        "key sk-ant-api03-abcdefghijklmnopqrstuv and ghp_abcdefghijklmnopqrstuvwxyz0123 "
        "password=hunter22 postgresql://user:s3cret@db/x Bearer abcdefghijklmnopqrstu"
    )
    out = redact_text(text)
    for secret in ("sk-ant-api03", "ghp_abc", "hunter22", "s3cret", "abcdefghijklmnopqrstu"):
        assert secret not in out
    assert out.count(REDACTED) == 5


def test_redaction_of_mappings_by_key_name() -> None:
    data = {"api_key": "plain-value", "nested": {"GITHUB_TOKEN": "zzz"}, "title": "ok", "n": 3}
    assert redact(data) == {
        "api_key": REDACTED,
        "nested": {"GITHUB_TOKEN": REDACTED},
        "title": "ok",
        "n": 3,
    }
