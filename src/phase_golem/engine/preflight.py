"""Checks before any agent runs (Phase Golem's five, research §4.17, plus the agents).

Every problem is gathered; any problem stops the run, and each says what is wrong,
where, and how to fix it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from phase_golem.agents.command import SimAdapter
from phase_golem.agents.registry import adapter_for, missing_binary
from phase_golem.agents.sim import ScenarioError, load_scenario
from phase_golem.config import resolve_workflow_path
from phase_golem.domain.dependencies import find_cycle
from phase_golem.domain.items import Item, ItemStatus
from phase_golem.domain.pipelines import AgentCli, Isolation, PhaseConfig, Settings


def phase_agent(settings: Settings, phase: PhaseConfig | None) -> AgentCli:
    if phase is not None and phase.agent is not None:
        return phase.agent
    return settings.agent.cli


def _workflow_problems(settings: Settings, base_dir: Path) -> list[str]:
    problems = []
    seen: set[str] = set()
    for pipeline in settings.pipelines.values():
        for phase in pipeline.pre_phases + pipeline.phases:
            for workflow in phase.workflows:
                if workflow in seen:
                    continue
                seen.add(workflow)
                if not resolve_workflow_path(workflow, base_dir).is_file():
                    problems.append(
                        f"workflow file {workflow} of pipelines.{pipeline.name} phase "
                        f"{phase.name} does not exist (create it or fix the path)"
                    )
    return problems


def _item_problems(settings: Settings, items: Sequence[Item]) -> list[str]:
    problems = []
    for item in items:
        if item.status not in (ItemStatus.SCOPING, ItemStatus.IN_PROGRESS):
            continue
        pipeline = settings.pipelines.get(item.effective_pipeline)
        if pipeline is None:
            problems.append(
                f"{item.id}: pipeline {item.effective_pipeline!r} is not configured "
                f"(edit it with `phase-golem edit {item.id} --pipeline NAME`)"
            )
            continue
        if item.phase is None:
            continue
        if pipeline.locate(item.phase, item.effective_pool) is None:
            other = pipeline.locate(item.phase)
            hint = (
                f"it is a {other.pool.value} phase, not {item.effective_pool.value}"
                if other is not None
                else f"phases: {', '.join(pipeline.phase_names)}"
            )
            problems.append(
                f"{item.id}: phase {item.phase!r} is not in pipeline {pipeline.name!r} ({hint})"
            )
    return problems


def _dependency_problems(items: Sequence[Item], archived_ids: set[str]) -> list[str]:
    problems = []
    known = {i.id for i in items}
    for item in items:
        for dep in item.dependencies:
            # A dependency on an archived item is met, not dangling (research §7.1.9).
            if dep not in known and dep not in archived_ids:
                problems.append(f"{item.id}: depends on unknown item {dep}")
    live = {i.id: i.dependencies for i in items if i.status is not ItemStatus.DONE}
    cycle = find_cycle(live)
    if cycle:
        problems.append(f"dependency cycle: {' → '.join(cycle)}")
    return problems


def _shared_store_problems(settings: Settings) -> list[str]:
    """Workers of a shared store each work in their own clone (on their own host): their
    work meets only on item branches through the remote (DESIGN §14)."""
    if settings.storage.is_shared and settings.execution.isolation is not Isolation.WORKTREE:
        return [
            "storage.url is PostgreSQL: each worker works in its own clone and their work "
            'meets on item branches, which needs [execution] isolation = "worktree"'
        ]
    return []


def preflight(
    settings: Settings,
    base_dir: Path,
    root: Path,
    items: Sequence[Item],
    archived_ids: set[str],
) -> list[str]:
    problems = _shared_store_problems(settings) + _workflow_problems(settings, base_dir)
    problems += _item_problems(settings, items)
    duplicates = [item_id for item_id, n in Counter(i.id for i in items).items() if n > 1]
    problems += [f"duplicate item ID {item_id}" for item_id in duplicates]
    problems += _dependency_problems(items, archived_ids)
    clis = {settings.agent.cli}
    for pipeline in settings.pipelines.values():
        clis |= {p.agent for p in pipeline.pre_phases + pipeline.phases if p.agent is not None}
    for cli in sorted(clis):
        adapter = adapter_for(cli, settings.agent, base_dir)
        problem = missing_binary(adapter, root)
        if problem:
            problems.append(problem)
        if isinstance(adapter, SimAdapter) and adapter.scenario is not None:
            try:
                load_scenario(adapter.scenario)
            except ScenarioError as exc:
                problems.append(f"agent.scenario: {exc}")
    return problems
