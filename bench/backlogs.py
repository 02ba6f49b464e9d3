"""Realistic backlogs for the benches: a mix of statuses, pipelines, phases, dependencies,
sleeping items (some already due) and archived history, reproducible from a seed."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from phase_golem.domain.descriptions import StructuredDescription
from phase_golem.domain.items import (
    Item,
    ItemStatus,
    Level,
    PhasePool,
    Size,
    format_timestamp,
    new_item,
)

START = datetime(2026, 1, 1, tzinfo=UTC)
NOW = START + timedelta(days=200)
FEATURE_MAIN = ("prd", "design", "spec", "build", "review")
SIMPLE_MAIN = ("plan", "build", "review")


def _shape(rng: random.Random, item: Item) -> Item:
    """Where the item stands: new 25%, scoping 10%, ready 30%, in progress 10%, blocked 15%,
    done-but-not-archived 2%, the rest new again (fresh intake)."""
    roll = rng.random()
    simple = rng.random() < 0.3
    pipeline = "simple" if simple else "feature"
    if roll < 0.25:
        return item
    if roll < 0.35:
        return item.replace(
            status=ItemStatus.SCOPING,
            phase="research",
            phase_pool=PhasePool.PRE,
            pipeline_type="feature",
        )
    if roll < 0.65:
        return item.replace(status=ItemStatus.READY, pipeline_type=pipeline)
    if roll < 0.75:
        phase = rng.choice(SIMPLE_MAIN if simple else FEATURE_MAIN)
        return item.replace(
            status=ItemStatus.IN_PROGRESS,
            phase=phase,
            phase_pool=PhasePool.MAIN,
            pipeline_type=pipeline,
        )
    if roll < 0.90:
        return item.replace(
            status=ItemStatus.BLOCKED,
            blocked_from_status=ItemStatus.READY,
            blocked_reason="needs a decision",
            pipeline_type=pipeline,
        )
    if roll < 0.92:
        return item.replace(status=ItemStatus.DONE, pipeline_type=pipeline)
    return item


def make_backlog(count: int, *, seed: int = 7, archived: int = 0) -> list[Item]:
    """`count` active items (and `archived` archived ones before them), oldest first.

    A fifth depend on one or two earlier items; a tenth sleep (`wake_at` ahead of NOW) and
    one in fifty woke already (due, not yet run).
    """
    rng = random.Random(seed)
    history = random.Random(seed + 1)  # so the active mix is the same with or without it
    items: list[Item] = []
    for n in range(1, archived + count + 1):
        created = START + timedelta(seconds=n * 60)
        draw = history if n <= archived else rng
        item = new_item(
            f"WRK-{n:05d}",
            f"Backlog item number {n} with a realistic title",
            created,
            size=draw.choice(list(Size)),
            risk=draw.choice(list(Level)),
            impact=draw.choice([None, *Level]),
            tags=("backend", f"area-{n % 7}"),
            description=StructuredDescription(context="Context " * 10, problem="Problem " * 8),
        )
        if n <= archived:
            items.append(
                item.replace(
                    status=ItemStatus.DONE, archived=True, archived_at=format_timestamp(created)
                )
            )
            continue
        item = _shape(rng, item)
        if n > archived + 2 and rng.random() < 0.2:
            low = max(archived + 1, n - 500)
            deps = {f"WRK-{rng.randint(low, n - 1):05d}" for _ in range(2)}
            item = item.replace(dependencies=tuple(sorted(deps)))
        sleep = rng.random()
        if sleep < 0.10:
            item = item.replace(wake_at=format_timestamp(NOW + timedelta(hours=rng.randint(1, 48))))
        elif sleep < 0.12:
            item = item.replace(wake_at=format_timestamp(NOW - timedelta(minutes=5)))
        items.append(item)
    return items


def all_asleep(count: int, *, hours: int = 6) -> list[Item]:
    """`count` new items that all sleep until `hours` after the real now (the idle bench)."""
    wake = format_timestamp(datetime.now(UTC) + timedelta(hours=hours))
    return [
        new_item(f"WRK-{n:05d}", f"Sleeping item {n}", START + timedelta(seconds=n)).replace(
            wake_at=wake
        )
        for n in range(1, count + 1)
    ]
