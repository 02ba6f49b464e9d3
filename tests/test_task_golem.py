"""task-golem JSONL (Phase Golem's HEAD-era store): parsing, writing, and the CLI round trip."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phase_golem.domain.items import (
    PHASE_GOLEM_FIELDS,
    BlockedType,
    Item,
    ItemStatus,
    Level,
    PhasePool,
    Size,
)
from phase_golem.interchange.backlog_yaml import BacklogFormatError
from phase_golem.interchange.task_golem import (
    dump_task_golem_jsonl,
    item_to_task_golem,
    parse_task_golem_text,
)
from tests.conftest import Repo, fixture_path, make_git_repo, upstream_path
from tests.strategies import stored_items

HEADER = '{"schema_version":1}'


def native(**fields: Any) -> dict[str, Any]:
    """A task-golem item as `tg` writes it: every native field present, nulls kept."""
    record: dict[str, Any] = {
        "id": "HAMY-5c0f8",
        "title": "Add retries",
        "status": "todo",
        "priority": 0,
        "description": None,
        "tags": [],
        "dependencies": [],
        "created_at": "2026-02-24T12:00:00.123456789Z",
        "updated_at": "2026-02-25T08:30:00Z",
        "blocked_reason": None,
        "blocked_from_status": None,
        "claimed_by": None,
        "claimed_at": None,
        "parent": None,
    }
    record.update(fields)
    return record


def jsonl(*records: dict[str, Any], header: str = HEADER) -> str:
    return "\n".join([header, *(json.dumps(r) for r in records)]) + "\n"


def parse_one(record: dict[str, Any], *, archive: bool = False) -> tuple[Item, list[str]]:
    parsed = parse_task_golem_text(jsonl(record), "tasks.jsonl", archive=archive)
    (item,) = parsed.items
    return item, list(parsed.warnings)


@pytest.mark.parametrize(
    ("native_status", "pg_status", "expected"),
    [
        ("todo", None, ItemStatus.NEW),  # `tg add` items carry no x-pg-status
        ("todo", "new", ItemStatus.NEW),
        ("todo", "scoping", ItemStatus.SCOPING),
        ("todo", "ready", ItemStatus.READY),
        ("doing", None, ItemStatus.IN_PROGRESS),
        ("doing", "ready", ItemStatus.IN_PROGRESS),  # a leftover x-pg-status is ignored
        ("done", None, ItemStatus.DONE),
        ("blocked", "scoping", ItemStatus.BLOCKED),
    ],
)
def test_status_mapping(native_status: str, pg_status: str | None, expected: ItemStatus) -> None:
    extra = {"x-pg-status": pg_status} if pg_status else {}
    if native_status == "doing":
        extra["x-pg-phase"] = "build"  # without one it is reported (below)
    item, warnings = parse_one(native(status=native_status, **extra))
    assert item.status is expected
    assert warnings == []


@pytest.mark.parametrize("prefix", ["x-pg-", "x-"])
@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("status", "sideways", "invalid status 'sideways'"),
        ("size", "huge", "invalid size 'huge'"),
        ("phase", "", "expected a non-empty string"),
        ("phase-pool", "side", "invalid phase_pool 'side'"),
        ("requires-human-review", "yes", "expected true or false"),
        ("description", 42, "invalid value 42"),
    ],
)
def test_a_value_of_a_known_field_that_cannot_be_read_is_an_error_naming_it(
    prefix: str, name: str, value: Any, said: str
) -> None:
    with pytest.raises(BacklogFormatError) as caught:
        parse_one(native(**{prefix + name: value}))
    message = str(caught.value)
    assert message.startswith(f"tasks.jsonl: line 2 (HAMY-5c0f8): {prefix}{name}: "), message
    assert said in message and "\n" not in message


def test_abbreviated_levels_are_read_as_the_cli_reads_them() -> None:
    item, warnings = parse_one(native(**{"x-pg-risk": "h", "x-size": "S"}))
    assert (item.risk, item.size, warnings) == (Level.HIGH, Size.SMALL, [])


ALL_EXTENSIONS: dict[str, Any] = {
    "phase": "design",
    "phase-pool": "main",
    "size": "medium",
    "complexity": "high",
    "risk": "low",
    "impact": "medium",
    "requires-human-review": True,
    "pipeline-type": "feature",
    "origin": "WRK-001/build",
    "unblock-context": "use the v2 API",
    "last-phase-commit": "8957cea715e8f9607e0b6112ab5ef80c00756b1c",
    "description": {"context": "ctx", "problem": "prob"},
}


@pytest.mark.parametrize("prefix", ["x-pg-", "x-"], ids=["phase-golem", "task-golem-migration"])
def test_every_extension_is_read(prefix: str) -> None:
    item, warnings = parse_one(
        native(
            status="doing",
            tags=["api"],
            dependencies=["WRK-001", "WRK-001", "tg-8a8f7"],
            **{prefix + name: value for name, value in ALL_EXTENSIONS.items()},
        )
    )
    assert warnings == []
    assert (item.phase, item.phase_pool, item.pipeline_type) == (
        "design",
        PhasePool.MAIN,
        "feature",
    )
    assert (item.size, item.complexity, item.risk, item.impact) == (
        Size.MEDIUM,
        Level.HIGH,
        Level.LOW,
        Level.MEDIUM,
    )
    assert item.requires_human_review is True
    assert item.origin == "WRK-001/build"
    assert item.unblock_context == "use the v2 API"
    assert item.last_phase_commit == "8957cea715e8f9607e0b6112ab5ef80c00756b1c"
    assert item.description is not None and item.description.problem == "prob"
    assert item.tags == ("api",)
    assert item.dependencies == ("WRK-001", "tg-8a8f7")  # duplicates dropped
    assert item.created == "2026-02-24T12:00:00.123456789Z"  # nanoseconds kept as written


def test_the_phase_golem_spelling_wins_and_a_disagreement_is_reported() -> None:
    item, warnings = parse_one(
        native(status="doing", **{"x-pg-phase": "build", "x-phase": "prd", "x-size": "small"})
    )
    assert (item.phase, item.size) == ("build", Size.SMALL)
    assert warnings == [
        "tasks.jsonl: line 2 (HAMY-5c0f8): x-phase 'prd' differs from x-pg-phase 'build'; "
        "kept x-pg-phase"
    ]


def test_task_golems_own_fields_are_kept_and_written_back() -> None:
    item, warnings = parse_one(
        native(
            id="tg-1rh14",
            parent="tg-22mxj",
            **{"x-legacy-id": "TG-005", "x-legacy-updated": "2026-02-01T10:00:00.123456789Z"},
        )
    )
    assert warnings == []
    assert (item.id, item.parent, item.legacy_id) == ("tg-1rh14", "tg-22mxj", "TG-005")
    assert item.legacy_updated == "2026-02-01T10:00:00.123456789Z"
    record = item_to_task_golem(item)
    assert (record["parent"], record["x-legacy-id"]) == ("tg-22mxj", "TG-005")
    assert record["x-legacy-updated"] == "2026-02-01T10:00:00.123456789Z"
    for bad, said in (
        ({"parent": "no spaces"}, "parent: invalid item ID"),
        ({"x-legacy-updated": "last week"}, "x-legacy-updated: invalid timestamp"),
        ({"x-legacy-id": 5}, "x-legacy-id: invalid value 5"),
    ):
        with pytest.raises(BacklogFormatError, match=said):
            parse_one(native(**bad))


def test_unknown_keys_are_named_never_dropped_silently() -> None:
    parsed = parse_task_golem_text(
        jsonl(native(**{"x-agent": {"n": 1}, "x-pg-mood": "calm", "x-size": "small"})),
        "tasks.jsonl",
    )
    assert parsed.warnings == ("tasks.jsonl: ignored field(s) not used here: x-agent, x-pg-mood",)


def test_an_in_progress_item_without_a_phase_is_reported() -> None:
    item, warnings = parse_one(native(status="doing"))
    assert item.status is ItemStatus.IN_PROGRESS and item.phase is None
    (warning,) = warnings
    assert "in progress without a phase" in warning and "advance HAMY-5c0f8" in warning


def test_blocked_from_extension_is_authoritative_unless_the_native_field_was_cleared() -> None:
    blocked = {"status": "blocked", "blocked_reason": "which API?"}
    item, _ = parse_one(
        native(
            **blocked,
            blocked_from_status="todo",
            **{"x-pg-blocked-from-status": "ready", "x-pg-blocked-type": "decision"},
        )
    )
    assert item.blocked_from_status is ItemStatus.READY
    assert item.blocked_reason == "which API?"
    assert item.blocked_type is BlockedType.DECISION
    # The native field alone (lossy: todo means New).
    item, _ = parse_one(native(**blocked, blocked_from_status="doing"))
    assert item.blocked_from_status is ItemStatus.IN_PROGRESS
    # Someone ran `tg unblock` then re-blocked by hand: the extension is stale.
    item, _ = parse_one(native(**blocked, **{"x-pg-blocked-from-status": "in_progress"}))
    assert item.blocked_from_status is None


def test_a_native_description_becomes_the_structured_one() -> None:
    item, _ = parse_one(native(description="Context: old way\nProblem: slow"))
    assert item.description is not None
    assert (item.description.context, item.description.problem) == ("old way", "slow")


def test_done_and_archive_items_come_back_archived() -> None:
    done, _ = parse_one(native(status="done"))
    assert done.archived and done.archived_at == done.updated
    archived, _ = parse_one(native(status="doing"), archive=True)
    assert archived.archived and archived.status is ItemStatus.IN_PROGRESS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"schema_version":2}\n', "unsupported task-golem schema_version 2 (supported: 1)"),
        (json.dumps(native()) + "\n", 'line 1: expected the schema header {"schema_version":1}'),
        (HEADER + "\n{bad json\n" + json.dumps(native()) + "\n", "line 2: malformed JSON"),
        (HEADER + "\n[1, 2]\n", "line 2: expected a JSON object"),
        (jsonl(native(status="waiting")), "status must be todo, doing, done or blocked"),
        (jsonl(native(created_at="yesterday")), "created_at: invalid timestamp 'yesterday'"),
        (jsonl(native(tags="api")), "tags must be a list of strings"),
        (jsonl(native(id="no spaces allowed")), "invalid item ID"),
        (jsonl(native(title="")), "needs a non-empty id and title"),
    ],
)
def test_malformed_active_files_name_the_place(text: str, message: str) -> None:
    with pytest.raises(BacklogFormatError) as caught:
        parse_task_golem_text(text, "tasks.jsonl")
    assert str(caught.value).startswith("tasks.jsonl: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_torn_archive_line_is_skipped_with_a_warning() -> None:
    text = jsonl(native(status="done")) + '{"id":"tg-bbb00","tit'
    parsed = parse_task_golem_text(text, "archive.jsonl", archive=True)
    assert [i.id for i in parsed.items] == ["HAMY-5c0f8"]
    (warning,) = parsed.warnings
    assert warning.startswith("archive.jsonl: line 3: ignored a torn final line (")


def test_a_damaged_archive_line_in_the_middle_is_skipped_as_task_golem_does() -> None:
    text = (
        jsonl(native(status="done"))
        + '{"id":"tg-bbb00","tit\n'
        + json.dumps(native(id="tg-ccc00", status="done"))
    )
    parsed = parse_task_golem_text(text, "archive.jsonl", archive=True)
    assert [i.id for i in parsed.items] == ["HAMY-5c0f8", "tg-ccc00"]
    (warning,) = parsed.warnings
    assert warning.startswith("archive.jsonl: line 3: skipped a malformed line (")


@pytest.mark.parametrize("ending", ["", "\n"])
def test_a_torn_final_line_of_the_active_file_is_dropped_with_a_warning(ending: str) -> None:
    text = jsonl(native()) + '{"id":"tg-bbb00","tit' + ending
    parsed = parse_task_golem_text(text, "tasks.jsonl")
    assert [i.id for i in parsed.items] == ["HAMY-5c0f8"]
    (warning,) = parsed.warnings
    assert warning.startswith("tasks.jsonl: line 3: ignored a torn final line (")


def test_empty_file_is_an_empty_backlog() -> None:
    assert parse_task_golem_text("", "tasks.jsonl").items == ()
    assert parse_task_golem_text(HEADER + "\n", "tasks.jsonl").items == ()


def test_written_records_look_like_task_golem_writes_them() -> None:
    item, _ = parse_one(
        native(
            status="blocked",
            blocked_from_status="todo",
            blocked_reason="why?",
            **{"x-pg-blocked-from-status": "scoping", "x-pg-size": "small"},
        )
    )
    record = item_to_task_golem(item)
    natives = list(record)[:14]
    assert natives == list(native())  # the 14 native fields, in task-golem's order
    assert record["status"] == "blocked" and record["blocked_from_status"] == "todo"
    extensions = [k for k in record if k.startswith("x-")]
    assert extensions == sorted(extensions)
    assert record["x-pg-blocked-from-status"] == "scoping"
    assert "x-pg-status" not in record  # only todo items carry it
    text = dump_task_golem_jsonl([item])
    assert text.startswith(HEADER + "\n") and text.endswith("\n")


@settings(max_examples=60, deadline=None)
@given(st.lists(stored_items(), max_size=6, unique_by=lambda i: i.id))
def test_write_then_read_keeps_every_phase_golem_field(generated: list[Item]) -> None:
    parsed = parse_task_golem_text(dump_task_golem_jsonl(generated), "tasks.jsonl")
    by_id = {i.id: i for i in parsed.items}
    assert len(by_id) == len(generated)
    for before in generated:
        after = by_id[before.id]
        for name in PHASE_GOLEM_FIELDS:
            assert getattr(after, name) == getattr(before, name), name


def write_task_golem_dir(root: Path) -> Path:
    directory = root / ".task-golem"
    directory.mkdir()
    (directory / "tasks.jsonl").write_text(
        jsonl(
            native(),
            native(
                id="tg-8a8f7",
                title="Write docs",
                status="doing",
                dependencies=["HAMY-5c0f8", "tg-00001"],
                **{"x-pg-phase": "build", "x-pg-phase-pool": "main", "x-agent": {"n": 1}},
            ),
            native(
                id="tg-a11ce",
                title="Pick a DB",
                status="blocked",
                blocked_reason="Postgres or SQLite?",
                blocked_from_status="todo",
                **{"x-pg-blocked-from-status": "ready", "x-pg-blocked-type": "decision"},
            ),
        )
    )
    (directory / "archive.jsonl").write_text(
        jsonl(native(id="tg-00001", title="Old thing", status="done"))
        + '{"id": "tg-torn", "title": "half a li'
    )
    return directory


def test_cli_imports_a_task_golem_directory_and_round_trips(project: Repo, tmp_path: Path) -> None:
    source = write_task_golem_dir(tmp_path)
    result = project.pg("import", str(source))
    assert result.code == 0, result.err
    assert "Imported 4 item(s) from .task-golem" in result.out
    assert "archive.jsonl: line 3: ignored a torn final line" in result.err
    assert "x-agent" in result.err
    status = {i["id"]: i for i in project.ok("status", "--json", "--all").json()}
    assert status["tg-8a8f7"]["status"] == "in_progress"
    assert status["tg-8a8f7"]["phase"] == "build"
    assert status["tg-a11ce"]["blocked_from_status"] == "ready"
    assert status["tg-a11ce"]["blocked_type"] == "decision"
    assert status["tg-00001"]["archived"] is True
    # IDs from task-golem never block our own numbering.
    assert project.ok("add", "Ours", "--json").json()["id"] == "WRK-001"

    out_dir = tmp_path / "exported"
    project.ok("export", "--format", "task-golem", str(out_dir))
    second = Repo(make_git_repo(tmp_path / "second"))
    second.ok("init")
    second.ok("import", str(out_dir))
    assert second.ok("status", "--json").out == project.ok("status", "--json").out
    archived = (out_dir / "archive.jsonl").read_text().splitlines()
    assert archived[0] == HEADER and len(archived) == 2


def test_cli_rejects_a_bad_task_golem_file_and_changes_nothing(
    project: Repo, tmp_path: Path
) -> None:
    project.ok("add", "Keep me")
    before = project.ok("log", "--json").out
    bad = tmp_path / "tasks.jsonl"
    bad.write_text(jsonl(native(), native(id="tg-bad00", **{"status": "someday"})))
    result = project.pg("import", str(bad))
    assert result.code == 2
    assert result.err.strip() == (
        "phase-golem: error: tasks.jsonl: line 3 (tg-bad00): status must be todo, doing, done "
        "or blocked, not 'someday'"
    )
    assert project.ok("log", "--json").out == before
    assert len(project.ok("status", "--json").json()) == 1
    usage = project.pg("export", "--format", "task-golem")
    assert usage.code == 2 and "directory" in usage.err and "Traceback" not in usage.err


# --- a store as task-golem's own migration (TG-007) leaves it, then used for a while ------

TG007 = "task-golem-tg007"
NATIVE_STATUS = {"todo": "new", "doing": "in_progress", "blocked": "blocked", "done": "done"}
PLAIN_FIELDS = {
    "x-phase": "phase",
    "x-phase-pool": "phase_pool",
    "x-size": "size",
    "x-complexity": "complexity",
    "x-risk": "risk",
    "x-impact": "impact",
    "x-pipeline-type": "pipeline_type",
    "x-last-phase-commit": "last_phase_commit",
    "x-origin": "origin",
    "x-legacy-id": "legacy_id",
    "x-legacy-updated": "legacy_updated",
    "parent": "parent",
}


def raw_records(directory: Path) -> list[dict[str, Any]]:
    records = []
    for name in ("tasks.jsonl", "archive.jsonl"):
        lines = (directory / name).read_text().splitlines()[1:]
        records += [json.loads(line) for line in lines if line.strip()]
    return records


def test_a_store_from_task_golems_own_migration_imports_whole(
    project: Repo, tmp_path: Path
) -> None:
    source = fixture_path(TG007)
    records = raw_records(source)
    assert {r["status"] for r in records} == set(NATIVE_STATUS)  # every status is there
    assert any("x-phase" in r and r["status"] == "doing" for r in records)
    result = project.pg("import", str(source))
    assert result.code == 0, result.err
    assert f"Imported {len(records)} item(s)" in result.out
    assert "ignored" not in result.err  # every key of the file is one we know
    items = {i["id"]: i for i in project.ok("status", "--json", "--all").json()}
    assert set(items) == {r["id"] for r in records}
    for record in records:
        mine = items[record["id"]]
        assert mine["status"] == NATIVE_STATUS[record["status"]], record["id"]
        for key, field in PLAIN_FIELDS.items():
            assert mine[field] == record.get(key), (record["id"], field)
        assert mine["requires_human_review"] == bool(record.get("x-requires-human-review"))
        assert mine["dependencies"] == record["dependencies"]
        assert mine["archived"] == (record["status"] == "done")
    held = next(r for r in records if r["status"] == "doing")
    shown = project.ok("show", held["id"]).out
    assert held["x-legacy-id"] in shown and held["x-phase"] in shown
    child = next(r for r in records if r["parent"])
    assert child["parent"] in project.ok("show", child["id"]).out

    # Exported, it is what task-golem reads: its 14 native fields in its order, every
    # extension an `x-` key that collides with none of them; read back, nothing changed.
    out = tmp_path / "exported"
    project.ok("export", "--format", "task-golem", str(out))
    for written in raw_records(out):
        assert list(written)[:14] == list(native())
        extensions = [k for k in written if k not in native()]
        assert all(k.startswith("x-") for k in extensions) and extensions == sorted(extensions)
        assert written["status"] in NATIVE_STATUS
    again = Repo(make_git_repo(tmp_path / "again"))
    again.ok("init")
    again.ok("import", str(out))
    assert (
        again.ok("status", "--json", "--all").json()
        == project.ok("status", "--json", "--all").json()
    )


@pytest.mark.upstream
def test_phase_golems_own_task_golem_store_imports(project: Repo) -> None:
    active = upstream_path("task-golem.tasks.jsonl", "task-golem")
    result = project.pg("import", str(active))
    assert result.code == 0, result.err
    items = {i["id"]: i for i in project.ok("status", "--json", "--all").json()}
    for line in active.read_text().splitlines()[1:]:
        record = json.loads(line)
        mine = items[record["id"]]
        assert mine["phase"] == record.get("x-pg-phase")
        assert mine["size"] == record.get("x-pg-size")
        assert mine["pipeline_type"] == record.get("x-pg-pipeline-type")
