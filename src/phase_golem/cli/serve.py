"""`phase-golem serve`: the web dashboard (needs the `[web]` extra)."""

from __future__ import annotations

import contextlib
import socket
import sys

import click

from phase_golem.cli.context import state_of
from phase_golem.domain.errors import DomainError
from phase_golem.project import ProjectError


def _listen(host: str, port: int) -> socket.socket:
    """Bound (and listening) before the app is made: with --port 0 the URL names the port
    the kernel chose."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        # Listening before the URL is printed: a client that connects as soon as it reads
        # the URL waits in the backlog while the server starts, instead of being refused.
        sock.listen(socket.SOMAXCONN)
    except OSError as exc:
        sock.close()
        raise ProjectError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="Port."
)
@click.option(
    "--allow-host",
    "allow_host",
    multiple=True,
    metavar="NAME",
    help="Another name browsers reach this server by (the Host header); repeatable.",
)
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, allow_host: tuple[str, ...]) -> None:
    """The web dashboard: board, decisions, runs and live updates, on 127.0.0.1 by default.

    Prints a one-time login URL; another browser signs in with the token in
    .phase-golem/web-token. Every change needs the token and the form's CSRF token.
    """
    try:
        import uvicorn

        from phase_golem.web.app import create_app
        from phase_golem.web.guard import is_loopback
    except ImportError as exc:
        raise ProjectError(
            f"serve needs the web extra (pip install 'phase-golem[web]'): {exc.name} is missing"
        ) from None
    if not host.strip():
        raise DomainError("--host cannot be empty")
    project = state_of(ctx).project()
    if not project.state_dir.is_dir():
        raise ProjectError(f"{project.root} has no .phase-golem/; run `phase-golem init` first")
    if not is_loopback(host):
        sys.stderr.write(
            f"phase-golem: warning: serving on {host}, not loopback: anyone who can reach it "
            "and holds the token can change the project (--allow-host names it for browsers)\n"
        )
    sock = _listen(host, port)
    bound = sock.getsockname()[1]
    app, web = create_app(project, host, bound, allow_host)
    shown = f"[{host}]" if ":" in host else host
    sys.stdout.write(f"Dashboard: http://{shown}:{bound}/\n")
    sys.stdout.write(f"Sign in once with: http://{shown}:{bound}/login?once={web.ticket.value}\n")
    sys.stdout.flush()
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    # uvicorn re-raises the Ctrl-C it has already handled by shutting down cleanly.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run(sockets=[sock])
