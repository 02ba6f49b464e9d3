"""Pure rules of what a run commits and how commits are worded (domain/commits.py)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from phase_golem.domain.commits import (
    RunChange,
    batch_commit_message,
    clean_summary,
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


def test_shared_path_goes_to_the_batch_when_a_successful_run_saw_it() -> None:
    ok = change("r1", ("changes/A/p.md", "src/x"), ("changes/A/p.md",))
    failed = change("r2", ("src/x", "changes/B/q.md"), ("changes/B/q.md",), succeeded=False)
    plan = plan_batch([ok, failed])
    assert plan.paths == ("changes/A/p.md", "src/x")
    assert plan.shared_paths == ("src/x",)
    assert plan.leftovers == {"changes/B/q.md": ("r2",)}
    assert [c.run_id for c in plan.entries] == ["r1"]


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
    assert set(plan.paths) | set(plan.leftovers) == touched
    for path in plan.leftovers:
        assert not any(ok and path in paths for paths, ok in runs)


def test_a_failed_runs_own_path_is_never_committed_for_a_run_that_saw_it() -> None:
    ok = change("r1", ("changes/A/p.md", "changes/B/q.md"), ("changes/A/p.md",))
    failed = change("r2", ("changes/B/q.md",), ("changes/B/q.md",), succeeded=False)
    plan = plan_batch([ok, failed])
    assert plan.paths == ("changes/A/p.md",)
    assert plan.leftovers == {"changes/B/q.md": ("r2",)}
