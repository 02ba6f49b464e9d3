"""Receipts: the pure rules (paths, compare, which record speaks for a path), hashing
files safely, torn JSON lines, and the receipt completion writes for a committed run."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from pathlib import Path

import pytest

from phase_golem.agents.base import StreamInfo
from phase_golem.agents.claude import ClaudeAdapter
from phase_golem.agents.codex import CodexAdapter
from phase_golem.agents.runner import AgentOutcome
from phase_golem.config import default_pipelines
from phase_golem.domain.errors import ParseError
from phase_golem.domain.events import EventKind
from phase_golem.domain.items import new_item
from phase_golem.domain.ndjson import NdjsonError, parse_ndjson
from phase_golem.domain.pipelines import Settings
from phase_golem.domain.receipts import (
    ArtifactDigest,
    ArtifactState,
    MismatchKind,
    Receipt,
    checks_for,
    compare,
    normalise_path,
    receipt_from_dict,
)
from phase_golem.domain.results import PhaseResult, ResultCode
from phase_golem.domain.runs import ErrorClass, Run, RunKind, Step
from phase_golem.engine.completion import complete_run
from phase_golem.engine.receipts import verify
from phase_golem.fsutil import write_atomically
from phase_golem.store.memory import MemoryStore
from phase_golem.workspace.receipts import digest_artifacts, digest_path, workdir_path

SETTINGS = Settings(pipelines=default_pipelines())
SHA_A = "a" * 64
SHA_B = "b" * 64


def present(path: str, sha: str = SHA_A, size: int = 3) -> ArtifactDigest:
    return ArtifactDigest(path, ArtifactState.PRESENT, sha, size)


def receipt(run_id: str, *artifacts: ArtifactDigest, item: str = "WRK-001") -> Receipt:
    return Receipt(run_id, item, "build", "2026-12-01T00:00:00", artifacts=artifacts)


# --- domain ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "normal", "unsafe"),
    [
        ("src/x.txt", "src/x.txt", None),
        ("./src//x.txt", "src/x.txt", None),
        ("src/../x.txt", "x.txt", None),
        ("/etc/passwd", "/etc/passwd", "absolute path"),
        ("C:\\Windows\\x", "C:\\Windows\\x", "absolute path"),
        ("../outside.txt", "../outside.txt", "'..' leads outside"),
        ("src/../../outside.txt", "src/../../outside.txt", "'..' leads outside"),
        ("..", "..", "'..' leads outside"),
        (".", ".", "working directory itself"),
        ("", "", "not a usable path"),
    ],
)
def test_paths_are_normalised_and_escapes_named(raw: str, normal: str, unsafe: str | None) -> None:
    got, reason = normalise_path(raw)
    assert got == normal
    if unsafe is None:
        assert reason is None
    else:
        assert reason is not None and unsafe in reason


def test_compare_names_every_kind_of_mismatch() -> None:
    recorded = receipt(
        "run-000001",
        present("same"),
        present("changed"),
        present("resized"),
        present("gone"),
        present("swapped"),
        present("dir"),
        ArtifactDigest("was-missing", ArtifactState.MISSING),
        ArtifactDigest("still-missing", ArtifactState.MISSING),
        ArtifactDigest("/abs", ArtifactState.UNSAFE, reason="absolute path"),
    )
    now = {
        "same": present("same"),
        "changed": present("changed", SHA_B),
        "resized": present("resized", SHA_B, 4),
        "swapped": ArtifactDigest("swapped", ArtifactState.UNSAFE, reason="a symlink leads out"),
        "dir": ArtifactDigest("dir", ArtifactState.UNREADABLE, reason="a directory"),
        "was-missing": present("was-missing"),
        "still-missing": ArtifactDigest("still-missing", ArtifactState.MISSING),
    }  # "gone" is absent from the mapping: missing
    found = {m.path: m for m in compare(recorded, now)}
    assert {p: m.kind for p, m in found.items()} == {
        "changed": MismatchKind.CHANGED,
        "resized": MismatchKind.SIZE_CHANGED,
        "gone": MismatchKind.MISSING,
        "swapped": MismatchKind.UNSAFE,
        "dir": MismatchKind.UNREADABLE,
        "was-missing": MismatchKind.APPEARED,
    }
    changed = found["changed"]
    assert (changed.old_sha256, changed.new_sha256, changed.run_id) == (SHA_A, SHA_B, "run-000001")
    assert (found["resized"].old_size, found["resized"].new_size) == (3, 4)
    assert "aaaaaaaaaaaa → bbbbbbbbbbbb" in changed.describe()
    assert found["swapped"].reason == "a symlink leads out"


def test_the_latest_receipt_of_a_path_speaks_for_it_unless_all_runs() -> None:
    early = receipt("run-000001", present("src/x.txt"), present("src/y.txt"))
    late = receipt("run-000002", present("src/x.txt", SHA_B), item="WRK-002")
    checks, superseded = checks_for([early, late], all_runs=False)
    assert {(c.receipt.run_id, c.artifact.path) for c in checks} == {
        ("run-000002", "src/x.txt"),
        ("run-000001", "src/y.txt"),
    }
    assert superseded == 1
    every, none_superseded = checks_for([early, late], all_runs=True)
    assert len(every) == 3 and none_superseded == 0
    # One item's paths, held to whichever run recorded them last.
    subject, _ = checks_for([early, late], all_runs=False, subject=[early])
    assert {(c.receipt.run_id, c.artifact.path) for c in subject} == {
        ("run-000002", "src/x.txt"),
        ("run-000001", "src/y.txt"),
    }
    only_late, _ = checks_for([early, late], all_runs=False, subject=[late])
    assert [(c.receipt.run_id, c.artifact.path) for c in only_late] == [("run-000002", "src/x.txt")]


def test_receipts_round_trip_through_json_and_bad_json_names_the_field() -> None:
    original = Receipt(
        "run-000003",
        "WRK-001",
        "build",
        "2026-12-01T00:00:00",
        idempotency_key="ik:1",
        snapshot_before="s1",
        snapshot_after="s2",
        commit="c0ffee",
        workdir="/tree",
        artifacts=(present("a", size=0), ArtifactDigest("b", ArtifactState.MISSING, touched=True)),
    )
    assert receipt_from_dict(original.to_dict()) == original
    broken = original.to_dict()
    broken["artifacts"][0]["state"] = "exploded"
    with pytest.raises(ParseError, match=r"artifacts\[0\]: unknown state 'exploded'"):
        receipt_from_dict(broken)
    broken = original.to_dict()
    broken["artifacts"][1]["size"] = -1
    with pytest.raises(ParseError, match=r"artifacts\[1\]: size must be"):
        receipt_from_dict(broken)


def test_ndjson_drops_a_torn_final_line_with_a_warning_and_rejects_one_in_the_middle() -> None:
    parsed = parse_ndjson('{"a": 1}\n\n{"b": 2}\n{"c": ', "events.ndjson")
    assert [v for _, v in parsed.records] == [{"a": 1}, {"b": 2}]
    assert parsed.warnings == (
        "events.ndjson: line 4: ignored a torn final line (Expecting value)",
    )
    with pytest.raises(NdjsonError, match=r"^events.ndjson: line 2: malformed JSON"):
        parse_ndjson('{"a": 1}\n{"b": \n{"c": 3}\n', "events.ndjson")
    damaged: list[str] = []
    lenient = parse_ndjson('{"a": 1}\n{"b": \n{"c": 3}\n', "s", on_damage=damaged.append)
    assert [v for _, v in lenient.records] == [{"a": 1}, {"c": 3}]
    assert damaged == ["s: line 2: malformed JSON: Expecting value"]
    assert parse_ndjson("", "x").records == ()


# --- hashing files ---------------------------------------------------------------------


def test_files_are_hashed_and_unsafe_paths_never_read(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "src").mkdir(parents=True)
    (tree / "src" / "x.txt").write_bytes(b"hello")
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    (tree / "leak").symlink_to(outside)
    (tree / "inner").symlink_to(tree / "src" / "x.txt")
    (tree / "dangling").symlink_to(tree / "nowhere")
    (tree / "srclink").symlink_to(tree / "src")
    os.mkfifo(tree / "pipe")
    got = {
        d.path: d
        for d in (
            digest_path(tree, p)
            for p in [
                "src/x.txt",
                "leak",
                "inner",
                "dangling",
                "missing.txt",
                "src",
                "pipe",
                "/etc/passwd",
                "../secret.txt",
                "srclink/x.txt",
            ]
        )
    }
    assert got["src/x.txt"] == ArtifactDigest(
        "src/x.txt", ArtifactState.PRESENT, hashlib.sha256(b"hello").hexdigest(), 5
    )
    assert got["leak"].state is ArtifactState.UNSAFE and "symlink" in (got["leak"].reason or "")
    assert got["inner"].sha256 == got["src/x.txt"].sha256  # a symlink that stays inside is fine
    assert got["srclink/x.txt"].sha256 == got["src/x.txt"].sha256
    assert got["dangling"].state is ArtifactState.MISSING
    assert got["missing.txt"] == ArtifactDigest("missing.txt", ArtifactState.MISSING)
    assert (got["src"].state, got["src"].reason) == (ArtifactState.UNREADABLE, "a directory")
    assert got["pipe"].state is ArtifactState.UNREADABLE  # opened without blocking
    assert got["/etc/passwd"].state is ArtifactState.UNSAFE
    assert got["../secret.txt"].state is ArtifactState.UNSAFE


def test_reported_and_touched_paths_are_merged_once_each(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    digests = digest_artifacts(tmp_path, ["./a.txt", "b.txt"], ["a.txt", "c.txt"])
    assert [(d.path, d.reported, d.touched) for d in digests] == [
        ("a.txt", True, True),
        ("b.txt", True, False),
        ("c.txt", False, True),
    ]


def test_atomic_writes_are_private_only_when_asked(tmp_path: Path) -> None:
    write_atomically(tmp_path / "private.txt", "x", private=True)
    write_atomically(tmp_path / "plain.txt", iter(["a", "b"]))
    assert stat.S_IMODE((tmp_path / "private.txt").stat().st_mode) == 0o600
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode) == 0o666 & ~umask
    assert (tmp_path / "plain.txt").read_text() == "ab"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.txt", "private.txt"]


# --- completion writes the receipt -----------------------------------------------------


def setup_run(store: MemoryStore) -> Run:
    with store.transaction() as tx:
        tx.create_item(new_item("WRK-001", "Build it", tx.now))
        run = Run(
            id=tx.allocate_run_id(),
            item_id="WRK-001",
            phase="triage",
            kind=RunKind.TRIAGE,
            queued_at=tx.now.isoformat(),
            idempotency_key="ik:key",
            snapshot_before="snap-before",
        )
        tx.create_run(run)
    with store.transaction() as tx:
        tx.save_run(run.replace(step=Step.STARTED), EventKind.RUN_STARTED)
    return run


def triage_result(*artifacts: str) -> PhaseResult:
    return PhaseResult(
        item_id="WRK-001",
        phase="triage",
        result=ResultCode.PHASE_COMPLETE,
        summary="triaged",
        artifacts=artifacts,
    )


def test_a_committed_run_gets_a_receipt_in_its_completion(tmp_path: Path) -> None:
    store = MemoryStore()
    run = setup_run(store)
    (tmp_path / "notes.md").write_text("notes")
    outcome = AgentOutcome(triage_result("notes.md", "../escape"), None, None, StreamInfo())
    done = complete_run(store, SETTINGS, run.id, outcome, workdir=tmp_path, touched=["gone.txt"])
    assert done.run.status.value == "committed"
    with store.reader() as tx:
        (saved,) = tx.list_receipts()
    assert (saved.run_id, saved.idempotency_key, saved.snapshot_before) == (
        run.id,
        "ik:key",
        "snap-before",
    )
    assert saved.workdir == str(tmp_path.resolve()) and saved.commit is None
    states = {a.path: (a.state, a.reported, a.touched) for a in saved.artifacts}
    assert states == {
        "notes.md": (ArtifactState.PRESENT, True, False),
        "../escape": (ArtifactState.UNSAFE, True, False),
        "gone.txt": (ArtifactState.MISSING, False, True),
    }
    report = verify(store, tmp_path)
    assert report.ok and report.checked == 2 and report.unverifiable == 1
    (tmp_path / "notes.md").write_text("edited")
    (changed,) = verify(store, tmp_path).mismatches
    assert (changed.path, changed.kind, changed.run_id) == ("notes.md", "size_changed", run.id)


def test_a_run_that_does_not_commit_gets_no_receipt(tmp_path: Path) -> None:
    store = MemoryStore()
    run = setup_run(store)
    outcome = AgentOutcome(None, ErrorClass.CRASHED, "died", StreamInfo())
    complete_run(store, SETTINGS, run.id, outcome, workdir=tmp_path)
    with store.reader() as tx:
        assert tx.list_receipts() == []


# --- agent streams ---------------------------------------------------------------------


def test_agent_streams_survive_a_torn_last_line_and_name_damage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    claude_log = tmp_path / "claude.log"
    claude_log.write_text(
        '{"type": "system", "subtype": "init", "session_id": "s-1"}\n'
        "plain text the CLI printed\n"
        '{"type": "result", "total_cost_usd": 0.25, "usage": {"output_tokens": 7}}\n'
        '{"type": "assistant", "message": {"content": "half'
    )
    info = ClaudeAdapter().read_stream(claude_log)
    assert (info.session_id, info.cost_usd, info.tokens_out) == ("s-1", 0.25, 7)
    [warning] = caplog.records
    assert warning.levelno == logging.WARNING
    assert warning.getMessage() == f"{claude_log}: line 4: ignored a torn final line " + (
        "(Unterminated string starting at)"
    )
    caplog.clear()
    codex_log = tmp_path / "codex.log"
    codex_log.write_text(
        '{"type": "thread.started", "thread_id": "t-1"}\n'
        '{"type": "turn.comp\n'
        '{"type": "turn.completed", "usage": {"input_tokens": 3, "output_tokens": 4}}\n'
    )
    info = CodexAdapter().read_stream(codex_log)
    assert (info.session_id, info.tokens_in, info.tokens_out) == ("t-1", 3, 4)
    [error] = caplog.records
    assert error.levelno == logging.ERROR
    assert error.getMessage().startswith(f"{codex_log}: line 2: malformed JSON")


def test_a_receipt_whose_worktree_is_gone_is_verified_in_the_root(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    assert workdir_path(tmp_path, str(tree)) == tree
    assert workdir_path(tmp_path, "tree") == tree
    assert workdir_path(tmp_path, str(tmp_path / "removed-worktree")) == tmp_path


def test_records_from_removed_worktrees_supersede_each_other_where_they_now_resolve() -> None:
    early = Receipt(
        "run-000001",
        "WRK-001",
        "build",
        "t1",
        workdir="/wt/WRK-001",
        artifacts=(present("src/x.txt"),),
    )
    late = Receipt(
        "run-000002",
        "WRK-002",
        "build",
        "t2",
        workdir="/wt/WRK-002",
        artifacts=(present("src/x.txt", SHA_B),),
    )
    apart, _ = checks_for([early, late], all_runs=False)
    assert len(apart) == 2  # two living worktrees: two files
    merged = {"/wt/WRK-001": "/root", "/wt/WRK-002": "/root"}
    [check], superseded = checks_for([early, late], all_runs=False, located=merged)
    assert (check.receipt.run_id, superseded) == ("run-000002", 1)
