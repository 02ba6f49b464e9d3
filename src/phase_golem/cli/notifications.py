"""`phase-golem notifications`: the outbox, its retries and a manual send (DESIGN §12)."""

from __future__ import annotations

from typing import Annotated

import typer

from phase_golem.cli.context import state_of
from phase_golem.cli.output import print_json_array, safe
from phase_golem.domain.errors import DomainError
from phase_golem.domain.notifications import ROUTE_LATER, Notification, NotificationStatus

app = typer.Typer(
    rich_markup_mode=None,
    add_completion=False,
    pretty_exceptions_enable=False,
    invoke_without_command=True,
    help="The notifications outbox: every one is delivered at least once, with the same "
    "Idempotency-Key each time (a receiver drops repeats by it).",
)


def _statuses(values: list[str] | None) -> list[NotificationStatus] | None:
    if not values:
        return None
    valid = ", ".join(s.value for s in NotificationStatus if s is not NotificationStatus.ROUTED)
    try:
        return [NotificationStatus(v) for v in values]
    except ValueError:
        bad = next(v for v in values if v not in {s.value for s in NotificationStatus})
        raise DomainError(f"--status {bad!r} is not one of: {valid}") from None


def _line(n: Notification) -> str:
    where = " ".join(part for part in (n.item_id, n.run_id) if part)
    due = f" next {n.next_attempt_at}" if n.status is NotificationStatus.PENDING else ""
    error = f" last error: {n.last_error}" if n.last_error else ""
    return (
        f"{n.id:>6}  {n.status.value:<7} {n.sink:<12} {n.kind:<20} {where}  "
        f"attempts {n.attempts}{due}{error}"
    )


@app.callback()
def notifications(
    ctx: typer.Context,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", help="pending, sent or failed; repeat for several."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", min=1, max=100_000, help="At most this many, oldest first.")
    ] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """The notifications outbox: every one is delivered at least once, with the same
    Idempotency-Key each time (a receiver drops repeats by it)."""
    if ctx.invoked_subcommand is not None:
        return
    statuses = _statuses(status) or [
        NotificationStatus.PENDING,
        NotificationStatus.SENT,
        NotificationStatus.FAILED,
    ]
    with state_of(ctx).store().reader() as tx:
        rows = tx.list_notifications(statuses=statuses, limit=limit)
    if as_json:
        print_json_array(n.to_dict() for n in rows)
        return
    shown = [n for n in rows if n.sink != ROUTE_LATER] or rows
    if not shown:
        typer.echo("No notifications.")
    for n in shown:
        typer.echo(safe(_line(n)))


@app.command("retry")
def retry(
    ctx: typer.Context, notification_id: Annotated[int, typer.Argument(metavar="ID")]
) -> None:
    """Send one again (a failed one too): due now, its attempts counted afresh."""
    from phase_golem.engine.notify import retried_line, retry_notification

    row = retry_notification(state_of(ctx).store(), notification_id)
    typer.echo(safe(retried_line(row)))


@app.command("send")
def send(
    ctx: typer.Context,
    seconds: Annotated[
        float, typer.Option("--for", min=0.0, max=3600.0, help="Keep trying this long at most.")
    ] = 30.0,
) -> None:
    """Deliver every notification that is due now (what a `run` left pending), then exit."""
    from phase_golem.engine.notify import Deliverer, deliver_while_due

    project = state_of(ctx).project()
    settings = project.config.settings
    deliverer = Deliverer(
        project.store(), settings.notify, project.root, public_url=settings.serve.public_url
    )
    report = deliver_while_due(deliverer, seconds)
    typer.echo(
        f"Notifications: {len(report.sent)} sent, {len(report.retrying)} to retry later, "
        f"{len(report.failed)} failed"
    )
    if report.retrying or report.failed:
        raise typer.Exit(1)
