"""What every request passes before any page or action sees it (DESIGN §13, security).

- The Host header must name the address we are bound to: a DNS-rebinding page on
  another origin that resolves its name to 127.0.0.1 is refused before anything is read.
- A request that may change state (not GET/HEAD) from another origin (its `Origin` or,
  failing that, `Referer` names another host) is refused, whatever cookies it carries.
- Every response carries the security headers: a CSP without inline script (and no
  framing), no sniffing, no referrer, no caching of pages that show the project.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD"})
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    # Not no-referrer: with it Chromium sends `Origin: null` on our own forms.
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, port: int, extra: Iterable[str] = ()) -> frozenset[str]:
    """The Host header values that name us: the bound address (`localhost` too for loopback)
    and the names `--allow-host` gave (a wildcard bind has no name of its own)."""
    names = {host, f"[{host}]"} if ":" in host and not host.startswith("[") else {host}
    names |= {name.lower() for name in extra}
    if is_loopback(host):
        names |= {"localhost", "127.0.0.1", "[::1]"}
    with_port = {f"{name}:{port}" for name in names}
    return frozenset(with_port | (names if port == 80 else set()))


def _same_origin(headers: Headers, hosts: Iterable[str]) -> bool:
    origin = headers.get("origin") or headers.get("referer")
    if origin is None:
        return True  # not a browser's cross-site request (browsers send Origin on POST)
    if origin == "null":
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() in hosts


class Guard:
    """ASGI middleware: Host check, cross-origin refusal, security headers."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str]) -> None:
        self.app = app
        self.hosts = frozenset(h.lower() for h in hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal: PlainTextResponse | None = None
        if headers.get("host", "").lower() not in self.hosts:
            refusal = PlainTextResponse("refused: the Host header does not name this server", 421)
        elif scope["method"] not in SAFE_METHODS and not _same_origin(headers, self.hosts):
            refusal = PlainTextResponse("refused: a request from another origin", 403)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *SECURITY_HEADERS]
            await send(message)

        if refusal is not None:
            await refusal(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)
