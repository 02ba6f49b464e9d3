"""BACKLOG.yaml and inbox parsing/writing, without a store (interchange/)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from phase_golem.config import default_pipelines
from phase_golem.domain.descriptions import StructuredDescription
from phase_golem.domain.items import PHASE_GOLEM_FIELDS, Item, ItemStatus, PhasePool
from phase_golem.interchange.backlog_yaml import (
    BacklogFormatError,
    dump_backlog_v3,
    load_backlog_file,
    parse_backlog_text,
)
from phase_golem.interchange.inbox import inbox_entry_to_fields, parse_inbox_text
from tests.conftest import own_and_upstream
from tests.strategies import items

FEATURE = default_pipelines()["feature"]


def parse(text: str):  # type: ignore[no-untyped-def]
    return parse_backlog_text(text, "B.yaml", FEATURE)


@pytest.mark.parametrize("source", own_and_upstream("backlog_v3_many.yaml", "dogfood-BACKLOG.yaml"))
def test_nanosecond_timestamps_survive_exactly(source: Path) -> None:
    raw = yaml.load(source.read_text(), Loader=yaml.BaseLoader)  # every value as written
    parsed = load_backlog_file(source, FEATURE)
    assert [(i.created, i.updated) for i in parsed.items] == [
        (r["created"], r["updated"]) for r in raw["items"]
    ]
    assert any(len(i.created.split(".")[1]) == 15 for i in parsed.items)  # 9 digits + offset
    assert parsed.next_item_id == int(raw["next_item_id"])
    assert parsed.schema_version == 3 and not parsed.migrated


@pytest.mark.parametrize(
    "source", own_and_upstream("backlog_unknown_fields.yaml", "backlog_unknown_fields.yaml")
)
def test_unknown_fields_are_ignored(source: Path) -> None:
    parsed = load_backlog_file(source, FEATURE)
    assert [i.id for i in parsed.items] == ["WRK-001"]
    assert parsed.items[0].title == yaml.safe_load(source.read_text())["items"][0]["title"]


@pytest.mark.parametrize("source", own_and_upstream("backlog_v1.yaml", "backlog_v1_full.yaml"))
def test_v1_migration_logs_each_change(source: Path) -> None:
    parsed = load_backlog_file(source, FEATURE)
    assert parsed.migrated and parsed.schema_version == 1
    log = "\n".join(parsed.warnings)
    assert "WRK-004" in log and "researching → scoping" in log
    assert "WRK-005" in log and "scoped → ready" in log
    assert "migrated 5 item(s) from schema v1" in log


def test_v1_needs_a_feature_pipeline() -> None:
    with pytest.raises(BacklogFormatError, match="feature"):
        parse_backlog_text("items: [{id: WRK-001, title: x, status: new}]", "B.yaml", None)


def test_v1_phase_outside_the_feature_pipeline_is_cleared_with_a_warning() -> None:
    parsed = parse(
        "schema_version: 1\nitems:\n- {id: WRK-001, title: x, status: in_progress, phase: prd,"
        " created: '2026-01-01T00:00:00Z'}\n"
    )
    assert parsed.items[0].phase == "prd" and parsed.items[0].phase_pool is PhasePool.MAIN
    pipeline_without_prd = default_pipelines()["simple"]
    other = parse_backlog_text(
        "schema_version: 1\nitems:\n- {id: WRK-001, title: x, status: in_progress, phase: prd,"
        " created: '2026-01-01T00:00:00Z'}\n",
        "B.yaml",
        pipeline_without_prd,
    )
    assert other.items[0].phase is None
    assert any("not in the feature pipeline" in w for w in other.warnings)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("- a\n- b\n", "expected a mapping"),
        ("schema_version: 3\nitems: {}\n", "items must be a list"),
        ("schema_version: '3'\nitems: []\n", "unsupported schema_version 3"),
        (
            "schema_version: 3\nitems: [{id: WRK-001, title: x}]\n",
            "missing required field 'status'",
        ),
        (
            "schema_version: 3\nitems: [{id: WRK-001, title: x, status: gone, created: x}]\n",
            "items[0] (WRK-001)",
        ),
        (
            "schema_version: 3\nitems: [{id: WRK-001, title: x, status: new, created: nope}]\n",
            "created: invalid timestamp",
        ),
        (
            "schema_version: 3\nitems: [{id: WRK-001, title: x, status: new, "
            "created: '2026-01-01T00:00:00Z', tags: oops}]\n",
            "tags must be a list of strings",
        ),
        (
            "schema_version: 3\nitems:\n"
            "- {id: WRK-001, title: x, status: new, created: '2026-01-01T00:00:00Z'}\n"
            "- {id: WRK-001, title: y, status: new, created: '2026-01-01T00:00:00Z'}\n",
            "duplicate ID",
        ),
        (
            "schema_version: 3\nitems: [{id: WRK-001, title: x, status: new, "
            "created: '2026-01-01T00:00:00Z', description: {context: a, mood: b}}]\n",
            "unknown description field",
        ),
        (
            "schema_version: 3\nitems: [{id: bad id, title: x, status: new, created: x}]\n",
            "invalid",
        ),
        ("schema_version: 3\nitems:\n  - id: [\n", "invalid YAML at line"),
    ],
)
def test_malformed_files_name_the_place(body: str, needle: str) -> None:
    with pytest.raises(BacklogFormatError) as caught:
        parse(body)
    message = str(caught.value)
    assert message.startswith("B.yaml")
    assert needle in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "source", own_and_upstream("backlog_v3_small.yaml", "example-BACKLOG.yaml")
)
def test_done_items_come_back_archived(source: Path) -> None:
    parsed = load_backlog_file(source, FEATURE)
    done = next(i for i in parsed.items if i.status is ItemStatus.DONE)
    assert done.archived and done.archived_at == done.updated
    assert done.updated[:4] == "2026" and "T" in done.updated  # an unquoted YAML timestamp


@pytest.mark.parametrize("source", own_and_upstream("inbox.yaml", "BACKLOG_INBOX.example.yaml"))
def test_inbox_formats(source: Path) -> None:
    bare = parse_inbox_text(source.read_text(), "I.yaml")
    assert [e.title for e in bare.entries] == [
        entry["title"] for entry in yaml.safe_load(source.read_text())
    ]
    assert len(bare.entries) == 2
    wrapped = parse_inbox_text("items:\n  - title: One\n  - title: '  '\n  - id: X\n", "I.yaml")
    assert [e.title for e in wrapped.entries] == ["One"]
    assert len(wrapped.warnings) == 2
    assert parse_inbox_text("   \n", "I.yaml").entries == ()
    fields = inbox_entry_to_fields(bare.entries[1])
    assert fields["origin"] == "inbox"
    written = yaml.safe_load(source.read_text())[1]["description"]
    assert fields["description"] == StructuredDescription(context=written)
    with pytest.raises(BacklogFormatError, match=r"entry 1 \('A'\): invalid size 'huge'"):
        parse_inbox_text("- {title: A, size: huge}\n", "I.yaml")
    with pytest.raises(BacklogFormatError, match="a list of entries"):
        parse_inbox_text("just text\n", "I.yaml")


def test_export_omits_empty_values_and_our_fields() -> None:
    item = Item(
        id="WRK-001",
        title="T",
        status=ItemStatus.NEW,
        created="2026-01-01T00:00:00.123456789+00:00",
        updated="2026-01-01T00:00:00Z",
        cost_usd=3.5,
        previous_summary="ours",
    )
    (entry,) = yaml.safe_load(dump_backlog_v3([item], 1))["items"]
    assert entry == {
        "id": "WRK-001",
        "title": "T",
        "status": "new",
        "requires_human_review": False,
        "created": "2026-01-01T00:00:00.123456789+00:00",
        "updated": "2026-01-01T00:00:00Z",
    }


@settings(max_examples=60, deadline=None)
@given(st.lists(items(), max_size=5, unique_by=lambda i: i.id))
def test_dump_then_parse_keeps_every_phase_golem_field(generated: list[Item]) -> None:
    parsed = parse(dump_backlog_v3(generated, 7))
    assert parsed.next_item_id == 7
    for before, after in zip(generated, parsed.items, strict=True):
        for name in PHASE_GOLEM_FIELDS:
            assert getattr(after, name) == getattr(before, name), name
