"""Pure rules of what a run commits and how commits are worded (domain/commits.py)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from phase_golem.domain.commits import (
    RunChange,
    batch_commit_message,
    clean_summary,
    co_writers,
    halt_commit_message,
    phase_commit_message,
    plan_batch,
    split_touched,
    without_orchestrator_paths,
)


def change(
    run: str,
    touched: tuple[str, ...],
    own: tuple[str, ...] | None = None,
    *,
    succeeded: bool = True,
    immediate: bool = False,
    item: str = "WRK-001",
) -> RunChange:
    return RunChange(
        run, item, "plan", touched, touched if own is None else own, succeeded, immediate, "s"
    )


def test_single_phase_message_strips_a_repeated_prefix() -> None:
    assert phase_commit_message("WRK-001", "build", "[WRK-001][build] Done it") == (
        "[WRK-001][build] Done it"
    )
    assert phase_commit_message("WRK-001", "build", "[WRK-001][build][WRK-001][build] x") == (
        "[WRK-001][build] x"
    )
    assert phase_commit_message("WRK-001", "build", None) == "[WRK-001][build] Phase output"
    assert phase_commit_message("WRK-001", "build", "  \n ") == "[WRK-001][build] Phase output"


def test_summaries_become_one_line() -> None:
    assert clean_summary("A-1", "p", "two\nlines  here") == "two lines here"


def test_batch_of_one_reads_like_a_single_phase() -> None:
    assert batch_commit_message([("WRK-001", "prd", "Wrote it")]) == "[WRK-001][prd] Wrote it"


def test_batch_of_several_has_a_title_blank_line_and_labels() -> None:
    message = batch_commit_message([("WRK-001", "prd", "A"), ("WRK-002", "design", "B")])
    assert message == (
        "[WRK-001][prd] A | [WRK-002][design] B\n\n[WRK-001][prd][WRK-002][design] Phase outputs"
    )


def test_batch_without_summaries_is_only_the_labels() -> None:
    assert batch_commit_message([("A-1", "p", ""), ("B-2", "q", None)]) == "[A-1][p][B-2][q]"


def test_halt_message_is_phase_golems() -> None:
    assert halt_commit_message("AllDoneOrBlocked") == (
        "[phase-golem] Save task state on halt (AllDoneOrBlocked)"
    )


def test_orchestrator_paths_are_never_a_runs() -> None:
    assert without_orchestrator_paths(["_worklog/2026-12.md", "src/a.py"]) == ["src/a.py"]


def test_alone_in_the_tree_every_touched_path_is_the_runs_own() -> None:
    assert split_touched(["src/a", "changes/WRK-1_x/p.md"], ["changes/WRK-1_x"], False) == (
        "src/a",
        "changes/WRK-1_x/p.md",
    )


def test_with_company_only_the_change_folder_is_certainly_the_runs() -> None:
    touched = ["src/a", "changes/WRK-1_x/p.md", "changes/WRK-1_xy/q.md"]
    assert split_touched(touched, ["changes/WRK-1_x"], True) == ("changes/WRK-1_x/p.md",)
    assert split_touched(touched, [], True) == ()


def test_shared_path_goes_to_the_batch_when_only_successful_runs_saw_it() -> None:
    a = change("r1", ("changes/A/p.md", "src/x"), ("changes/A/p.md",))
    b = change("r2", ("src/x", "changes/B/q.md"), ("changes/B/q.md",), item="WRK-002")
    plan = plan_batch([a, b])
    assert plan.paths == ("changes/A/p.md", "changes/B/q.md", "src/x")
    assert plan.shared_paths == ("src/x",)
    assert plan.leftovers == {}
    assert [c.run_id for c in plan.entries] == ["r1", "r2"]


def test_a_path_a_success_and_a_failed_run_saw_is_committed_naming_both() -> None:
    # Which of the two wrote src/x cannot be told: a success's file is never left behind,
    # so it goes into the batch, and the plan names the failed run that overlapped.
    ok = change("r1", ("changes/A/p.md", "src/x"), ("changes/A/p.md",))
    failed = change(
        "r2", ("src/x", "changes/B/q.md"), ("changes/B/q.md",), succeeded=False, item="WRK-002"
    )
    plan = plan_batch([ok, failed])
    assert plan.paths == ("changes/A/p.md", "src/x")
    assert plan.shared_paths == ("src/x",)
    assert plan.leftovers == {"changes/B/q.md": ("r2",)}
    assert [c.run_id for c in plan.entries] == ["r1"]
    assert [c.run_id for c in plan.overlapping] == ["r2"]


def test_a_failed_runs_own_path_stays_its_leftover_even_when_a_success_saw_it() -> None:
    ok = change("r1", ("changes/B/q.md", "src/a"), ("src/a",))
    failed = change("r2", ("changes/B/q.md",), ("changes/B/q.md",), succeeded=False)
    plan = plan_batch([ok, failed])
    assert plan.paths == ("src/a",)
    assert plan.leftovers == {"changes/B/q.md": ("r2",)}
    assert plan.overlapping == ()


def test_a_failed_run_that_shares_nothing_committed_is_not_named() -> None:
    ok = change("r1", ("src/a",), ("src/a",))
    failed = change("r2", ("src/b",), (), succeeded=False, item="WRK-002")
    plan = plan_batch([ok, failed])
    assert plan.paths == ("src/a",) and plan.overlapping == ()
    assert plan.leftovers == {"src/b": ("r2",)}


@pytest.mark.parametrize(
    ("paths", "recorded", "expected"),
    [
        (["src/x"], {}, [("WRK-002", "plan")]),  # the overlapping failed run alone
        (["src/x"], {"src/x": [["WRK-003", "build"]]}, [("WRK-002", "plan"), ("WRK-003", "build")]),
        (["src/x"], {"src/x": [["WRK-001", "plan"]]}, [("WRK-002", "plan")]),  # its own: not named
        (["src/y"], {"src/x": [["WRK-003", "build"]]}, [("WRK-002", "plan")]),  # not committed
    ],
)
def test_co_writers_are_the_other_visits_that_could_have_written_the_commit(
    paths: list[str], recorded: dict[str, list[list[str]]], expected: list[tuple[str, str]]
) -> None:
    ok = change("r1", ("src/x",), ())
    failed = change("r2", ("src/x",), (), succeeded=False, item="WRK-002")
    assert list(co_writers(paths, recorded, [failed], [ok])) == expected


def test_a_batch_names_the_runs_that_overlapped_without_succeeding() -> None:
    message = batch_commit_message([("WRK-002", "plan", "P")], [("WRK-001", "plan")])
    assert message == (
        "[WRK-002][plan] P\n\nShared with overlapping runs that did not succeed: [WRK-001][plan]"
    )
    assert batch_commit_message([("WRK-002", "plan", "P")], []) == "[WRK-002][plan] P"


def test_a_path_only_failed_runs_saw_is_a_leftover_of_each() -> None:
    a = change("r1", ("src/x",), (), succeeded=False)
    b = change("r2", ("src/x",), (), succeeded=False)
    plan = plan_batch([a, b])
    assert plan.paths == () and plan.entries == ()
    assert plan.leftovers == {"src/x": ("r1", "r2")}


def test_immediate_runs_own_paths_are_not_batched_again_but_their_shared_ones_are() -> None:
    now = change("r1", ("src/destroy", "src/other"), ("src/destroy",), immediate=True)
    plan = plan_batch([now])
    assert plan.paths == ("src/other",)
    assert [c.run_id for c in plan.entries] == ["r1"]


@given(
    st.lists(
        st.tuples(
            st.sets(st.sampled_from(["a", "b", "c", "d"]), max_size=4),
            st.booleans(),
        ),
        max_size=5,
    )
)
def test_no_path_is_both_committed_and_left_over(runs: list[tuple[set[str], bool]]) -> None:
    group = [
        change(f"r{i}", tuple(sorted(paths)), (), succeeded=ok)
        for i, (paths, ok) in enumerate(runs)
    ]
    plan = plan_batch(group)
    assert not set(plan.paths) & set(plan.leftovers)
    touched = {p for paths, _ in runs for p in paths}
    assert set(plan.paths) | set(plan.leftovers) <= touched
    success_saw = {p for paths, ok in runs if ok for p in paths}
    failed_saw = {p for paths, ok in runs if not ok for p in paths}
    assert set(plan.paths) == success_saw  # a success's file is never left behind
    assert set(plan.leftovers) == failed_saw - success_saw
    # every failed run that saw a committed path is named by the commit
    named = {c.run_id for c in plan.overlapping}
    for i, (paths, ok) in enumerate(runs):
        assert (f"r{i}" in named) == (not ok and bool(paths & success_saw))
