"""Notifications end to end: a real `run`, a real HTTP receiver on 127.0.0.1 (DESIGN §12).

The receiver records every POST with its `Idempotency-Key`; it can hold a request until
the test lets it go, which is how a SIGKILL lands exactly between sending and marking.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.conftest import EXE, Repo
from tests.e2e import add_items, commit_all, items_by_id, write_project
from tests.waiting import DEADLINE_SECONDS, state_rows, wait_until

pytest.importorskip("httpx", reason="webhook sinks need the [notify] extra")

REVIEW = "  - match: {phase: triage}\n    requires_human_review: true\n"
HOOK_ENV = "TEST_NOTIFY_HOOK_URL"


@dataclass
class Received:
    key: str
    body: dict[str, Any]


@dataclass
class Receiver:
    """Answers 200 to every POST, except that the first one is held while `hold` is set,
    and every one while `hang` is set (until `release`)."""

    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    hold: threading.Event = field(default_factory=threading.Event)
    hang: threading.Event = field(default_factory=threading.Event)
    answered: int = 0
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def keys(self) -> list[str]:
        with self.lock:
            return [r.key for r in self.received]

    def kinds(self) -> list[str]:
        with self.lock:
            return [str(r.body["kind"]) for r in self.received]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            me = state["receiver"]
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with me.lock:
                me.received.append(Received(self.headers.get("Idempotency-Key", ""), body))
                first_held = me.hold.is_set() and not me.holding.is_set()
                if first_held:
                    me.holding.set()
            if first_held or me.hang.is_set():  # sent, not answered: it cannot be marked
                me.release.wait(DEADLINE_SECONDS)
            try:
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")
                with me.lock:
                    me.answered += 1
            except OSError:
                pass  # the sender was killed or gave up while we held its request

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    me = Receiver(server)
    state["receiver"] = me
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield me
    finally:
        me.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=60)


def _project(git_repo: Repo, receiver: Receiver, timeout: float = 10) -> Repo:
    repo = write_project(git_repo, REVIEW)
    sink = (
        f'\n[[notify]]\nname = "team"\nwebhook_env = "{HOOK_ENV}"\non = ["*"]\n'
        f"timeout_seconds = {timeout}\n"
    )
    with (repo.root / "phase-golem.toml").open("a", encoding="utf-8") as handle:
        handle.write(sink)
    commit_all(repo, "a webhook sink")
    repo.env[HOOK_ENV] = receiver.url
    return repo


def _start_run(repo: Repo) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHASE_GOLEM")}
    env.update(repo.env)
    return subprocess.Popen(
        [str(EXE), "run", "--plain"],
        cwd=repo.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )


def _notifications(repo: Repo) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = repo.ok("notifications", "--json").json()
    return [r for r in rows if r["sink"] == "team"]


def test_a_halted_run_delivers_what_its_halt_caused_before_it_exits(
    git_repo: Repo, receiver: Receiver
) -> None:
    repo = _project(git_repo, receiver)
    add_items(repo, "Needs a human")
    result = repo.pg("run", "--plain")
    assert result.code == 1, result.err  # nothing completed, one item blocked
    # `scheduler.halted` is written when the scheduler has stopped: it can only have been
    # delivered by the grace of delivery between the halt and the exit.
    assert "scheduler.halted" in receiver.kinds() and "item.blocked" in receiver.kinds()
    rows = _notifications(repo)
    assert {r["status"] for r in rows} == {"sent"}
    assert sorted(receiver.keys()) == sorted(f"phase-golem-notification-{r['id']}" for r in rows)
    assert receiver.url not in result.out + result.err


def _due_again(repo: Repo, key: str) -> bool:
    """The row sent to the held request may be sent again now (its lease or backoff ran out)."""
    row_id = int(key.rsplit("-", 1)[1])
    [row] = state_rows(repo.root, "SELECT * FROM notifications WHERE id = ?", row_id)
    due = row["next_attempt_at"]
    return row["status"] == "pending" and (
        due is None or datetime.fromisoformat(due) <= datetime.now(UTC)
    )


@pytest.mark.serial
def test_a_sigkill_between_sending_and_marking_sends_it_again_with_the_same_key(
    git_repo: Repo, receiver: Receiver
) -> None:
    repo = _project(git_repo, receiver, timeout=5)
    add_items(repo, "Needs a human")
    receiver.hold.set()
    process = _start_run(repo)
    try:
        wait_until(receiver.holding.is_set, "the receiver holds a notification", process=process)
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate(timeout=DEADLINE_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    receiver.release.set()
    held = receiver.keys()[0]
    wait_until(lambda: _due_again(repo, held), f"{held} is due again")
    sent = repo.pg("notifications", "send")
    assert sent.code == 0, sent.out + sent.err
    # At least once: the held one arrived again, under the same key, and nothing is lost.
    assert receiver.keys().count(held) == 2
    rows = _notifications(repo)
    assert {r["status"] for r in rows} == {"sent"}
    assert {f"phase-golem-notification-{r['id']}" for r in rows} == set(receiver.keys())


@pytest.mark.serial
def test_a_webhook_that_hangs_never_slows_the_scheduler_nor_holds_its_exit(
    git_repo: Repo, receiver: Receiver
) -> None:
    repo = write_project(git_repo)
    with (repo.root / "phase-golem.toml").open("a", encoding="utf-8") as config:
        config.write('\n[[notify]]\nname = "team"\nwebhook_env = "' + HOOK_ENV + '"\n')
        config.write("timeout_seconds = 120\n")  # it hangs longer than the run takes
    commit_all(repo, "a webhook that will hang")
    repo.env[HOOK_ENV] = receiver.url
    add_items(repo, "First", "Second")
    receiver.hang.set()
    process = _start_run(repo)
    try:
        # Both items go through every phase while not one notification was answered.
        _, err = process.communicate(timeout=DEADLINE_SECONDS)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert receiver.answered == 0 and receiver.kinds()  # it was sent to, and hung
    assert {i["status"] for i in items_by_id(repo).values()} == {"done"}
    # The hang held neither the scheduler nor the exit (five seconds of grace, then out,
    # well before one send's timeout). Nothing is lost: every row is still pending (the
    # ones in flight keep their lease and go again on their own, see the SIGKILL test);
    # sent now, each carries the key it had.
    receiver.hang.clear()
    receiver.release.set()
    kept = _notifications(repo)
    assert kept and {r["status"] for r in kept} == {"pending"}
    for row in kept:
        repo.ok("notifications", "retry", str(row["id"]))
    hung = receiver.keys()
    assert repo.pg("notifications", "send").code == 0
    final = _notifications(repo)
    assert {r["status"] for r in final} == {"sent"}
    assert set(receiver.keys()) == {f"phase-golem-notification-{r['id']}" for r in final}
    assert all(receiver.keys().count(key) == 2 for key in hung)  # sent again, same key
