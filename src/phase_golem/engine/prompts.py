"""Prompts for phases and triage, with Phase Golem's sections in its order (research §4.10)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from phase_golem.domain.descriptions import DESCRIPTION_FIELDS
from phase_golem.domain.items import Item
from phase_golem.domain.pipelines import PipelineConfig

_LABELS = {
    "context": "Context",
    "problem": "Problem",
    "solution": "Solution",
    "impact": "Impact",
    "sizing_rationale": "Sizing Rationale",
}
_RESULT_GUIDE = """\
- `phase_complete`: the phase is fully done.
- `subphase_complete`: a sub-phase is done but more work remains in this phase; you will be
  run again for the next part.
- `failed`: you could not complete it; explain why in `context`. The phase is retried.
- `blocked`: a human must decide or clarify (say what in `context`, and set `blocked_type` to
  `clarification` or `decision`), or the work is not needed (already done, obsolete, out of
  scope).
- Come back later: set `retry_after_seconds` (or `wake_at`, RFC 3339) and the phase runs
  again then."""


@dataclass(frozen=True, slots=True)
class PromptContext:
    """What a prompt may say beyond the item itself; all of it optional."""

    previous_failure: str | None = None
    woken_because: str | None = None
    idempotency_key: str | None = None


def _item_sections(item: Item, heading: str) -> list[str]:
    sections = [f"## {heading}\n\n- ID: {item.id}\n- Title: {item.title}"]
    assessments = [
        f"- {name.capitalize()}: {getattr(item, name).value}"
        for name in ("size", "complexity", "risk", "impact")
        if getattr(item, name) is not None
    ]
    if assessments:
        sections.append("## Current Assessments\n\n" + "\n".join(assessments))
    if item.description is not None and not item.description.is_empty():
        parts = [
            f"**{_LABELS[name]}:** {getattr(item.description, name)}"
            for name in DESCRIPTION_FIELDS
            if getattr(item.description, name)
        ]
        sections.append("## Description\n\n" + "\n\n".join(parts))
    return sections


def _continuity_sections(item: Item, context: PromptContext) -> list[str]:
    sections = []
    if item.previous_summary:
        sections.append(f"## Previous Phase Summary\n\n{item.previous_summary}")
    if item.unblock_context:
        sections.append(
            "## Unblock Context\n\nA human looked at this item earlier and said:\n\n"
            f"{item.unblock_context}"
        )
    if context.woken_because:
        sections.append(f"## Why You Were Woken\n\n{context.woken_because}")
    if context.previous_failure:
        sections.append(
            "## Previous Failure\n\nThe previous attempt of this phase failed:\n\n"
            f"{context.previous_failure}\n\nAnalyse it and try another approach."
        )
    return sections


def _schema_example(item: Item, phase: str, codes: Sequence[str]) -> str:
    example = {
        "item_id": item.id,
        "phase": phase,
        "result": " | ".join(codes),
        "summary": "what you did, in one or two sentences",
        "context": "why, for failed or blocked results",
        "updated_assessments": {"size": "small|medium|large", "risk": "low|medium|high"},
        "follow_ups": [{"title": "a new piece of work you found", "suggested_size": "small"}],
        "commit_summary": "one line under 72 characters",
    }
    return json.dumps(example, indent=2)


def _output_section(item: Item, phase: str, result_file: Path, codes: Sequence[str]) -> str:
    return (
        "## Structured Output\n\n"
        f"When you finish, write your result as JSON to:\n\n    {result_file}\n\n"
        f"```json\n{_schema_example(item, phase, codes)}\n```\n\n"
        f"Result codes:\n{_RESULT_GUIDE}\n\n"
        "Update the assessments if the work showed a different size or risk, report\n"
        "follow-ups you discovered, give a short `commit_summary`, and write valid JSON\n"
        "(no comments, no trailing commas). Do not commit: the orchestrator owns git."
    )


def build_phase_prompt(
    item: Item,
    phase: str,
    pipeline: PipelineConfig,
    workflows: Sequence[Path],
    change_folder: Path,
    result_file: Path,
    context: PromptContext,
) -> str:
    position = pipeline.locate(phase, item.effective_pool)
    where = ""
    if position is not None:
        total = len(pipeline.phases_in(position.pool))
        where = f" ({phase} {position.index + 1}/{total}, {position.pool.value} pool)"
    preamble = (
        "# Autonomous Agent\n\n"
        f"You are running autonomously in the phase-golem workflow, pipeline "
        f"`{pipeline.name}`{where}. No human is available to answer questions: decide for\n"
        "yourself, and record the questions you would have asked, with the answers you chose,\n"
        "under an **Assumptions** heading in your artifact."
    )
    if len(workflows) == 1:
        task = f"Read and follow the workflow at `{workflows[0]}`."
    else:
        steps = "\n".join(f"{n}. `{path}`" for n, path in enumerate(workflows, 1))
        task = f"Read and follow these workflows, in order:\n\n{steps}"
    task += f"\n\nThe change folder for this item is `{change_folder}`; put its artifacts there."
    sections = [
        preamble,
        *_item_sections(item, "Item"),
        *_continuity_sections(item, context),
        f"## Task\n\n{task}",
        _output_section(
            item, phase, result_file, ["phase_complete", "subphase_complete", "failed", "blocked"]
        ),
    ]
    return "\n\n".join(sections) + "\n"


def build_triage_prompt(
    item: Item,
    backlog: Sequence[Item],
    pipelines: Mapping[str, PipelineConfig],
    result_file: Path,
    context: PromptContext,
) -> str:
    others = [f"- {i.id}: {i.title} [{i.status.value}]" for i in backlog if i.id != item.id]
    listing = "\n".join(others) or "(no other active items)"
    names = ", ".join(f"`{name}`" for name in sorted(pipelines))
    instructions = """\
1. Read the item and understand what is being asked.
2. Check the backlog above for duplicates. List their IDs in `duplicates`; the
   higher-numbered ID merges into the lower-numbered one.
3. Classify it: set `pipeline_type` to one of the available pipeline types.
4. Assess `size` (small/medium/large), `complexity`, `risk` and `impact` (low/medium/high) in
   `updated_assessments`.
5. Write a structured `description` with `context`, `problem`, `solution`, `impact` and
   `sizing_rationale`.
6. Route it: small and low-risk work is promoted directly. Otherwise create
   `_ideas/{id}_{slug}.md` with your analysis; set `requires_human_review` to true if the
   risk is high or a human should look before work starts.
7. Report. If the work is not needed (already done, obsolete, a duplicate), use `blocked`
   and say why. When unsure, write the idea file and set `requires_human_review`."""
    sections = [
        "# Autonomous Triage Agent\n\nYou are triaging a new backlog item for the phase-golem "
        "workflow. No human is available: decide for yourself.",
        *_item_sections(item, "Item to Triage"),
        *_continuity_sections(item, context),
        f"## Current Backlog\n\n{listing}",
        f"## Available Pipeline Types\n\n{names}",
        f"## Instructions\n\n{instructions}",
        _output_section(item, "triage", result_file, ["phase_complete", "failed", "blocked"]),
    ]
    return "\n\n".join(sections) + "\n"
