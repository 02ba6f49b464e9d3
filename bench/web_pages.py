"""What the dashboard's pages cost as the store grows (DESIGN §13: no page loads the whole
ledger or every run).

The same pages of the real application (its guard, templates and SQLite store, in process
through starlette's test client) over a small and a large project, rounds interleaved so a
busy machine slows both sides alike. Each row prints the median milliseconds at both sizes,
their ratio, and the ratio of what the page shows (its HTML bytes): a page that reads a page
of the store grows with what it shows, not with what is stored.

    python bench/web_pages.py            # 100 vs 10,000 items (with a run and events each)
    python bench/web_pages.py --quick    # 100 vs 1,000 (a smoke run)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from backlogs import START, make_backlog
from phase_golem.domain.runs import Run, RunKind, RunStatus, Step
from phase_golem.project import load_project
from phase_golem.store.sqlite import SqliteStore
from phase_golem.web.app import create_app
from phase_golem.web.context import COOKIE

EXE = Path(sys.executable).with_name("phase-golem")
HOST, PORT = "127.0.0.1", 8765
ITEM_RUNS = 30  # the item page's item has this many runs at both sizes
PAGES = ("/", "/needs", "/items/WRK-00001", "/runs", "/notifications")


def build(root: Path, items: int) -> Path:
    """A project with `items` active items, one run for every item and the item page's
    item with ITEM_RUNS of its own (the ledger gets an event per write)."""
    root.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    subprocess.run([str(EXE), "--root", str(root), "init"], check=True, capture_output=True)
    store = SqliteStore(root / ".phase-golem" / "state.db", synchronous="OFF")
    backlog = make_backlog(items)
    with store.transaction() as tx:
        for item in backlog:
            tx.create_item(item)
        owners = [backlog[0].id] * ITEM_RUNS + [item.id for item in backlog[1:]]
        for n, owner in enumerate(owners):
            tx.create_run(
                Run(
                    id=tx.allocate_run_id(),
                    item_id=owner,
                    phase="build",
                    kind=RunKind.PHASE,
                    queued_at=(START + timedelta(seconds=n)).isoformat(),
                    step=Step.COMMITTED,
                    status=RunStatus.COMMITTED,
                )
            )
    store.close()
    return root


@dataclass
class Site:
    client: Any  # starlette's TestClient
    sizes: dict[str, int]


def open_site(root: Path) -> Site:
    project = load_project(root, None)
    app, web = create_app(project, HOST, PORT)
    with warnings.catch_warnings():  # its note on httpx is not ours to act on
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient
    client = TestClient(app, base_url=f"http://{HOST}:{PORT}")
    client.cookies.set(COOKIE, web.token)
    return Site(client, {})


def time_page(site: Site, path: str) -> float:
    started = time.perf_counter()
    response = site.client.get(path)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise SystemExit(f"{path}: HTTP {response.status_code}")
    site.sizes[path] = len(response.content)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100 vs 1,000 items, 5 rounds")
    options = parser.parse_args()
    small, large = 100, 1_000 if options.quick else 10_000
    rounds = 5 if options.quick else 20
    with tempfile.TemporaryDirectory(prefix="pg-web-bench-") as tmp:
        sites = {
            small: open_site(build(Path(tmp) / "small", small)),
            large: open_site(build(Path(tmp) / "large", large)),
        }
        for site in sites.values():  # warm: templates compiled, snapshot opened
            for path in PAGES:
                time_page(site, path)
        samples: dict[tuple[int, str], list[float]] = {}
        for _ in range(rounds):
            for path in PAGES:
                for size, site in sites.items():
                    samples.setdefault((size, path), []).append(time_page(site, path))
        print(f"{'page':<18} {small:>8}_ms {large:>8}_ms {'ratio':>7} {'html_ratio':>10}")
        for path in PAGES:
            fast = statistics.median(samples[(small, path)]) * 1000
            slow = statistics.median(samples[(large, path)]) * 1000
            shown = sites[large].sizes[path] / max(sites[small].sizes[path], 1)
            print(f"{path:<18} {fast:>11.2f} {slow:>11.2f} {slow / fast:>6.2f}x {shown:>9.2f}x")
        print(
            f"({large // small}x the items, runs and events; the board shows at most 50 cards "
            "a column, the item page its item's runs and newest 200 events)"
        )
        for site in sites.values():
            site.client.close()


if __name__ == "__main__":
    main()
