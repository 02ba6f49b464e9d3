"""Keys, receipts, verify, ledger export and torn lines through the real CLI and sim."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from pathlib import Path

from phase_golem.domain.ndjson import parse_ndjson
from tests.conftest import Repo
from tests.e2e import (
    add_items,
    chain_of,
    commit_all,
    kill_mid_phase,
    run_dir,
    runs_of,
    start_run,
    wait_for_agents,
    write_project,
)
from tests.waiting import never, wait_until

BUILD_WRITES = """\
  - match: {phase: build}
    write: {"src/{item}.txt": "built {item}\\n"}
    artifacts: ["src/{item}.txt", "../outside.txt", "never-written.txt"]
"""


def key_log(repo: Repo) -> list[list[str]]:
    path = repo.root / "keys.log"
    return [line.split() for line in path.read_text().splitlines()]


def test_a_retry_carries_the_byte_identical_key_to_the_agent(git_repo: Repo) -> None:
    rules = "  - match: {phase: build}\n    fail_times: 1\n    key_log: keys.log\n"
    repo = write_project(git_repo, rules)
    add_items(repo, "Flaky")
    assert repo.pg("run").code == 0
    builds = chain_of(runs_of(repo), "build").runs
    assert [r["status"] for r in builds] == ["failed:logic", "committed"]
    seen = key_log(repo)
    assert [(line[0], line[3]) for line in seen] == [(builds[0]["id"], "1"), (builds[1]["id"], "2")]
    stored = builds[0]["idempotency_key"]
    assert stored.startswith("ik:") and len(stored) == 67
    assert [line[4] for line in seen] == [stored, stored]
    assert builds[1]["idempotency_key"] == stored


def test_the_key_survives_a_sigkill_and_restart_byte_for_byte(
    git_repo: Repo, tmp_path: Path
) -> None:
    rules = (
        f"  - match: {{phase: plan}}\n    wait_for: {never(tmp_path)!r}\n    times: 1\n"
        "    key_log: keys.log\n"
    )
    rules += "  - match: {phase: plan}\n    key_log: keys.log\n"
    repo = write_project(git_repo, rules)
    add_items(repo, "Interrupted")
    process = start_run(repo, own_session=True)
    try:
        [first] = wait_for_agents(repo, "plan", 1, process=process)
        keys = repo.root / "keys.log"
        wait_until(  # the agent has told us its key before it is killed
            lambda: keys.exists() and keys.read_text().endswith("\n"),
            "the agent logged its key",
            process=process,
        )
        # Power loss: orchestrator and agent (the orchestrator first, so it cannot see the
        # agent die and record it, as it could never do when the power goes).
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        os.killpg(first["pid"], signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert repo.pg("run").code == 0
    plans = chain_of(runs_of(repo), "plan").runs
    assert [r["status"] for r in plans] == ["crashed", "committed"]
    assert plans[0]["id"] == first["id"] and plans[1]["retry_of"] == first["id"]
    seen = key_log(repo)
    assert [line[0] for line in seen] == [plans[0]["id"], plans[1]["id"]]
    assert seen[0][4].encode() == seen[1][4].encode() == first["idempotency_key"].encode()


def test_verify_finds_a_changed_artifact_and_passes_once_it_is_restored(git_repo: Repo) -> None:
    repo = write_project(git_repo, BUILD_WRITES)
    add_items(repo, "Build a file")
    assert repo.pg("run").code == 0
    [build] = [r for r in runs_of(repo) if r["phase"] == "build"]
    shown = repo.ok("show", "WRK-001", "--json").json()
    receipts = {r["run_id"]: r for r in shown["receipts"]}
    assert set(receipts) == {r["id"] for r in runs_of(repo) if r["status"] == "committed"}
    artifacts = {a["path"]: a for a in receipts[build["id"]]["artifacts"]}
    assert artifacts["src/WRK-001.txt"]["state"] == "present"
    assert artifacts["src/WRK-001.txt"]["size"] == len("built WRK-001\n")
    assert artifacts["../outside.txt"]["state"] == "unsafe"
    assert artifacts["never-written.txt"]["state"] == "missing"
    assert receipts[build["id"]]["idempotency_key"] == build["idempotency_key"]
    text = repo.ok("show", "WRK-001").out
    assert "receipt(s)" in text and "1 missing, 1 unsafe" in text

    ok = repo.pg("verify")
    assert ok.code == 0, ok.out + ok.err
    assert "all match" in ok.out and "1 unsafe or unreadable when recorded" in ok.out

    target = repo.root / "src" / "WRK-001.txt"
    target.write_text("BUILT WRK-001\n")  # same size, other content
    changed = repo.pg("verify", "WRK-001")
    assert changed.code == 1
    assert f"{build['id']} WRK-001 src/WRK-001.txt: changed (sha256 " in changed.out
    report = repo.pg("verify", "--json").json()
    [mismatch] = report["mismatches"]
    assert report["ok"] is False and mismatch["kind"] == "changed"
    assert mismatch["old_sha256"] == artifacts["src/WRK-001.txt"]["sha256"]
    assert mismatch["new_sha256"] != mismatch["old_sha256"] and mismatch["run_id"] == build["id"]

    (repo.root / "never-written.txt").write_text("surprise")
    target.unlink()
    kinds = {m["path"]: m["kind"] for m in repo.pg("verify", "--json").json()["mismatches"]}
    assert kinds == {"src/WRK-001.txt": "missing", "never-written.txt": "appeared"}

    (repo.root / "never-written.txt").unlink()
    target.write_text("built WRK-001\n")
    assert repo.pg("verify").code == 0
    assert repo.pg("verify", "WRK-001").code == 0  # a done, archived item is still verified


def test_a_later_run_that_rewrites_a_file_supersedes_the_earlier_record(git_repo: Repo) -> None:
    rules = (
        "  - match: {phase: build}\n"
        '    write: {"shared.txt": "from build\\n"}\n'
        '    artifacts: ["shared.txt"]\n'
        "  - match: {phase: review}\n"
        '    write: {"shared.txt": "rewritten by review\\n"}\n'
        '    artifacts: ["shared.txt"]\n'
    )
    repo = write_project(git_repo, rules)
    add_items(repo, "Rewrite")
    assert repo.pg("run").code == 0
    result = repo.pg("verify", "WRK-001")
    assert result.code == 0, result.out
    assert "1 superseded by a later run" in result.out
    history = repo.pg("verify", "--all-runs", "--json")
    assert history.code == 1
    [old] = history.json()["mismatches"]
    build = next(r for r in runs_of(repo) if r["phase"] == "build")
    assert (old["run_id"], old["path"], old["kind"]) == (build["id"], "shared.txt", "size_changed")


def test_verify_of_an_unknown_item_is_bad_input(project: Repo) -> None:
    result = project.pg("verify", "WRK-404")
    assert result.code == 2 and "no item WRK-404" in result.err
    empty = project.pg("verify")
    assert empty.code == 0 and "Verified 0 artifact(s) from 0 receipt(s)" in empty.out


def test_the_ledger_exports_as_ndjson_atomically(git_repo: Repo) -> None:
    repo = write_project(git_repo)
    add_items(repo, "One", "Two")
    logged = repo.ok("log", "--json").json_lines()
    private = repo.root / "exports" / "ledger.ndjson"
    private.parent.mkdir(mode=0o700)
    done = repo.pg("export", "--ledger", str(private))
    assert done.code == 0 and f"Exported {len(logged)} ledger event(s)" in done.out
    lines = private.read_text().splitlines()
    assert [json.loads(line) for line in lines] == logged
    assert not [p for p in private.parent.iterdir() if p.name.endswith(".tmp")]
    # Read back after a writer was cut off mid-append: the torn line goes, with a warning.
    torn = private.read_text() + '{"seq": 99, "at": "2026-'
    parsed = parse_ndjson(torn, private.name)
    assert [value for _, value in parsed.records] == logged
    assert parsed.warnings == (
        f"ledger.ndjson: line {len(logged) + 1}: ignored a torn final line "
        "(Unterminated string starting at)",
    )

    piped = repo.ok("export", "--ledger", "-", "--item", "WRK-002").json_lines()
    assert piped and {e["item_id"] for e in piped} == {"WRK-002"}
    assert piped == [e for e in logged if e["item_id"] == "WRK-002"]
    after = logged[1]["seq"]
    later = repo.ok("export", "--ledger", "-", "--after", str(after)).json_lines()
    assert later == [e for e in logged if e["seq"] > after]

    outside = repo.root / "out" / "ledger.ndjson"
    outside.parent.mkdir()
    repo.ok("export", "--ledger", str(outside))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(outside.stat().st_mode) == 0o666 & ~umask  # as a plain write would
    assert outside.read_text() == private.read_text()


def test_ledger_export_refuses_bad_input_and_writes_nothing(project: Repo) -> None:
    cases = [
        (["export", "--ledger", "-", "--item", "WRK-404"], "no item WRK-404"),
        (["export", "--ledger", "-", "extra.yaml"], "drop the extra FILE"),
        (["export", "--ledger", "-", "--format", "task-golem"], "drop --format"),
        (["export", "--item", "WRK-001"], "--item and --after go with --ledger"),
        (["export", "--ledger", "no/such/dir/ledger.ndjson"], "does not exist"),
    ]
    for args, message in cases:
        result = project.pg(*args)
        assert result.code == 2, (args, result.err)
        assert message in result.err and result.out == "", args
    assert not (project.root / "extra.yaml").exists()


def test_a_torn_last_stream_line_is_tolerated_with_a_warning(git_repo: Repo) -> None:
    repo = write_project(git_repo, "  - match: {phase: plan}\n    torn_stream: true\n")
    add_items(repo, "Torn")
    result = repo.pg("run", "--plain")
    assert result.code == 0, result.err
    [plan] = [r for r in runs_of(repo) if r["phase"] == "plan"]
    assert plan["status"] == "committed" and plan["cost_usd"] == 0.01  # the stream still counted
    stream = run_dir(repo, plan["id"]) / "stdout.log"
    lines = stream.read_text().split("\n")
    assert f"{stream}: line {len(lines)}: ignored a torn final line" in result.err


def test_an_adopted_agent_with_a_torn_stream_is_completed(git_repo: Repo, tmp_path: Path) -> None:
    release = tmp_path / "release-plan"
    rules = f"  - match: {{phase: plan}}\n    wait_for: {str(release)!r}\n    torn_stream: true\n"
    repo = write_project(git_repo, rules)
    add_items(repo, "Orphan")
    orphan = kill_mid_phase(repo, "plan", agent_too=False)
    release.touch()
    result = repo.pg("run", "--plain")
    assert result.code == 0, result.err
    assert "adopting it" in result.out and "ignored a torn final line" in result.err
    [plan] = [r for r in runs_of(repo) if r["phase"] == "plan"]
    assert (plan["id"], plan["status"]) == (orphan["id"], "committed")
    receipts = repo.ok("show", "WRK-001", "--json").json()["receipts"]
    assert orphan["id"] in {r["run_id"] for r in receipts}  # adoption writes it too


def test_a_torn_sim_state_file_does_not_stop_the_sim(git_repo: Repo) -> None:
    repo = write_project(git_repo)
    state = repo.root / ".phase-golem" / "sim-state.json"
    state.write_text('{"WRK-001/triage": 1, "WRK-0')  # as a non-atomic writer left it
    add_items(repo, "After a torn state")
    commit_all(repo, "state")
    assert repo.pg("run").code == 0
    counts = json.loads(state.read_text())
    assert counts["WRK-001/plan"] == 1
    assert stat.S_IMODE(state.stat().st_mode) == 0o600


def test_receipts_keep_paths_relative_to_where_they_resolve(git_repo: Repo) -> None:
    repo = write_project(git_repo, BUILD_WRITES)
    add_items(repo, "Where")
    assert repo.pg("run").code == 0
    receipts = repo.ok("show", "WRK-001", "--json").json()["receipts"]
    assert {r["workdir"] for r in receipts} == {str(Path(repo.root).resolve())}


def test_receipts_name_the_touched_paths_and_the_commit_that_saved_them(git_repo: Repo) -> None:
    rules = '  - match: {phase: build}\n    write: {"src/{item}.txt": "built {item}\\n"}\n'
    repo = write_project(git_repo, rules)  # nothing reported: git's view alone
    add_items(repo, "Committed")
    assert repo.pg("run").code == 0
    [build] = [r for r in runs_of(repo) if r["phase"] == "build"]
    receipts = {r["run_id"]: r for r in repo.ok("show", "WRK-001", "--json").json()["receipts"]}
    receipt = receipts[build["id"]]
    [artifact] = receipt["artifacts"]
    assert (artifact["path"], artifact["touched"], artifact["reported"]) == (
        "src/WRK-001.txt",
        True,
        False,
    )
    assert receipt["snapshot_after"] == build["snapshot_after"] is not None
    assert receipt["snapshot_before"] == build["snapshot_before"]
    log = subprocess.run(
        ["git", "-C", str(repo.root), "log", "--format=%H", "--", "src/WRK-001.txt"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert receipt["commit"] == log[0]
    events = [e["kind"] for e in repo.ok("log", "--json", "--item", "WRK-001").json_lines()]
    assert "receipt.recorded" in events and "receipt.committed" in events


def test_receipts_of_a_removed_worktree_are_verified_where_it_was_merged(git_repo: Repo) -> None:
    repo = write_project(
        git_repo, BUILD_WRITES, execution='isolation = "worktree"', pipelines=MERGED_PIPELINE
    )
    add_items(repo, "In a worktree")
    result = repo.pg("run")
    assert result.code == 0, result.err
    # Take the merge back out of the base branch: the work is then nowhere to be found.
    root_git = ["git", "-C", str(repo.root)]
    merged = subprocess.run(
        [*root_git, "log", "-1", "--format=%H", "--merges"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    subprocess.run([*root_git, "reset", "-q", "--hard", f"{merged}^1"], check=True)
    [build] = [r for r in runs_of(repo) if r["phase"] == "build"]
    [receipt] = [
        r
        for r in repo.ok("show", "WRK-001", "--json").json()["receipts"]
        if r["run_id"] == build["id"]
    ]
    assert receipt["workdir"].endswith("/.phase-golem/worktrees/WRK-001")
    assert not Path(receipt["workdir"]).exists()  # removed once the item was done
    unmerged = repo.pg("verify", "WRK-001")
    assert unmerged.code == 1
    assert f"{build['id']} WRK-001 src/WRK-001.txt: missing" in unmerged.out
    assert "worktrees/WRK-001 is gone, so it was looked for in the project root" in unmerged.out
    subprocess.run([*root_git, "reset", "-q", "--hard", merged], check=True)
    assert repo.pg("verify", "WRK-001").code == 0  # merged: the root has what the run left
    (repo.root / "src" / "WRK-001.txt").write_text("changed after the merge\n")
    assert repo.pg("verify", "WRK-001").code == 1


MERGED_PIPELINE = """\
[pipelines.feature]
phases = [
    { name = "plan", is_destructive = false },
    { name = "build", is_destructive = true },
    { name = "merge", is_destructive = true, side_effect = true, agent = "merge" },
]
"""


def test_a_merged_worktrees_receipts_hold_in_the_root(git_repo: Repo) -> None:
    rules = '  - match: {phase: build}\n    write: {"src/{item}.txt": "built {item}\\n"}\n'
    repo = write_project(
        git_repo, rules, execution='isolation = "worktree"', pipelines=MERGED_PIPELINE
    )
    add_items(repo, "Merged")
    assert repo.pg("run").code == 0
    assert not (repo.root / ".phase-golem" / "worktrees" / "WRK-001").exists()
    result = repo.pg("verify", "WRK-001")
    assert result.code == 0, result.out
    (repo.root / "src" / "WRK-001.txt").write_text("BUILT WRK-001\n")
    [mismatch] = repo.pg("verify", "--json").json()["mismatches"]
    assert (mismatch["path"], mismatch["kind"]) == ("src/WRK-001.txt", "changed")
    assert mismatch["reason"].endswith("is gone, so it was looked for in the project root")


def test_verify_checks_the_files_of_a_phase_that_succeeded_on_a_retry(git_repo: Repo) -> None:
    # The retry writes the same bytes as the failed first attempt: its own difference is
    # empty, yet the file is the phase's work (committed with it), so its receipt lists it.
    rules = """\
  - match: {item: WRK-001, phase: plan}
    fail_times: 1
    write: {"docs/WRK-001-plan.md": "plan of WRK-001\\n"}
"""
    repo = write_project(git_repo, rules, execution="max_retries = 1")
    add_items(repo, "Plans on the second go")
    assert repo.pg("run").code == 0
    [plan] = [r for r in runs_of(repo) if r["phase"] == "plan" and r["status"] == "committed"]
    assert plan["retry_of"] is not None
    [receipt] = [
        r
        for r in repo.ok("show", "WRK-001", "--json").json()["receipts"]
        if r["run_id"] == plan["id"]
    ]
    assert [a["path"] for a in receipt["artifacts"]] == ["docs/WRK-001-plan.md"]
    assert repo.pg("verify", "WRK-001").code == 0
    (repo.root / "docs" / "WRK-001-plan.md").write_text("edited since\n")
    changed = repo.pg("verify", "WRK-001")
    assert changed.code == 1 and "docs/WRK-001-plan.md" in changed.out
