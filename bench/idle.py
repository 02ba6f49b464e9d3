"""`phase-golem run` on a backlog where every item sleeps: what it costs to wait, and how
soon it notices work added from another terminal. Through the real CLI, in one run.

A project with 10,000 new items, all asleep (`wake_at` hours ahead). The orchestrator is
started and, once it is waiting, its CPU time is read from /proc over a window (60 s;
10 s with --quick): the share of one core it used. Then `phase-golem add` runs as a
second process, and the time from that item's creation (its ledger event) to its first
run being claimed is printed. The wait polls the store with one `PRAGMA data_version`
about once a second (DESIGN §3 step 5): no decision, no decode while nothing changes.

    python bench/idle.py            # 10,000 sleeping items, a 60 s window
    python bench/idle.py --quick    # 1,000 items, a 10 s window
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from backlogs import all_asleep
from phase_golem.store.sqlite import SqliteStore

CONFIG = """\
[project]
prefix = "WRK"

[execution]
max_wip = 2
max_concurrent = 2

[agent]
cli = "sim"
"""
TICKS = os.sysconf("SC_CLK_TCK")
DEADLINE_SECONDS = 120.0


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def build_project(root: Path, items: int) -> None:
    root.mkdir(parents=True)
    _git(root, "init", "-q", "-b", "main")
    (root / "phase-golem.toml").write_text(CONFIG, encoding="utf-8")
    (root / ".gitignore").write_text(".phase-golem/\n", encoding="utf-8")
    _git(root, "add", "-A")
    _git(root, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "start")
    state = root / ".phase-golem"
    state.mkdir(mode=0o700)
    store = SqliteStore(state / "state.db", synchronous="OFF")
    with store.transaction() as tx:
        for item in all_asleep(items):
            tx.create_item(item)
    store.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _events(db: Path, kind: str) -> list[tuple[float, str | None]]:
    store = SqliteStore(db)
    with store.reader() as tx:
        found = [
            (datetime.fromisoformat(e.at).timestamp(), e.item_id)
            for e in tx.events()
            if e.kind.value == kind
        ]
    store.close()
    return found


def _wait_for(db: Path, kind: str, item_id: str | None = None) -> float:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        for at, item in _events(db, kind):
            if item_id is None or item == item_id:
                return at
        time.sleep(0.2)
    raise SystemExit(f"no {kind} event within {DEADLINE_SECONDS:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a fast smoke run")
    args = parser.parse_args()
    items, window = (1_000, 10.0) if args.quick else (10_000, 60.0)
    exe = Path(sys.executable).parent / "phase-golem"
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b"}
    env |= {"GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@b"}
    with tempfile.TemporaryDirectory(prefix="pg-idle-") as tmp:
        root = Path(tmp) / "project"
        build_project(root, items)
        db = root / ".phase-golem" / "state.db"
        log = (Path(tmp) / "run.log").open("wb")
        run = subprocess.Popen(
            [str(exe), "run", "--plain"],
            cwd=root,
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        try:
            _wait_for(db, "scheduler.started")
            time.sleep(2.0)  # past its first decision: from here on it only waits
            cpu_before, wall_before = cpu_seconds(run.pid), time.monotonic()
            time.sleep(window)
            cpu_used = cpu_seconds(run.pid) - cpu_before
            wall = time.monotonic() - wall_before
            added = subprocess.run(
                [str(exe), "add", "Work that arrives while everything sleeps"],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            new_id = next(w for w in added.stdout.split() if w.startswith("WRK-"))
            created = _wait_for(db, "item.created", new_id)
            claimed = _wait_for(db, "run.claimed", new_id)
            alive = run.poll() is None
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(run.pid, signal.SIGTERM)
            try:
                run.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()
            log.close()
    print("measure value")
    print(f"sleeping_items {items}")
    print(f"window_s {wall:.1f}")
    print(f"cpu_s {cpu_used:.3f}")
    print(f"cpu_share {100 * cpu_used / wall:.3f}%")
    print(f"add_to_claim_s {claimed - created:.3f}")
    print(f"still_running_when_added {alive}")


if __name__ == "__main__":
    main()
