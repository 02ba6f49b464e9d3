"""Import/export through the real CLI, against Phase Golem's own files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Repo, fixture_path, make_git_repo, own_and_upstream


def ledger_lines(repo: Repo) -> list[str]:
    return repo.ok("log", "--json").out.splitlines()


def db_bytes_unchanged(repo: Repo) -> tuple[list[str], list[dict[str, Any]]]:
    return ledger_lines(repo), repo.ok("status", "--json", "--all").json()


LONG_BACKLOGS = own_and_upstream("backlog_v3_many.yaml", "dogfood-BACKLOG.yaml")


@pytest.mark.parametrize("source", LONG_BACKLOGS)
def test_long_backlog_imports_every_item_intact(project: Repo, source: Path) -> None:
    raw = yaml.load(source.read_text(), Loader=yaml.BaseLoader)  # strings, as written
    result = project.ok("import", str(source))
    assert f"Imported {len(raw['items'])} item(s)" in result.out
    items = {i["id"]: i for i in project.ok("status", "--json", "--all").json()}
    assert len(items) == len(raw["items"]) >= 30
    for original in raw["items"]:
        mine = items[original["id"]]
        assert mine["status"] == original["status"]
        assert mine["title"] == original["title"]
        for name in (
            "phase",
            "phase_pool",
            "size",
            "complexity",
            "risk",
            "impact",
            "pipeline_type",
            "blocked_reason",
            "blocked_from_status",
            "last_phase_commit",
            "origin",
            "created",
            "updated",
        ):
            assert mine[name] == original.get(name), (original["id"], name)
        assert mine["dependencies"] == original.get("dependencies", [])
        assert mine["requires_human_review"] == (original["requires_human_review"] == "true")
        if "description" in original:
            for part, text in original["description"].items():
                assert mine["description"][part] == text
    # The high-water mark came with it: the next ID is above next_item_id.
    added = project.ok("add", "After import", "--json").json()
    assert added["id"] == f"WRK-{int(raw['next_item_id']) + 1:03d}"


@pytest.mark.parametrize("source", LONG_BACKLOGS)
def test_export_then_import_gives_the_same_status(
    project: Repo, tmp_path: Path, source: Path
) -> None:
    project.ok("import", str(source))
    exported = tmp_path / "exported.yaml"
    project.ok("export", str(exported))
    data = yaml.safe_load(exported.read_text())
    assert data["schema_version"] == 3
    assert data["next_item_id"] == yaml.safe_load(source.read_text())["next_item_id"]

    second = Repo(make_git_repo(tmp_path / "second"))
    second.ok("init")
    second.ok("import", str(exported))
    assert second.ok("status", "--json").out == project.ok("status", "--json").out
    assert second.ok("export").out == exported.read_text()


def test_export_to_stdout_has_only_phase_golem_fields(project: Repo) -> None:
    project.ok("add", "Thing", "--size", "s", "--tag", "t")
    data = yaml.safe_load(project.ok("export").out)
    (item,) = data["items"]
    assert set(item) <= {
        "id",
        "title",
        "status",
        "phase",
        "size",
        "complexity",
        "risk",
        "impact",
        "requires_human_review",
        "origin",
        "blocked_from_status",
        "blocked_reason",
        "blocked_type",
        "unblock_context",
        "tags",
        "dependencies",
        "created",
        "updated",
        "pipeline_type",
        "description",
        "phase_pool",
        "last_phase_commit",
    }
    assert item["size"] == "small" and item["tags"] == ["t"]
    assert data["next_item_id"] == 1


@pytest.mark.parametrize("source", own_and_upstream("backlog_v1.yaml", "backlog_v1_full.yaml"))
def test_v1_fixture_migrates_like_phase_golem(project: Repo, source: Path) -> None:
    project.ok("import", str(source))
    items = {i["id"]: i for i in project.ok("status", "--json", "--all").json()}
    assert items["WRK-001"]["status"] == "in_progress"
    assert items["WRK-001"]["phase"] == "build"
    assert items["WRK-001"]["phase_pool"] == "main"
    assert items["WRK-002"]["status"] == "done" and items["WRK-002"]["archived"]
    assert items["WRK-003"]["status"] == "blocked"
    assert items["WRK-003"]["blocked_from_status"] == "scoping"
    assert items["WRK-004"]["status"] == "scoping"
    assert items["WRK-004"]["phase"] is None  # researching: phase cleared
    assert items["WRK-005"]["status"] == "ready"  # scoped → ready
    assert all(i["pipeline_type"] == "feature" for i in items.values())


@pytest.mark.parametrize(
    "source", own_and_upstream("backlog_v2_descriptions.yaml", "backlog_v2_with_descriptions.yaml")
)
def test_v2_descriptions_become_structured(project: Repo, source: Path) -> None:
    written = {i["id"]: i.get("description") for i in yaml.safe_load(source.read_text())["items"]}
    result = project.ok("import", str(source))
    assert "non-conforming" in result.err  # the free-text one is reported
    items = {i["id"]: i for i in project.ok("status", "--json", "--all").json()}
    sections = dict(
        line.split(": ", 1) for line in written["WRK-001"].splitlines()
    )  # "Context: …", "Sizing rationale: …"
    structured = items["WRK-001"]["description"]
    assert structured["solution"] == sections["Solution"]
    assert structured["sizing_rationale"] == sections["Sizing rationale"]
    assert structured["sizing_rationale"].startswith("Medium because")
    assert items["WRK-002"]["description"]["context"] == written["WRK-002"]
    assert items["WRK-003"]["description"] is None


@pytest.mark.parametrize("source", own_and_upstream("inbox.yaml", "BACKLOG_INBOX.example.yaml"))
def test_inbox_file_imports_as_new_items(project: Repo, source: Path) -> None:
    minimal, full = yaml.safe_load(source.read_text())
    project.ok("add", "Existing")
    project.ok("import", str(source))
    items = project.ok("status", "--json").json()
    inbox = [i for i in items if i["origin"] == "inbox"]
    assert sorted(i["id"] for i in inbox) == ["WRK-002", "WRK-003"]
    assert {i["title"] for i in inbox} == {minimal["title"], full["title"]}
    mine = next(i for i in inbox if i["title"] == full["title"])
    assert (mine["size"], mine["risk"], mine["impact"]) == ("small", "low", "high")
    assert mine["dependencies"] == full["dependencies"]
    assert mine["description"]["context"] == full["description"]


@pytest.mark.parametrize(
    "source", own_and_upstream("backlog_wrong_version.yaml", "backlog_wrong_version.yaml")
)
def test_wrong_version_is_one_line_and_changes_nothing(project: Repo, source: Path) -> None:
    project.ok("add", "Keep me")
    before = db_bytes_unchanged(project)
    result = project.pg("import", str(source))
    assert result.code == 2
    assert result.err.strip() == (
        "phase-golem: error: backlog_wrong_version.yaml: unsupported schema_version 99 "
        "(supported: 1, 2, 3)"
    )
    assert db_bytes_unchanged(project) == before


def test_malformed_and_clashing_files_change_nothing(project: Repo, tmp_path: Path) -> None:
    project.ok("import", str(fixture_path("backlog_v3_small.yaml")))
    before = db_bytes_unchanged(project)
    clash = project.pg("import", str(fixture_path("backlog_v3_small.yaml")))
    assert clash.code == 2 and "already exist" in clash.err
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("schema_version: 3\nitems:\n  - id: WRK-9\n   title: [unclosed\n")
    broken = project.pg("import", str(bad_yaml))
    assert broken.code == 2 and "bad.yaml" in broken.err and "line" in broken.err
    half_bad = tmp_path / "half.yaml"
    half_bad.write_text(
        "schema_version: 3\nitems:\n"
        "  - {id: WRK-100, title: Fine, status: new, created: '2026-01-01T00:00:00Z', "
        "updated: '2026-01-01T00:00:00Z'}\n"
        "  - {id: WRK-101, title: Bad, status: new, size: huge, created: '2026-01-01T00:00:00Z', "
        "updated: '2026-01-01T00:00:00Z'}\n"
    )
    partial = project.pg("import", str(half_bad))
    assert partial.code == 2 and "WRK-101" in partial.err and "huge" in partial.err
    missing = project.pg("import", str(tmp_path / "nope.yaml"))
    assert missing.code == 2 and "nope.yaml" in missing.err
    for result in (clash, broken, partial, missing):
        assert result.err.strip().count("\n") == 0, result.err
    assert db_bytes_unchanged(project) == before


def test_broken_config_is_reported_and_changes_nothing(project: Repo) -> None:
    project.ok("add", "Keep me")
    before = db_bytes_unchanged(project)
    config = project.root / "phase-golem.toml"
    good = config.read_text()
    config.write_text(good + "\n[execution\nmax_wip = 2\n")
    result = project.pg("add", "Should not land")
    assert result.code == 2
    assert "phase-golem.toml" in result.err and "line" in result.err
    assert result.err.strip().count("\n") == 0, result.err
    assert result.err.startswith("phase-golem: error:")
    config.write_text(good)
    assert db_bytes_unchanged(project) == before


def test_invalid_config_values_are_all_reported(project: Repo) -> None:
    config = project.root / "phase-golem.toml"
    config.write_text(
        "[execution]\nmax_wip = 0\nmax_concurrent = 0\n[agent]\ncli = 'claude'\nshoe = 1\n"
    )
    result = project.pg("status")
    assert result.code == 2
    assert result.err.strip().count("\n") == 0, result.err
    for needle in ("max_wip", "max_concurrent", "shoe"):
        assert needle in result.err


@pytest.mark.parametrize("source", own_and_upstream("backlog_v2.yaml", "backlog_v2_full.yaml"))
def test_import_json_report(project: Repo, source: Path) -> None:
    report = project.ok("import", str(source), "--json").json()
    assert report["format"] == "backlog"
    assert report["schema_version"] == 2
    assert report["created"] == ["WRK-001", "WRK-002", "WRK-003"]
    events = [json.loads(line) for line in ledger_lines(project)]
    assert [e["kind"] for e in events].count("item.imported") == 3
    assert events[-1]["kind"] == "backlog.imported"
