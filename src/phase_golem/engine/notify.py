"""Delivering the outbox (DESIGN §12), beside the scheduler and never inside its decisions.

Delivery is at least once: a row is leased (its next attempt pushed past the send's
timeout) in one short transaction, sent with no transaction open, then marked in another.
A crash between sending and marking leaves the lease to expire and the row is sent again,
with the same `Idempotency-Key`, so a receiver can drop the repeat. Nothing here holds the
store's lock while it waits for a sink.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from phase_golem.clock import utc_now
from phase_golem.domain.items import format_timestamp
from phase_golem.domain.notifications import (
    ROUTE_LATER,
    Notification,
    NotificationStatus,
    NotifySink,
    after_failure,
    after_success,
    for_retry,
    message_of,
    text_of,
    wanted_by,
)
from phase_golem.domain.redaction import redact_text, register_secret_values
from phase_golem.faults import MachineFault
from phase_golem.store import Store, StoreError

LEASE_MARGIN_SECONDS = 5.0
HALT_GRACE_SECONDS = 5.0  # how long `run` keeps delivering after it halted
BATCH = 50
ERROR_CHARS = 300


class SinkFailure(Exception):
    """A delivery that did not succeed; the message is safe to store (redacted)."""


@dataclass
class DeliveryReport:
    routed: int = 0
    sent: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        return len(self.sent) + len(self.retrying) + len(self.failed)


def webhook_url(sink: NotifySink, env: Mapping[str, str]) -> str:
    if sink.webhook is not None:
        url = sink.webhook
    else:
        url = env.get(sink.webhook_env or "", "")
        if not url:
            raise SinkFailure(f"environment variable {sink.webhook_env} is not set")
    register_secret_values([url])  # whatever prints it from now on prints [REDACTED]
    return url


def _clean(error: str, *secrets: str) -> str:
    for secret in secrets:
        if secret:
            error = error.replace(secret, "[REDACTED]")
    return redact_text(error)[:ERROR_CHARS]


def send_webhook(
    sink: NotifySink,
    notification: Notification,
    env: Mapping[str, str],
    public_url: str | None = None,
) -> None:
    url = webhook_url(sink, env)
    try:
        import httpx
    except ImportError:
        raise SinkFailure("a webhook sink needs httpx: pip install 'phase-golem[notify]'") from None
    body = message_of(notification, public_url)
    headers = {"Idempotency-Key": notification.idempotency_key, "User-Agent": "phase-golem"}
    try:
        response = httpx.post(
            url, json=body, headers=headers, timeout=sink.timeout_seconds, follow_redirects=False
        )
    except httpx.TimeoutException:
        raise SinkFailure(f"no answer within {sink.timeout_seconds:g} s") from None
    except httpx.HTTPError as exc:
        raise SinkFailure(_clean(f"{type(exc).__name__}: {exc}", url)) from None
    if not 200 <= response.status_code < 300:
        raise SinkFailure(f"HTTP {response.status_code}")


def send_command(
    sink: NotifySink,
    notification: Notification,
    env: Mapping[str, str],
    cwd: Path,
    public_url: str | None = None,
) -> None:
    body = json.dumps(message_of(notification, public_url), sort_keys=True).encode()
    child_env = {
        **env,
        "PHASE_GOLEM_NOTIFICATION_TEXT": text_of(notification),
        "PHASE_GOLEM_NOTIFICATION_KIND": notification.kind,
        "PHASE_GOLEM_NOTIFICATION_ID": str(notification.id),
        "PHASE_GOLEM_IDEMPOTENCY_KEY": notification.idempotency_key,
    }
    assert sink.command is not None
    process = subprocess.Popen(
        ["/bin/sh", "-c", sink.command],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=child_env,
        start_new_session=True,  # a timeout ends the whole group, not only the shell
    )
    try:
        _, err = process.communicate(body, timeout=sink.timeout_seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise SinkFailure(f"the command did not finish within {sink.timeout_seconds:g} s") from None
    if process.returncode != 0:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:]
        said = f": {tail[0]}" if tail else " (nothing on stderr)"
        raise SinkFailure(_clean(f"the command exited {process.returncode}{said}"))


Sender = Callable[[NotifySink, Notification], None]


class Deliverer:
    """Routes new outbox rows to the configured sinks and sends what is due."""

    def __init__(
        self,
        store: Store,
        sinks: Sequence[NotifySink],
        root: Path,
        *,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], datetime] = utc_now,
        public_url: str | None = None,
    ) -> None:
        self.store = store
        self.public_url = public_url  # `[serve] public_url`: payloads link to the item there
        self.sinks = {sink.name: sink for sink in sinks}
        self.root = root
        self.env = dict(os.environ if env is None else env)
        self.clock = clock

    def route(self) -> int:
        """Fan every new row out to the sinks whose `on` wants it (one transaction)."""
        with self.store.transaction() as tx:
            fresh = [
                n
                for n in tx.list_notifications(statuses=[NotificationStatus.PENDING])
                if n.sink == ROUTE_LATER
            ]
            for row in fresh:
                for sink in self.sinks.values():
                    if wanted_by(sink.on, row.kind):
                        tx.add_notification(row.replace(id=0, sink=sink.name))
                tx.save_notification(row.replace(status=NotificationStatus.ROUTED))
            return len(fresh)

    def _lease(self, limit: int) -> list[Notification]:
        """Take the due rows, pushing each next attempt past the send (a crash resends)."""
        now = self.clock()
        with self.store.transaction(now=now) as tx:
            due = [
                n
                for n in tx.list_notifications(
                    statuses=[NotificationStatus.PENDING],
                    due_by=format_timestamp(now),
                    limit=limit,
                )
                if n.sink != ROUTE_LATER
            ]
            leased = []
            for row in due:
                sink = self.sinks.get(row.sink)
                timeout = sink.timeout_seconds if sink else 0.0
                until = now + timedelta(seconds=timeout + LEASE_MARGIN_SECONDS)
                leased.append(row.replace(next_attempt_at=format_timestamp(until)))
                tx.save_notification(leased[-1])
            return leased

    def _send(self, sink: NotifySink, notification: Notification) -> None:
        if sink.is_webhook:
            send_webhook(sink, notification, self.env, self.public_url)
        else:
            send_command(sink, notification, self.env, self.root, self.public_url)

    def _attempt(self, row: Notification) -> Notification:
        sink = self.sinks.get(row.sink)
        now = self.clock
        if sink is None:
            error = f"sink {row.sink!r} is no longer configured"
            return after_failure(row, error, now(), max_attempts=1)
        try:
            self._send(sink, row)
        except SinkFailure as exc:
            return after_failure(row, str(exc), now(), max_attempts=sink.max_attempts)
        except OSError as exc:
            error = _clean(f"{type(exc).__name__}: {exc}")
            return after_failure(row, error, now(), max_attempts=sink.max_attempts)
        return after_success(row, now())

    def _mark(self, row: Notification) -> None:
        with self.store.transaction() as tx:
            current = tx.get_notification(row.id)
            if current is not None and current.status is NotificationStatus.PENDING:
                tx.save_notification(row)

    def deliver_due(self, limit: int = BATCH) -> DeliveryReport:
        report = DeliveryReport(routed=self.route())
        for leased in self._lease(limit):
            outcome = self._attempt(leased)
            self._mark(outcome)
            if outcome.status is NotificationStatus.SENT:
                report.sent.append(outcome.id)
            elif outcome.status is NotificationStatus.FAILED:
                report.failed.append(outcome.id)
            else:
                report.retrying.append(outcome.id)
        return report

    def pending_due(self) -> bool:
        with self.store.reader() as tx:
            rows = tx.list_notifications(
                statuses=[NotificationStatus.PENDING],
                due_by=format_timestamp(self.clock()),
                limit=1,
            )
        return bool(rows)


def retried_line(row: Notification) -> str:
    return f"Notification {row.id} ({row.kind} → {row.sink}) is due again"


def retry_notification(store: Store, notification_id: int) -> Notification:
    """`notifications retry ID`: due now with a fresh count, whatever it was."""
    from phase_golem.domain.errors import DomainError

    with store.transaction() as tx:
        row = tx.get_notification(notification_id)
        if row is None:
            raise DomainError(f"no notification {notification_id}")
        if row.status is NotificationStatus.ROUTED:
            raise DomainError(
                f"notification {notification_id} was routed to its sinks; retry one of theirs"
            )
        again = for_retry(row)
        tx.save_notification(again)
        return again


class BackgroundDelivery:
    """Delivery in its own thread while `run` works: a slow sink never delays a decision."""

    def __init__(self, deliverer: Deliverer, interval: float = 1.0) -> None:
        self.deliverer = deliverer
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="notify", daemon=True)
        self.errors: list[str] = []
        self._busy = threading.Event()  # set while a round of sends is in flight

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._busy.set()
            try:
                self.deliverer.deliver_due()
            except Exception as exc:  # a store hiccup must not end delivery for good
                self.errors.append(_clean(repr(exc)))
            finally:
                self._busy.clear()
            self._stop.wait(self.interval)

    def finish(self, grace_seconds: float = HALT_GRACE_SECONDS) -> DeliveryReport:
        """After the scheduler halted: deliver what is due for up to `grace_seconds` more
        (its own `scheduler.halted` included); what is left goes out with the next `run`
        or `phase-golem notifications send`.

        The grace is a bound, not a hope: the last rounds run in a thread of their own and
        are left behind when it ends, so a sink that hangs cannot hold the exit. A row they
        were sending keeps its lease and goes again later, with the same key.
        """
        end = time.monotonic() + grace_seconds
        self._stop.set()
        self._thread.join(timeout=grace_seconds)  # let a round in flight end
        total = DeliveryReport()
        last = threading.Thread(
            target=_deliver_in_grace,
            args=(self.deliverer, max(end - time.monotonic(), 0.0), total),
            name="notify-grace",
            daemon=True,
        )
        last.start()
        last.join(timeout=max(end - time.monotonic(), 0.0))
        return total


def _deliver_in_grace(deliverer: Deliverer, budget_seconds: float, total: DeliveryReport) -> None:
    # The last deliveries of a halting run: a store that failed under it (removed WAL, full
    # disk) was already reported in one line by the run, and what is pending waits in the
    # outbox for the next run, so a fault here ends the grace instead of printing a traceback.
    try:
        deliver_while_due(deliverer, budget_seconds, total)
    except (StoreError, MachineFault):
        return


def deliver_while_due(
    deliverer: Deliverer, budget_seconds: float, total: DeliveryReport | None = None
) -> DeliveryReport:
    """Rounds of delivery until nothing is due now, or the time budget is spent; one row a
    round, so a slow sink overruns the budget by one send at most. `total` is filled as
    rows are sent (a caller that stops waiting still sees what went out)."""
    total = DeliveryReport() if total is None else total
    end = time.monotonic() + budget_seconds
    while True:
        report = deliverer.deliver_due(limit=1)
        total.routed += report.routed
        total.sent += report.sent
        total.retrying += report.retrying
        total.failed += report.failed
        if time.monotonic() >= end or not deliverer.pending_due():
            return total
        if not report.attempted and not report.routed:
            return total  # what is due is leased by another deliverer
