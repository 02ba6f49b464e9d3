"""The pure rules of intake sources (DESIGN §11): schedules with an injected clock,
the parsing of a source's output, identity, and keeping items in step."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from phase_golem.domain.events import Schedule
from phase_golem.domain.items import ItemStatus, archive, format_timestamp, new_item, touch
from phase_golem.domain.source_entries import (
    Action,
    EntryState,
    SourceEntry,
    SourceOutputError,
    canonical_id,
    github_id,
    parse_json_lines,
    plan_entry,
)
from phase_golem.domain.sources import (
    FAILING_AFTER,
    RunCounts,
    SourceConfig,
    after_failure,
    after_success,
    backoff_seconds,
    claim,
    claim_held,
    cron_problem,
    earliest_due,
    github_problem,
    interval_seconds,
    is_due,
    next_cron_time,
    sync_schedules,
)

NOW = datetime(2026, 11, 22, 9, 0, 30, tzinfo=UTC)
EVERY = SourceConfig("inbox", inbox="BACKLOG_INBOX.yaml", every_seconds=60)
CRON = SourceConfig("tickets", command="t.sh", cron="*/15 * * * *", timezone="UTC")


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


# ---- schedules ---------------------------------------------------------------------------
def test_a_new_source_is_due_at_once() -> None:
    sync = sync_schedules((EVERY, CRON), [], NOW)
    assert [(r.source, r.kind, r.value, r.next_run_at) for r in sync.save] == [
        ("inbox", "every", "60", format_timestamp(NOW)),
        ("tickets", "cron", "*/15 * * * * @UTC", format_timestamp(NOW)),
    ]
    assert all(is_due(r, NOW) for r in sync.save)


def test_an_unchanged_schedule_keeps_its_time_and_a_removed_row_goes() -> None:
    kept = Schedule("inbox", "every", "60", next_run_at=format_timestamp(at(45)), failures=1)
    gone = Schedule("old", "every", "10")
    sync = sync_schedules((EVERY,), [kept, gone], NOW)
    assert sync.save == ()
    assert sync.remove == ("old",)
    assert not is_due(kept, NOW) and is_due(kept, at(45))


@pytest.mark.parametrize(
    ("changed", "value"),
    [
        (SourceConfig("inbox", inbox="x", every_seconds=30), "30"),
        (SourceConfig("inbox", inbox="x", cron="0 * * * *"), "0 * * * *"),
        (
            SourceConfig("inbox", inbox="x", cron="0 * * * *", timezone="Europe/Paris"),
            "0 * * * * @Europe/Paris",
        ),
    ],
)
def test_a_changed_schedule_is_due_at_once_and_forgets_its_failures(
    changed: SourceConfig, value: str
) -> None:
    row = Schedule(
        "inbox", "every", "60", next_run_at=format_timestamp(at(3600)), failures=2, last_error="x"
    )
    (saved,) = sync_schedules((changed,), [row], NOW).save
    assert (saved.value, saved.next_run_at, saved.failures, saved.last_error) == (
        value,
        format_timestamp(NOW),
        0,
        None,
    )


def test_missed_ticks_coalesce_and_the_interval_counts_from_the_end_of_the_run() -> None:
    row = Schedule("inbox", "every", "60", next_run_at=format_timestamp(at(-3600)))
    assert is_due(row, NOW)  # sixty ticks missed: one run
    done = after_success(row, EVERY, NOW, at(5), RunCounts(created=2, updated=1))
    assert done.next_run_at == format_timestamp(at(65))  # end of run + interval: no drift
    assert done.last_run_at == format_timestamp(NOW)
    assert (done.runs, done.items_created, done.items_updated, done.failures) == (1, 2, 1, 0)
    assert not is_due(done, at(64)) and is_due(done, at(65))


def test_a_cron_source_runs_next_at_the_next_cron_time_after_now() -> None:
    row = Schedule("tickets", "cron", CRON.schedule_value)
    done = after_success(row, CRON, NOW, at(10), RunCounts())
    assert done.next_run_at == format_timestamp(datetime(2026, 11, 22, 9, 15, tzinfo=UTC))
    late = after_success(row, CRON, NOW, datetime(2026, 11, 22, 11, 59, tzinfo=UTC), RunCounts())
    # a long run skips the ticks it overran
    assert late.next_run_at == format_timestamp(datetime(2026, 11, 22, 12, 0, tzinfo=UTC))


def test_cron_honours_its_timezone() -> None:
    found = next_cron_time("0 9 * * *", "America/New_York", NOW)
    assert found == datetime(2026, 11, 22, 14, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("failures", "interval", "expected"),
    [(1, 3600, 10), (2, 3600, 20), (3, 3600, 40), (7, 3600, 600), (7, 60, 60), (1, 5, 5)],
)
def test_failure_backoff_is_the_agent_formula_capped_at_the_interval(
    failures: int, interval: float, expected: float
) -> None:
    assert backoff_seconds(failures, 10, 2, 600, interval) == expected


def test_failures_do_not_move_the_schedule_and_the_third_in_a_row_is_failing() -> None:
    row = Schedule("inbox", "every", "60", next_run_at=format_timestamp(NOW))
    raised = []
    for n in range(1, 6):
        failure = after_failure(row, f"exit {n}", NOW, at(1), 10.0)
        row = failure.row
        raised.append(failure.failing)
        assert row.failures == n and row.last_error == f"exit {n}"
        assert row.next_run_at == format_timestamp(at(11))
        assert row.runs == 0  # a failed run is not a run of record
    assert raised == [False, False, True, False, False]  # once per streak
    assert FAILING_AFTER == 3
    ok = after_success(row, EVERY, at(20), at(21), RunCounts())
    assert (ok.failures, ok.last_error) == (0, None)


def test_a_claim_holds_while_its_holder_lives_and_its_lease_runs() -> None:
    row = claim(Schedule("inbox", "every", "60"), "host:1", NOW, 60)
    assert claim_held(row, at(1), holder_alive=True)
    assert not claim_held(row, at(1), holder_alive=False)  # a killed holder is taken over
    assert not claim_held(row, at(121), holder_alive=True)  # a lease that ran out too
    assert not claim_held(Schedule("inbox", "every", "60"), NOW, holder_alive=True)


def test_the_earliest_due_time_is_what_the_scheduler_waits_for() -> None:
    rows = [
        Schedule("a", "every", "1", next_run_at=format_timestamp(at(30))),
        Schedule("b", "every", "1", next_run_at=format_timestamp(at(10))),
    ]
    assert earliest_due(rows) == at(10)
    assert earliest_due([]) is None


def test_interval_of_a_cron_source_is_its_gap() -> None:
    assert interval_seconds(CRON, NOW) == 900
    assert interval_seconds(EVERY, NOW) == 60


@pytest.mark.parametrize(
    ("expression", "zone", "needle"),
    [
        ("* * *", None, "must have 5 fields"),
        ("61 * * * *", None, "not a valid expression"),
        ("0 0 30 2 *", None, "never fires"),
        ("0 0 * * *", "Mars/Olympus", "unknown timezone"),
    ],
)
def test_bad_cron_values_are_named(expression: str, zone: str | None, needle: str) -> None:
    problem = cron_problem(expression, zone, NOW)
    assert problem is not None and needle in problem


def test_good_cron_values_pass() -> None:
    assert cron_problem("*/15 * * * 1-5", None, NOW) is None
    assert cron_problem("0 0 29 2 *", None, NOW) is None  # leap days exist


@pytest.mark.parametrize(
    ("value", "ok"),
    [("owner/name", True), ("a-b/c.d_e", True), ("owner", False), ("a/b/c", False), ("/x", False)],
)
def test_github_value_is_owner_slash_name(value: str, ok: bool) -> None:
    assert (github_problem(value) is None) is ok


# ---- output --------------------------------------------------------------------------------
def lines(*values: object) -> bytes:
    return b"\n".join(json.dumps(v).encode() for v in values) + b"\n"


def test_json_lines_become_entries_with_every_field() -> None:
    parsed = parse_json_lines(
        lines(
            {
                "external_id": "T-1",
                "title": "Fix login",
                "description": "It fails",
                "state": "open",
                "url": "https://x/T-1",
                "size": "small",
                "tags": ["auth"],
                "pipeline": "simple",
            },
            {"external_id": 7, "title": "Seven", "state": "closed"},
        )
        + b"\n   \n"
    )
    first, second = parsed.entries
    assert first == SourceEntry(
        "T-1",
        "Fix login",
        "It fails",
        EntryState.OPEN,
        "https://x/T-1",
        first.size,
        ("auth",),
        "simple",
    )
    assert first.size is not None and first.size.value == "small"
    assert (second.external_id, second.state) == ("7", EntryState.CLOSED)
    assert parsed.warnings == ()


def test_unknown_keys_warn_once_each() -> None:
    parsed = parse_json_lines(
        lines({"title": "a", "prio": 1, "owner": "x"}, {"title": "b", "prio": 2})
    )
    assert parsed.warnings == (
        "unknown key 'prio' ignored (first on line 1)",
        "unknown key 'owner' ignored (first on line 1)",
    )


@pytest.mark.parametrize(
    ("output", "needle"),
    [
        (b'{"title": "a"}\n{"title": \n', "line 2: not valid JSON"),
        (b'{"title": "a"}\n[1, 2]\n', "line 2: expected a JSON object"),
        (b'{"title": "a\x00b"}\n', "line 1: contains a NUL byte"),
        (b'{"title": "caf\xe9"}\n', "line 1: not valid UTF-8"),
        (b'{"title": 5}\n', "line 1: title must be a string"),
        (b'{"title": "a", "tags": "x"}\n', "line 1: tags must be a list"),
        (b'{"title": "a", "state": "gone"}\n', "line 1: state must be"),
        (b'{"title": "a", "size": "huge"}\n', "line 1: size must be"),
        (b'{"title": ""}\n', "line 1: an open entry needs a non-empty title"),
        (b'{"title": "a", "external_id": true}\n', "external_id must be a string"),
        (b'{"title": "\\ud800"}\n', "line 1: title contains an invalid character"),
        (b'{"title": "' + b"x" * (1024 * 1024 + 1) + b'"}\n', "line 1: longer than"),
        (b"[" * 100_000 + b"\n", "line 1: not valid JSON"),
    ],
)
def test_a_bad_line_fails_the_whole_output_naming_it(output: bytes, needle: str) -> None:
    with pytest.raises(SourceOutputError) as caught:
        parse_json_lines(output)
    assert needle in str(caught.value)
    assert "\n" not in str(caught.value)


def test_ten_thousand_entries_parse() -> None:
    output = lines(*({"external_id": str(n), "title": f"T {n}"} for n in range(10_000)))
    assert len(parse_json_lines(output).entries) == 10_000


def test_identity_is_the_external_id_or_a_hash_of_canonical_json() -> None:
    a = parse_json_lines(b'{"title": "x", "description": "y"}\n').entries[0]
    b = parse_json_lines(b'{"description":"y","title":"x"}\n').entries[0]
    assert a.external_id == b.external_id == canonical_id({"title": "x", "description": "y"})
    assert a.external_id.startswith("sha256:")
    assert github_id("o/n", 12) == "github:o/n#12"


def test_the_same_entry_twice_in_one_output_is_one_entry_the_last_word_winning() -> None:
    parsed = parse_json_lines(
        lines({"external_id": "1", "title": "old"}, {"external_id": "1", "title": "new"})
    )
    assert [(e.external_id, e.title) for e in parsed.entries] == [("1", "new")]


# ---- keeping in step -------------------------------------------------------------------
ITEM = new_item("WRK-001", "Fix login", NOW, source="t", external_id="T-1")


@pytest.mark.parametrize(
    ("entry", "existing", "action", "changes"),
    [
        (SourceEntry("T-1", "Fix login"), None, Action.CREATE, {}),
        (SourceEntry("T-1", "x", state=EntryState.CLOSED), None, Action.NOTHING, {}),
        (SourceEntry("T-1", "Fix login"), ITEM, Action.NOTHING, {}),
        (SourceEntry("T-1", "Fix logout"), ITEM, Action.UPDATE, {"title": "Fix logout"}),
        (
            SourceEntry("T-1", "Fix login"),
            touch(ITEM, NOW, status=ItemStatus.READY),
            Action.NOTHING,
            {},
        ),
        (
            SourceEntry("T-1", "Fix logout"),
            touch(ITEM, NOW, status=ItemStatus.SCOPING),
            Action.NOTHING,  # past `new` the item is the agents' own
            {},
        ),
        (SourceEntry("T-1", None, state=EntryState.CLOSED), ITEM, Action.CLOSE, {}),
        (
            SourceEntry("T-1", None, state=EntryState.CLOSED),
            touch(ITEM, NOW, status=ItemStatus.IN_PROGRESS),
            Action.CLOSE,
            {},
        ),
        (SourceEntry("T-1", "Again"), archive(ITEM, NOW, "done"), Action.NOTHING, {}),
    ],
)
def test_keeping_in_step(
    entry: SourceEntry, existing: object, action: Action, changes: dict[str, object]
) -> None:
    plan = plan_entry(entry, existing, None)  # type: ignore[arg-type]
    assert plan.action is action
    assert dict(plan.changes) == changes
