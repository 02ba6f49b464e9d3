"""When a side-effect phase's outcome is uncertain, ask its reconcile check (DESIGN §6).

Uncertain means the run may have acted but we cannot tell from its result: its agent
crashed, timed out or left no valid result, the orchestrator died under it, or it was
stopped mid-action. Only then, and only for a phase that has a `reconcile` command, is
the check run — never inside a store transaction.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from phase_golem.agents.merge import check_command as merge_check_command
from phase_golem.agents.runner import AgentOutcome
from phase_golem.domain.endings import UNCERTAIN
from phase_golem.domain.pipelines import AgentCli, Settings
from phase_golem.domain.runs import Mutation
from phase_golem.engine.completion import phase_config
from phase_golem.engine.reconcile import Reconciliation, run_reconcile
from phase_golem.store import Store
from phase_golem.workspace.git import current_branch


def check_side_effect(
    store: Store, settings: Settings, root: Path, run_id: str
) -> Reconciliation | None:
    """The reconcile verdict for a side-effect run that may have acted; None without one."""
    with store.reader() as tx:
        run = tx.get_run(run_id)
        item = tx.get_item(run.item_id) if run is not None else None
    if run is None or item is None or not run.side_effect:
        return None
    if run.mutation is not Mutation.IN_FLIGHT:
        return None
    phase = phase_config(settings, item, run)
    template = phase.reconcile if phase is not None else None
    if template is None and phase is not None and phase.agent is AgentCli.MERGE:
        # The built-in merge knows how to tell: is the item's branch in the base branch?
        base = current_branch(root) or "main"
        template = merge_check_command(root, base, settings.execution.remote)
    if template is None:
        return None
    timeout = settings.execution.reconcile_timeout_seconds
    return run_reconcile(template, run, item, root, timeout)


async def reconcile_uncertain(
    store: Store, settings: Settings, root: Path, run_id: str, outcome: AgentOutcome
) -> Reconciliation | None:
    """From the scheduler's loop: the check runs in a thread so other agents go on."""
    if outcome.error_class not in UNCERTAIN:
        return None
    return await asyncio.to_thread(check_side_effect, store, settings, root, run_id)
