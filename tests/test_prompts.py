"""Prompts carry Phase Golem's sections, in its order, and only the ones that have content."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from phase_golem.config import default_pipelines
from phase_golem.domain.descriptions import StructuredDescription
from phase_golem.domain.items import (
    Item,
    ItemStatus,
    Level,
    PhasePool,
    Size,
    new_item,
    parse_timestamp,
)
from phase_golem.engine.files import append_worklog, change_folder, slugify
from phase_golem.engine.prompts import PromptContext, build_phase_prompt, build_triage_prompt
from tests.conftest import own_and_upstream

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
RESULT = Path("/project/.phase-golem/runs/run-000007/result.json")


def item(**changes: object) -> Item:
    base = new_item("WRK-007", "Add OAuth login", NOW).replace(
        status=ItemStatus.IN_PROGRESS, phase="build", phase_pool=PhasePool.MAIN
    )
    return base.replace(**changes)


def headings(prompt: str) -> list[str]:
    return [line for line in prompt.splitlines() if line.startswith("#")]


def test_a_full_phase_prompt_has_every_section_in_order() -> None:
    full = item(
        size=Size.MEDIUM,
        risk=Level.LOW,
        description=StructuredDescription(context="Users ask", problem="No SSO"),
        previous_summary="Spec written",
        unblock_context="Use Google only",
    )
    prompt = build_phase_prompt(
        full,
        "build",
        default_pipelines()["feature"],
        [Path("/wf/build.md")],
        Path("/project/changes/WRK-007_add-oauth-login"),
        RESULT,
        PromptContext(previous_failure="(timeout) too slow", woken_because="CI finished"),
    )
    assert headings(prompt) == [
        "# Autonomous Agent",
        "## Item",
        "## Current Assessments",
        "## Description",
        "## Previous Phase Summary",
        "## Unblock Context",
        "## Why You Were Woken",
        "## Previous Failure",
        "## Task",
        "## Structured Output",
    ]
    assert "build 4/5, main pool" in prompt
    assert "Read and follow the workflow at `/wf/build.md`" in prompt
    assert "changes/WRK-007_add-oauth-login" in prompt and str(RESULT) in prompt
    assert '"item_id": "WRK-007"' in prompt and '"phase": "build"' in prompt
    assert "**Problem:** No SSO" in prompt and "Analyse it and try another approach" in prompt


def test_empty_sections_are_left_out_and_several_workflows_are_numbered() -> None:
    prompt = build_phase_prompt(
        item(),
        "build",
        default_pipelines()["feature"],
        [Path("/wf/a.md"), Path("/wf/b.md")],
        Path("/c"),
        RESULT,
        PromptContext(),
    )
    assert headings(prompt) == [
        "# Autonomous Agent",
        "## Item",
        "## Task",
        "## Structured Output",
    ]
    assert "1. `/wf/a.md`\n2. `/wf/b.md`" in prompt


def test_the_triage_prompt_lists_the_backlog_and_the_pipelines() -> None:
    fresh = item(status=ItemStatus.NEW, phase=None, phase_pool=None)
    other = new_item("WRK-001", "Add login", NOW)
    prompt = build_triage_prompt(
        fresh, [fresh, other], default_pipelines(), RESULT, PromptContext()
    )
    assert headings(prompt)[:2] == ["# Autonomous Triage Agent", "## Item to Triage"]
    assert "- WRK-001: Add login [new]" in prompt and "WRK-007: Add OAuth" not in prompt
    assert "`feature`, `simple`" in prompt
    assert "higher-numbered ID merges into the lower-numbered one" in prompt
    assert '"phase": "triage"' in prompt and "subphase_complete |" not in prompt


def test_change_folders_are_found_by_prefix_or_created(tmp_path: Path) -> None:
    assert slugify("Add OAuth login!! (v2)") == "add-oauth-login-v2"
    created = change_folder(tmp_path, item())
    assert created == tmp_path / "changes" / "WRK-007_add-oauth-login" and created.is_dir()
    renamed = item(title="A different title now")
    assert change_folder(tmp_path, renamed) == created


def test_the_worklog_appends_one_entry_per_outcome(tmp_path: Path) -> None:
    append_worklog(tmp_path, NOW, "WRK-007", "Add OAuth", "build", "Complete", "did\nit")
    path = append_worklog(tmp_path, NOW, "WRK-007", "Add OAuth", "review", "Blocked", "why")
    text = path.read_text()
    assert path.name == "2026-11.md"
    assert text.count("## 2026-11-25T12:00:00.000000+00:00 — WRK-007 (Add OAuth)") == 2
    assert "- **Outcome:** Complete\n- **Summary:** did it" in text
    assert text.endswith("---\n\n")


WORKLOG_HEADING = r"## (?P<at>\S+) — (?P<item>\S+) \((?P<title>.*)\)\n\n"
WORKLOG_ENTRY = re.compile(
    WORKLOG_HEADING + r"- \*\*Phase:\*\* (?P<phase>\S+)\n- \*\*Outcome:\*\* (?P<outcome>[^\n]+)\n"
    r"- \*\*Summary:\*\* (?P<summary>[^\n]+)\n\n---\n\n"
)
# Phase Golem also writes a shorter entry when an item is done.
WORKLOG_DONE_ENTRY = re.compile(
    WORKLOG_HEADING + r"- \*\*Status:\*\* Done\n- \*\*Phase:\*\* (?P<phase>\S+)\n\n---\n\n"
)
WORKLOG_ANY_ENTRY = re.compile(
    re.sub(r"\(\?P<\w+>", "(?:", f"{WORKLOG_ENTRY.pattern}|{WORKLOG_DONE_ENTRY.pattern}")
)


@pytest.mark.parametrize("source", own_and_upstream("worklog-2026-03.md", "worklog-2026-02.md"))
def test_our_worklog_entries_have_phase_golems_shape(tmp_path: Path, source: Path) -> None:
    theirs = source.read_text()
    every = [e.group(0) for e in WORKLOG_ANY_ENTRY.finditer(theirs)]
    assert "".join(every) == theirs  # the whole file is made of entries of these two shapes
    first = next(WORKLOG_ENTRY.finditer(theirs))
    path = append_worklog(
        tmp_path, NOW, first["item"], first["title"], first["phase"], first["outcome"], "x\ny"
    )
    (ours,) = WORKLOG_ENTRY.finditer(path.read_text())
    assert parse_timestamp(ours["at"]) == NOW
    assert (ours["item"], ours["title"], ours["phase"], ours["outcome"], ours["summary"]) == (
        first["item"],
        first["title"],
        first["phase"],
        first["outcome"],
        "x y",
    )
