"""Snapshot cost against a deep copy of the same backlog, measured side by side in one run.

The question of the seed documents WRK-022/WRK-024: does handing every handler an
immutable snapshot cost less than the deep copy Phase Golem made per scheduler tick?

    python bench/snapshot.py            # 30, 100, 500 and 10,000 items
    python bench/snapshot.py --quick    # a fast smoke run (30 and 100 items)
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from phase_golem.domain.descriptions import StructuredDescription
from phase_golem.domain.events import EventKind
from phase_golem.domain.items import ItemStatus, Level, Size, new_item, touch
from phase_golem.store.sqlite import SqliteStore

STATUSES = [ItemStatus.NEW, ItemStatus.READY, ItemStatus.IN_PROGRESS, ItemStatus.BLOCKED]


def build_store(path: Path, count: int) -> SqliteStore:
    store = SqliteStore(path, synchronous="OFF")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with store.transaction() as tx:
        for n in range(1, count + 1):
            item = new_item(
                f"WRK-{n:05d}",
                f"Backlog item number {n} with a realistic title",
                start + timedelta(minutes=n),
                size=list(Size)[n % 3],
                risk=list(Level)[n % 3],
                impact=list(Level)[(n + 1) % 3],
                tags=("backend", f"area-{n % 7}"),
                dependencies=(f"WRK-{n - 1:05d}",) if n > 1 and n % 4 == 0 else (),
                description=StructuredDescription(
                    context="Context " * 20, problem="Problem " * 15, solution="Solution " * 15
                ),
            ).replace(status=STATUSES[n % len(STATUSES)])
            tx.create_item(item)
    return store


def per_op_ns(action: Callable[[], object], repetitions: int, rounds: int) -> float:
    """Median over rounds of the mean time per call."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        for _ in range(repetitions):
            action()
        samples.append((time.perf_counter_ns() - start) / repetitions)
    return statistics.median(samples)


def measure(count: int, quick: bool, workdir: Path) -> dict[str, float]:
    store = build_store(workdir / f"bench-{count}.db", count)
    snapshot = store.snapshot()
    items = snapshot.items()
    rounds = 3 if quick else 7
    take = per_op_ns(store.snapshot, 200 if quick else 20_000, rounds)
    copy_reps = max(1, (20 if quick else 2_000) // max(1, count // 30))
    deep = per_op_ns(lambda: copy.deepcopy(items), copy_reps, rounds)
    target = items[len(items) // 2].id
    counter = iter(range(10**9))

    def write_then_snapshot() -> object:
        with store.transaction() as tx:
            current = tx.require_item(target)
            tx.save_item(touch(current, tx.now, tokens_in=next(counter)), EventKind.ITEM_UPDATED)
        return store.snapshot()

    publish = per_op_ns(write_then_snapshot, 5 if quick else 100, rounds)
    store.close()
    return {"take": take, "deepcopy": deep, "publish": publish}


def human(ns: float) -> str:
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.1f} µs"
    return f"{ns / 1_000_000:.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    args = parser.parse_args()
    sizes = [30, 100] if args.quick else [30, 100, 500, 10_000]
    print(f"{'items':>7}  {'snapshot':>10}  {'deepcopy':>10}  {'ratio':>10}  {'write+publish':>14}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for count in sizes:
            r = measure(count, args.quick, Path(tmp))
            results[count] = r
            ratio = r["deepcopy"] / r["take"]
            print(
                f"{count:>7}  {human(r['take']):>10}  {human(r['deepcopy']):>10}  "
                f"{ratio:>9.0f}x  {human(r['publish']):>14}"
            )
    first, last = sizes[0], sizes[-1]
    flat = results[last]["take"] / results[first]["take"]
    print(
        f"\nsnapshot at {last:,} items costs {flat:.2f}x what it costs at {first} items "
        f"(deep copy: {results[last]['deepcopy'] / results[first]['deepcopy']:.0f}x)"
    )
    print(
        "ratio = deepcopy / snapshot; write+publish = one-item transaction plus the next snapshot"
    )


if __name__ == "__main__":
    main()
