"""Delivery of the outbox to real sinks (DESIGN §12): a real HTTP server on 127.0.0.1 that
answers 500, drops the connection, hangs and then accepts; a real shell command sink.

The clock of the deliverer is ours, so a backoff of minutes passes in an instant; every
send is real (httpx to the socket, /bin/sh for the command) and every row a real SQLite row.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from phase_golem.domain.events import EventKind
from phase_golem.domain.items import format_timestamp, new_item
from phase_golem.domain.notifications import Notification, NotificationStatus, NotifySink
from phase_golem.engine.notify import Deliverer, retry_notification
from phase_golem.store.sqlite import SqliteStore
from tests.waiting import DEADLINE_SECONDS

pytest.importorskip("httpx", reason="webhook sinks need the [notify] extra")

SECRET_PATH = "/hook/T0-secret-path-of-the-webhook"


@dataclass
class Script:
    """What the receiver does with each request, in order; then it answers 200."""

    steps: list[str]
    keys: list[str] = field(default_factory=list)
    bodies: list[dict[str, object]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def receiver() -> Iterator[tuple[str, Script]]:
    script = Script([])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with script.lock:
                script.keys.append(self.headers.get("Idempotency-Key", ""))
                script.bodies.append(body)
                step = script.steps.pop(0) if script.steps else "ok"
            if step == "drop":  # close the socket without a word
                self.close_connection = True
                self.connection.close()
                return
            if step == "hang":
                script.release.wait(DEADLINE_SECONDS)
                return
            self.send_response(500 if step == "500" else 200)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"http://{host!s}:{port}{SECRET_PATH}", script
    finally:
        script.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=60)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "state.db")
    with opened.transaction() as tx:
        tx.create_item(new_item("WRK-001", "Ship it", tx.now))
        tx.append_event(EventKind.APPROVAL_REQUESTED, item_id="WRK-001", data={"phase": "ship"})
    yield opened
    opened.close()


def _rows(store: SqliteStore, sink: str) -> list[Notification]:
    with store.reader() as tx:
        return [n for n in tx.list_notifications() if n.sink == sink]


def test_a_webhook_that_fails_drops_and_hangs_is_retried_with_backoff_until_it_accepts(
    store: SqliteStore, receiver: tuple[str, Script], tmp_path: Path
) -> None:
    url, script = receiver
    script.steps = ["500", "drop", "hang"]
    sink = NotifySink(name="team", webhook_env="HOOK", timeout_seconds=0.5)
    clock = Clock()
    deliverer = Deliverer(
        store, [sink], tmp_path, env={"HOOK": url}, clock=clock, public_url="https://golem.lan"
    )
    errors = []
    for backoff in (10, 20, 40):  # 10 s x 2^n after the n-th failure (DESIGN §12)
        report = deliverer.deliver_due()
        assert report.retrying and not report.sent
        [row] = _rows(store, "team")
        errors.append(row.last_error or "")
        assert row.next_attempt_at == format_timestamp(clock.now + timedelta(seconds=backoff))
        clock.advance(backoff - 1)
        assert deliverer.deliver_due().attempted == 0  # not due yet: the backoff holds
        clock.advance(1)
    assert errors[0] == "HTTP 500"
    assert errors[2] == "no answer within 0.5 s"
    assert all(SECRET_PATH not in e and "secret" not in e for e in errors)
    report = deliverer.deliver_due()
    [row] = _rows(store, "team")
    assert report.sent == [row.id] and row.status is NotificationStatus.SENT
    assert row.attempts == 4 and row.last_error is None
    # Every attempt carried the same key; the body says what happened and links to it.
    assert script.keys == [row.idempotency_key] * 4
    body = script.bodies[-1]
    assert body["kind"] == "approval.requested" and body["item_id"] == "WRK-001"
    assert body["url"] == "https://golem.lan/items/WRK-001"
    assert "approval.requested: WRK-001" in str(body["text"])


def test_a_sink_that_never_accepts_ends_failed_and_a_retry_sends_it_again(
    store: SqliteStore, receiver: tuple[str, Script], tmp_path: Path
) -> None:
    url, script = receiver
    script.steps = ["500", "500"]
    sink = NotifySink(name="team", webhook=url, max_attempts=2)
    clock = Clock()
    deliverer = Deliverer(store, [sink], tmp_path, env={}, clock=clock)
    deliverer.deliver_due()
    clock.advance(10.0)
    assert deliverer.deliver_due().failed
    [row] = _rows(store, "team")
    assert (row.status, row.attempts, row.next_attempt_at) == (NotificationStatus.FAILED, 2, None)
    clock.advance(3600.0)
    assert deliverer.deliver_due().attempted == 0  # failed stays failed
    retry_notification(store, row.id)
    assert deliverer.deliver_due().sent == [row.id]
    assert script.keys == [row.idempotency_key] * 3


def test_a_command_sink_gets_json_on_stdin_and_the_text_in_its_environment(
    store: SqliteStore, tmp_path: Path
) -> None:
    command = 'cat > got.json; printf "%s" "$PHASE_GOLEM_NOTIFICATION_TEXT" > text.txt'
    sinks = [
        NotifySink(name="desk", command=command, on=("approval.requested",)),
        NotifySink(name="quiet", command="exit 9", on=("item.done",)),
    ]
    report = Deliverer(store, sinks, tmp_path, env={"PATH": "/usr/bin:/bin"}).deliver_due()
    [row] = _rows(store, "desk")
    assert report.sent == [row.id] and _rows(store, "quiet") == []  # `on` filtered it out
    got = json.loads((tmp_path / "got.json").read_text())
    assert (got["kind"], got["idempotency_key"]) == ("approval.requested", row.idempotency_key)
    assert (tmp_path / "text.txt").read_text() == got["text"]
    assert "[phase-golem] approval.requested: WRK-001 (ship)" in got["text"]
