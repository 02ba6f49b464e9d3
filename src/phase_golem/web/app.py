"""The dashboard's ASGI application: routes, sign-in, and the guard around them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from phase_golem.project import Project
from phase_golem.web import actions, lists, live, metrics, pages, runfiles
from phase_golem.web.context import COOKIE, Web, web_of
from phase_golem.web.guard import Guard, allowed_hosts
from phase_golem.web_token import ensure_token, same_secret

STATIC = Path(__file__).resolve().parent / "static"
Handler = Callable[[Request], Response]


def _signed_in_only(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A page for the token's holder; the store is read off the event loop."""

    async def endpoint(request: Request) -> Response:
        web = web_of(request)
        if not web.signed_in(request):
            return web.page("login.html", 401, title="Sign in")
        return await run_in_threadpool(handler, request)

    return endpoint


def _sign_in(response: Response, web: Web) -> Response:
    response.set_cookie(COOKIE, web.token, httponly=True, samesite="strict", path="/")
    return response


async def login(request: Request) -> Response:
    """GET with the one-time ticket `serve` printed: sets the session cookie, once."""
    web = web_of(request)
    if web.ticket.redeem(request.query_params.get("once")):
        return _sign_in(RedirectResponse("/", status_code=303), web)
    if web.signed_in(request):
        return RedirectResponse("/", status_code=303)
    return web.page("login.html", 401, title="Sign in", used=True)


async def login_with_token(request: Request) -> Response:
    """POST of the token itself (from .phase-golem/web-token), for another browser."""
    web = web_of(request)
    form = await request.form()
    given = form.get("token")
    if isinstance(given, str) and same_secret(given.strip(), web.token):
        return _sign_in(RedirectResponse("/", status_code=303), web)
    return web.page("login.html", 401, title="Sign in", wrong=True)


async def logout(request: Request) -> Response:
    web = web_of(request)
    form = await request.form()
    response = RedirectResponse("/", status_code=303)
    if same_secret(actions.form_text(form, "csrf"), web.csrf):
        response.delete_cookie(COOKIE, httponly=True, samesite="strict", path="/")
    return response


def create_app(
    project: Project, host: str, port: int, extra_hosts: tuple[str, ...] = ()
) -> tuple[Guard, Web]:
    """The guarded application and its shared state (for the login URL)."""
    project.load_config()
    token, _ = ensure_token(project.state_dir)
    web = Web(project=project, store=project.store(), token=token)
    routes = [
        Route("/", _signed_in_only(pages.board)),
        Route("/needs", _signed_in_only(pages.needs)),
        Route("/items/{item_id}", _signed_in_only(pages.item)),
        Route("/runs", _signed_in_only(pages.runs)),
        Route("/runs/{run_id}/files/{name:path}", _signed_in_only(runfiles.run_file)),
        Route("/runs/{run_id}/diff", _signed_in_only(runfiles.run_diff)),
        Route("/agents", _signed_in_only(pages.agents)),
        Route("/notifications", _signed_in_only(lists.notifications)),
        Route("/sources", _signed_in_only(lists.sources)),
        Route("/events", live.events),
        Route("/metrics", metrics.metrics),
        Route("/api/v1/state", metrics.state),
        Route("/login", login, methods=["GET"]),
        Route("/login", login_with_token, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/actions/{action}", actions.act, methods=["POST"]),
        Route("/favicon.ico", lambda _request: Response(status_code=204)),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={404: pages.not_found})
    app.state.web = web
    return Guard(app, allowed_hosts(host, port, extra_hosts)), web
