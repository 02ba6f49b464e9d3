"""A `phase-golem run` worker rides through a PostgreSQL restart (DESIGN §14), end to end.

The server is this test's own (the session's is shared by other tests), restarted on the same
port and data directory while an agent is in flight. Twice: a quick restart, which leaves the
worker's pooled and LISTEN connections dead under it, and an outage the worker meets — its
lease heartbeat and then the agent's completion find the server down — which lasts until the
worker has said it waits for the database. Either way the run's completion is not lost: the
worker finishes by itself with exit 0, the item is done, its side effect happened once, and no
run is left active. And when the server stays away longer than the worker waits for it, the
worker stops with exit 3 and one error line, and the next `run` finishes the item, its side
effect still done once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.pg_server import PgServer
from tests.test_pg_workers_e2e import WORKTREES, Fleet
from tests.waiting import DEADLINE_SECONDS, wait_until

pytest.importorskip("psycopg")

pytestmark = [pytest.mark.slow, pytest.mark.serial]

EXECUTION = WORKTREES + "max_concurrent = 1\nmax_wip = 1\nlease_seconds = 3"
WAITING_LINE = "waiting for PostgreSQL"  # pg_conn.WAITING


@pytest.fixture
def server(own_pg_server: PgServer) -> PgServer:
    return own_pg_server


def _rows(url: str, sql: str) -> list[dict[str, Any]]:
    """Rows read straight from the database: cheaper to poll than a CLI command."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(sql.encode()).fetchall()


def _ship_agent_running(url: str) -> bool:
    live = _rows(
        url,
        "SELECT id FROM runs WHERE phase = 'ship' AND status = 'active' "
        "AND pid IS NOT NULL AND ended_at IS NULL",
    )
    return bool(live)


def _start_one_worker(tmp_path: Path, server: PgServer) -> tuple[Fleet, Any, str]:
    url = server.new_database()
    fleet = Fleet(tmp_path, url, execution=EXECUTION, gated=True)
    clone = fleet.clone()
    clone.ok("add", "Ship the release")
    worker = fleet.start(clone)
    wait_until(lambda: _ship_agent_running(url), "the ship agent to start", process=worker)
    return fleet, worker, url


def _check_finished(fleet: Fleet, worker: Any, *, interrupted: int = 0) -> None:
    """Exit 0, the item done, its side effect once, no run active; every run committed but
    the `interrupted` ship runs, which crashed (and were retried)."""
    repo = fleet.clones[0]
    code = worker.wait(timeout=DEADLINE_SECONDS)
    out, err = (
        (fleet.tmp / f"{repo.root.name}.{kind}").read_text(encoding="utf-8")
        for kind in ("out", "err")
    )
    assert code == 0, f"the worker exited {code}:\n{out[-3000:]}\n{err[-3000:]}"
    assert "Traceback" not in err, err
    items = repo.ok("status", "--all", "--json").json()
    assert [i["status"] for i in items] == ["done"], items
    assert fleet.side_effects() == [f"{items[0]['id']} ship"]  # acted once
    runs = repo.ok("runs", "--json").json()
    assert [r for r in runs if r["status"] == "active"] == []
    crashed = [r for r in runs if r["status"] != "committed"]
    assert [(r["phase"], r["status"]) for r in crashed] == [("ship", "crashed")] * interrupted


@pytest.fixture
def cleanup() -> Iterator[list[Fleet]]:
    fleets: list[Fleet] = []
    yield fleets
    for fleet in fleets:
        fleet.gate.touch()
        fleet.stop_all()


def test_a_quick_restart_mid_run_loses_no_completion(
    tmp_path: Path, server: PgServer, cleanup: list[Fleet]
) -> None:
    fleet, worker, _ = _start_one_worker(tmp_path, server)
    cleanup.append(fleet)
    server.restart()  # every connection the worker holds is now dead
    fleet.gate.touch()
    _check_finished(fleet, worker)


def test_an_outage_met_by_the_heartbeat_and_the_completion_is_ridden_through(
    tmp_path: Path, server: PgServer, cleanup: list[Fleet]
) -> None:
    fleet, worker, _ = _start_one_worker(tmp_path, server)
    cleanup.append(fleet)
    err = fleet.tmp / f"{fleet.clones[0].root.name}.err"
    server.stop()

    def says_it_waits() -> bool:
        return WAITING_LINE in err.read_text(encoding="utf-8")

    wait_until(says_it_waits, "the worker to say it waits for the database", process=worker)
    fleet.gate.touch()  # the agent acts and ends while the server is still down
    wait_until(fleet.side_effects, "the agent's side effect", process=worker)
    server.start()
    _check_finished(fleet, worker)
    assert err.read_text(encoding="utf-8").count(WAITING_LINE) >= 1


def test_a_server_away_too_long_stops_the_worker_in_one_line_and_the_next_run_finishes(
    tmp_path: Path, server: PgServer, cleanup: list[Fleet]
) -> None:
    fleet, worker, _ = _start_one_worker(tmp_path, server)
    cleanup.append(fleet)
    server.stop()  # and kept down until the worker has given up (after its bounded wait)
    code = worker.wait(timeout=DEADLINE_SECONDS)
    err = (fleet.tmp / f"{fleet.clones[0].root.name}.err").read_text(encoding="utf-8")
    assert code == 3, err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("phase-golem: error:")]
    assert len(errors) == 1 and "PostgreSQL did not answer for" in errors[0], err
    assert fleet.side_effects() == []  # its agent was stopped at the gate, before acting
    server.start()
    fleet.gate.touch()
    _check_finished(fleet, fleet.start(fleet.clones[0]), interrupted=1)
