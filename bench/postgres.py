"""PostgreSQL: claims per second from 4 worker processes, and the engine beside SQLite.

Starts a throwaway PostgreSQL server (as tests/pg_server.py does: the machine's `initdb`
and `pg_ctl`, a non-root user, loopback, a free port, fsync off) unless `--url` names one.

1. Claims: N queued runs; 4 processes each claim one run per transaction (the store's
   one-statement `FOR UPDATE SKIP LOCKED` claim) until none is left, released together.
   Prints claims per second over the whole, and the double claims (must be 0).
2. The engine: the same throughput bench as bench/throughput.py (instant in-process agent,
   40 items x 4 phases), once on SQLite and once on PostgreSQL, in this run; the ratio.

    python bench/postgres.py            # 4000 claims, 40 items
    python bench/postgres.py --quick    # a fast smoke run
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from phase_golem.domain.items import new_item  # noqa: E402
from phase_golem.domain.runs import Run, RunKind  # noqa: E402
from phase_golem.store.postgres import PostgresStore  # noqa: E402

WORKERS = 4


@contextmanager
def server(url: str | None) -> Iterator[tuple[str, object | None]]:
    if url is not None:
        yield url, None
        return
    from tests.pg_server import PgServer, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise SystemExit("no PostgreSQL binaries (initdb) on this machine; or pass --url")
    pg = PgServer(bin_dir)
    pg.start()
    try:
        yield pg.url(), pg
    finally:
        pg.remove()


def fresh_database(base: str, pg: object | None) -> str:
    if pg is None:
        return base  # a server of the caller's: its database as given (must be empty)
    return str(pg.new_database())  # type: ignore[attr-defined]


def queue(url: str, runs: int) -> None:
    store = PostgresStore(url)
    with store.transaction() as tx:
        for n in range(runs):
            item_id = tx.allocate_item_id("WRK")
            tx.create_item(new_item(item_id, f"item {n}", tx.now))
            tx.create_run(
                Run(tx.allocate_run_id(), item_id, "prd", RunKind.PHASE, tx.stamp),
            )
    store.close()


def claimer(url: str, name: str, start: object, out: object) -> None:
    store = PostgresStore(url)
    store.snapshot()
    lease = datetime.now(UTC) + timedelta(hours=1)
    mine: list[str] = []
    start.wait()  # type: ignore[attr-defined]
    began = time.perf_counter()
    while True:
        got = store.claim_runs(name, 1, lease)
        if not got:
            break
        mine.extend(run.id for run in got)
    out.put((name, began, time.perf_counter(), mine))  # type: ignore[attr-defined]
    store.close()


def claims_per_second(url: str, runs: int) -> tuple[float, int, int]:
    queue(url, runs)
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(WORKERS), ctx.Queue()
    procs = [ctx.Process(target=claimer, args=(url, f"w{n}", start, out)) for n in range(WORKERS)]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    claimed = [run_id for _, _, _, ids in results for run_id in ids]
    elapsed = max(r[2] for r in results) - min(r[1] for r in results)
    return len(claimed) / elapsed, len(claimed), len(claimed) - len(set(claimed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    parser.add_argument("--url", help="an existing server's empty database instead")
    parser.add_argument("--claims-only", action="store_true", help="skip the engine bench")
    args = parser.parse_args()
    runs, items = (400, 5) if args.quick else (4000, 40)
    if args.claims_only:
        items = 0
    from throughput import engine_runs_per_second

    with server(args.url) as (base, pg):
        rate, claimed, doubles = claims_per_second(fresh_database(base, pg), runs)
        print(f"claims_per_s {rate:.1f} ({WORKERS} processes, {doubles} double)", flush=True)
        if args.claims_only:
            return
        with tempfile.TemporaryDirectory(prefix="pg-bench-") as tmp:
            sqlite_rate, phases = engine_runs_per_second(Path(tmp) / "sqlite", items)
            pg_url = fresh_database(base, pg)
            pg_rate, pg_phases = engine_runs_per_second(Path(tmp) / "pg", items, pg_url)
    if doubles or claimed != runs or phases != pg_phases:
        raise SystemExit(
            f"claimed {claimed} of {runs}, {doubles} twice; phases {phases}/{pg_phases}"
        )
    print("measure value")
    print(f"claim_workers {WORKERS}")
    print(f"claims {claimed}")
    print(f"double_claims {doubles}")
    print(f"claims_per_s {rate:.1f}")
    print(f"phase_runs {phases}")
    print(f"engine_sqlite_runs_per_s {sqlite_rate:.1f}")
    print(f"engine_postgres_runs_per_s {pg_rate:.1f}")
    print(f"postgres_vs_sqlite {pg_rate / sqlite_rate:.2f}x")


if __name__ == "__main__":
    main()
