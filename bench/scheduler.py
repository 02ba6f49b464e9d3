"""One scheduling decision (`select_actions` on the store's snapshot) at 1,000 and 10,000
active items, and at 10,000 with 20,000 archived ones beside them, measured in one run.

The backlog is a realistic mix (bench/backlogs.py): statuses, both default pipelines and
their phases, dependencies, sleeping and just-woken items, a few runs in flight. The
decision reads the snapshot's queues and stops once the free slots are filled, so its cost
follows what can be dispatched, not what is stored.

    python bench/scheduler.py            # 1k, 10k, 10k + 20k archived
    python bench/scheduler.py --quick    # a smoke run (smaller sizes, fewer repetitions)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backlogs import NOW, make_backlog
from phase_golem.config import default_pipelines
from phase_golem.domain.items import ItemStatus
from phase_golem.domain.pipelines import ExecutionConfig
from phase_golem.domain.scheduling import RunningTask, select_actions
from phase_golem.domain.snapshot import BacklogSnapshot

EXECUTION = ExecutionConfig(max_wip=3, max_concurrent=4)
PIPELINES = default_pipelines()


def decision_ms(count: int, archived: int, repetitions: int) -> tuple[float, int]:
    items = make_backlog(count, archived=archived)
    snapshot = BacklogSnapshot.of(items)
    in_progress = [i for i in snapshot.items() if i.status is ItemStatus.IN_PROGRESS]
    running = {i.id: RunningTask(i.phase or "", False) for i in in_progress[:2]}
    actions = select_actions(snapshot, running, EXECUTION, PIPELINES, NOW)
    samples = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(repetitions):
            select_actions(snapshot, running, EXECUTION, PIPELINES, NOW)
        samples.append((time.perf_counter() - start) / repetitions * 1000)
    return statistics.median(samples), len(actions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    args = parser.parse_args()
    small, large = (100, 1_000) if args.quick else (1_000, 10_000)
    repetitions = 20 if args.quick else 200
    small_ms, small_actions = decision_ms(small, 0, repetitions)
    large_ms, large_actions = decision_ms(large, 0, repetitions)
    archived_ms, _ = decision_ms(large, 2 * large, repetitions)
    print("measure value")
    print(f"decision_ms_{small} {small_ms:.3f}")
    print(f"decision_ms_{large} {large_ms:.3f}")
    print(f"decision_ms_{large}_plus_{2 * large}_archived {archived_ms:.3f}")
    print(f"actions_per_decision {small_actions}/{large_actions}")
    print(f"ratio_{large}_to_{small} {large_ms / small_ms:.2f}x")
    print(f"ratio_archived_to_none {archived_ms / large_ms:.2f}x")


if __name__ == "__main__":
    main()
