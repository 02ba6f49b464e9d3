"""What the CLI costs, measured as a user runs it (a fresh process per command), side by side.

Two questions, each answered with ratios measured in one run (rounds interleaved, so a busy
machine slows every column alike):

1. Start-up: `phase-golem --version`, `--help` and `status` on a 100-item project, as
   multiples of the same interpreter's `python -c pass` (targets: 8x and 15x).
2. Growth with what is stored: the same command on a small and a large store, which should
   cost about the same because it prints the same (targets: `status` at 10,000 items within
   3x of 1,000; `log --limit 20` over 100,000 events within 2x of 1,000).

    python bench/cli.py            # 100 / 1,000 / 10,000 items, 1,000 / 100,000 events and runs
    python bench/cli.py --quick    # a fast smoke run (10x smaller stores, fewer rounds)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from phase_golem.domain.events import EventKind
from phase_golem.domain.items import ItemStatus, Level, Size, archive, new_item
from phase_golem.domain.listing import EventPage
from phase_golem.domain.runs import Run, RunKind, RunStatus, Step
from phase_golem.store import Transaction
from phase_golem.store.sqlite import SqliteStore

EXE = Path(sys.executable).with_name("phase-golem")
PYTHON_PASS: tuple[str, ...] = (sys.executable, "-c", "pass")
STATUSES = [
    ItemStatus.NEW,
    ItemStatus.NEW,
    ItemStatus.READY,
    ItemStatus.SCOPING,
    ItemStatus.IN_PROGRESS,
    ItemStatus.BLOCKED,
    ItemStatus.DONE,
]
START = datetime(2026, 1, 1, tzinfo=UTC)


def make_project(root: Path) -> Path:
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    subprocess.run([str(EXE), "--root", str(root), "init"], check=True, capture_output=True)
    return root


def fill(root: Path, *, items: int = 0, runs: int = 0, events: int | None = None) -> None:
    """A realistic mix: statuses, impacts, a done (archived) share; runs spread over items;
    then the ledger padded with updates to exactly `events` events when asked."""
    store = SqliteStore(root / ".phase-golem" / "state.db", synchronous="OFF")
    with store.transaction() as tx:
        for n in range(1, items + 1):
            status = STATUSES[n % len(STATUSES)]
            item = new_item(
                tx.allocate_item_id("WRK"),
                f"Backlog item number {n} with a realistic title",
                START + timedelta(minutes=n),
                size=list(Size)[n % 3],
                risk=list(Level)[n % 3],
                impact=list(Level)[(n // 3) % 3],
                tags=("backend", f"area-{n % 7}"),
            ).replace(status=status)
            tx.create_item(archive(item, START) if status is ItemStatus.DONE else item)
        for n in range(runs):
            tx.create_run(
                Run(
                    id=tx.allocate_run_id(),
                    item_id=f"WRK-{n % max(items, 1) + 1:03d}",
                    phase="build",
                    kind=RunKind.PHASE,
                    queued_at=(START + timedelta(seconds=n)).isoformat(),
                    step=Step.COMMITTED,
                    status=RunStatus.COMMITTED,
                )
            )
        if events is not None:
            already = _event_count(tx)
            for n in range(events - already):
                tx.append_event(EventKind.ITEM_UPDATED, item_id="WRK-001", data={"n": n})
    store.close()


def _event_count(tx: Transaction) -> int:
    last = tx.event_page(EventPage(limit=1, newest=True))
    return last[0].seq if last else 0


@dataclass(frozen=True)
class Command:
    label: str
    argv: tuple[str, ...]
    cwd: Path | None = None
    before_each: Path | None = None  # a config file to change before every run (cache miss)


@dataclass(frozen=True)
class Sample:
    wall: float  # seconds, as a user waits for it
    cpu: float  # the child's user + system seconds: what it costs, whatever the machine's load


def run_once(command: Command) -> Sample:
    if command.before_each is not None:
        with command.before_each.open("a", encoding="utf-8") as handle:
            handle.write(f"# edited {time.perf_counter_ns()}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["NO_COLOR"] = "1"
    start = time.perf_counter()
    child = subprocess.Popen(
        command.argv,
        cwd=command.cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert child.stderr is not None
    errors = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{command.label} failed ({child.returncode}): {errors.decode()}")
    return Sample(wall, usage.ru_utime + usage.ru_stime)


@dataclass(frozen=True)
class Timing:
    median: float
    best: float
    cpu: float  # median


def measure(commands: Sequence[Command], rounds: int) -> dict[str, Timing]:
    """Each round runs every command once, in turn (so load hits them alike)."""
    for command in commands:
        run_once(command)  # warm the page cache and the config verdict
    samples: dict[str, list[Sample]] = {c.label: [] for c in commands}
    for _ in range(rounds):
        for command in commands:
            samples[command.label].append(run_once(command))
    return {
        label: Timing(
            statistics.median(s.wall for s in values),
            min(s.wall for s in values),
            statistics.median(s.cpu for s in values),
        )
        for label, values in samples.items()
    }


def pg(*args: str, root: Path) -> tuple[str, ...]:
    return (str(EXE), "--root", str(root), *args)


@dataclass(frozen=True)
class Sizes:
    items: tuple[int, int]  # small, large
    rows: tuple[int, int]  # events or runs: small, large

    @classmethod
    def of(cls, quick: bool) -> Sizes:
        scale = 10 if quick else 1
        return cls((1_000 // scale, 10_000 // scale), (1_000 // scale, 100_000 // scale))


@dataclass(frozen=True)
class Pair:
    """The same command on the small and the large store of one kind."""

    label: str
    argv: tuple[str, ...]
    kind: str  # items, log or runs
    target: float | None = None


def build_projects(base: Path, sizes: Sizes) -> dict[str, Path]:
    projects = {}
    (small_items, large_items), (small_rows, large_rows) = sizes.items, sizes.rows
    for name, items, runs, events in (
        ("hundred", 100, 0, None),
        ("edited", 100, 0, None),
        ("items-small", small_items, 0, None),
        ("items-large", large_items, 0, None),
        ("log-small", 10, 0, small_rows),
        ("log-large", 10, 0, large_rows),
        # Runs spread over many items: queueing a run checks its item's runs.
        ("runs-small", small_items, small_rows, None),
        ("runs-large", small_items, large_rows, None),
    ):
        print(f"building {name} ...", file=sys.stderr, flush=True)
        projects[name] = make_project(base / name)
        fill(projects[name], items=items, runs=runs, events=events)
    config = projects["edited"] / "phase-golem.toml"
    config.write_text("[project]\nprefix = 'WRK'\n", encoding="utf-8")
    return projects


def startup_commands(projects: dict[str, Path]) -> list[Command]:
    hundred, edited = projects["hundred"], projects["edited"]
    return [
        Command("python -c pass", PYTHON_PASS),
        Command("phase-golem --version", (str(EXE), "--version")),
        Command("phase-golem --help", (str(EXE), "--help")),
        Command("phase-golem status (100 items)", pg("status", root=hundred)),
        Command("phase-golem status --json (100 items)", pg("status", "--json", root=hundred)),
        Command(
            "phase-golem status (100 items, config edited before each)",
            pg("status", root=edited),
            before_each=edited / "phase-golem.toml",
        ),
    ]


def growth_pairs(sizes: Sizes) -> list[Pair]:
    items = f"{sizes.items[0]:,} vs {sizes.items[1]:,}"
    rows = f"{sizes.rows[0]:,} vs {sizes.rows[1]:,}"
    return [
        Pair(f"status: {items} items", ("status",), "items", 3.0),
        Pair(f"status --json (prints every item): {items}", ("status", "--json"), "items"),
        Pair(f"show WRK-005: {items} items", ("show", "WRK-005"), "items"),
        Pair(f"log --limit 20: {rows} events", ("log", "--limit", "20"), "log", 2.0),
        Pair(
            f"log --item WRK-002 --limit 20: {rows} events",
            ("log", "--item", "WRK-002", "--limit", "20"),
            "log",
        ),
        Pair(f"runs --limit 20: {rows} runs", ("runs", "--limit", "20"), "runs"),
    ]


def report(
    timings: dict[str, Timing], startup: list[Command], pairs: list[Pair], rounds: int
) -> None:
    base = timings["python -c pass"]
    targets = {"phase-golem --version": 8.0, "phase-golem status (100 items)": 15.0}
    print(
        f"{'start-up (x: multiple of python -c pass)':<58} {'median':>9} {'x':>6} "
        f"{'best':>9} {'x':>6} {'cpu x':>6}  target (median)"
    )
    for command in startup:
        t = timings[command.label]
        target = targets.get(command.label)
        print(
            f"{command.label:<58} {t.median * 1000:>7.1f}ms {t.median / base.median:>5.1f}x "
            f"{t.best * 1000:>7.1f}ms {t.best / base.best:>5.1f}x {t.cpu / base.cpu:>5.1f}x  "
            f"{f'<= {target:.0f}x' if target else ''}"
        )
    print()
    print(
        f"{'growth with what is stored (medians)':<58} {'small':>9} {'large':>9} {'ratio':>7}"
        "  target"
    )
    for pair in pairs:
        small = timings[f"{pair.label} [small]"].median
        large = timings[f"{pair.label} [large]"].median
        print(
            f"{pair.label:<58} {small * 1000:>7.1f}ms {large * 1000:>7.1f}ms "
            f"{large / small:>6.2f}x  {f'<= {pair.target:.0f}x' if pair.target else ''}"
        )
    print(
        f"\n{rounds} interleaved rounds; every command is a fresh process; best = fastest round; "
        "cpu = the child's user+system time"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny run for smoke tests")
    args = parser.parse_args()
    sizes = Sizes.of(args.quick)
    rounds = 3 if args.quick else 15
    with tempfile.TemporaryDirectory() as tmp:
        projects = build_projects(Path(tmp), sizes)
        startup = startup_commands(projects)
        pairs = growth_pairs(sizes)
        growth = [
            Command(f"{pair.label} [{end}]", pg(*pair.argv, root=projects[f"{pair.kind}-{end}"]))
            for pair in pairs
            for end in ("small", "large")
        ]
        timings = measure(startup + growth, rounds)
    report(timings, startup, pairs, rounds)


if __name__ == "__main__":
    main()
