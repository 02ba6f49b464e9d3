"""The dashboard's actions (POST only): each calls the engine function of the CLI command
of the same name, in that function's one transaction, so an action either happens whole
or not at all; a refused action shows the CLI's one-line message and changes nothing.

Every action needs the session (cookie or bearer token) and the form's CSRF token;
`Guard` has already refused other origins and foreign Host headers.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from phase_golem.domain.endings import Decision
from phase_golem.domain.errors import DomainError
from phase_golem.domain.redaction import redact_text
from phase_golem.domain.text import one_line
from phase_golem.engine import backlog, control
from phase_golem.engine.agent_pauses import resume_agent
from phase_golem.engine.approvals import approve_item, reject_item
from phase_golem.engine.resolution import resolve_run
from phase_golem.errors import known_error_code
from phase_golem.web.context import FLASH, Web, web_of
from phase_golem.web.pages import refuse
from phase_golem.web_token import same_secret

Action = Callable[[Web, FormData], str]


def form_text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if not isinstance(value, str) or not value.strip():
        return None
    return str(value)


def _required(form: FormData, name: str) -> str:
    value = form_text(form, name)
    if value is None:
        raise DomainError(f"missing {name}")
    return value


def _approve(web: Web, form: FormData) -> str:
    settings = web.project.config.settings
    item = approve_item(web.store, settings, _required(form, "item"), form_text(form, "notes"))
    return f"{item.id} approved → {item.status.value}"


def _reject(web: Web, form: FormData) -> str:
    item = reject_item(web.store, _required(form, "item"), form_text(form, "reason") or "")
    outcome = "closed" if item.archived else f"sent back to {item.phase}"
    return f"{item.id} rejected and {outcome}"


def _unblock(web: Web, form: FormData) -> str:
    item = backlog.unblock_item(web.store, _required(form, "item"), form_text(form, "notes"))
    return f"{item.id} unblocked → {item.status.value}"


def _close(web: Web, form: FormData) -> str:
    item = backlog.close_item(web.store, _required(form, "item"), form_text(form, "reason") or "")
    return f"{item.id} closed: {item.closed_reason}"


def _resolve(web: Web, form: FormData) -> str:
    raw = _required(form, "decision")
    try:
        decision = Decision(raw)
    except ValueError:
        choices = ", ".join(d.value for d in Decision)
        raise DomainError(f"decision {raw!r} is not one of: {choices}") from None
    settings = web.project.config.settings
    return resolve_run(web.store, settings, _required(form, "run"), decision).line(decision)


def _resume_agent(web: Web, form: FormData) -> str:
    pause = resume_agent(web.store, _required(form, "agent"))
    return f"agent {pause.agent} resumed (it was paused: {pause.reason})"


def _retry(web: Web, form: FormData) -> str:
    item = control.retry_item(web.store, _required(form, "item"), form_text(form, "notes"))
    return control.retry_line(item)


def _pause(web: Web, form: FormData) -> str:
    state, changed = control.pause(web.store, form_text(form, "reason"))
    return control.pause_line(state, changed)


def _resume(web: Web, form: FormData) -> str:
    return control.resume_line(control.resume(web.store))


def _retry_notification(web: Web, form: FormData) -> str:
    from phase_golem.engine.notify import retried_line, retry_notification

    raw = _required(form, "notification")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise DomainError(f"notification {raw!r} is not a notification id")
    return retried_line(retry_notification(web.store, int(raw)))


def _run_source(web: Web, form: FormData) -> str:
    """`phase-golem sources run NAME`: runs it now, in this request (off the event loop);
    a run that failed is recorded and said, one already running is refused."""
    from phase_golem.engine.sources import run_now

    settings = web.project.config.settings
    outcome = run_now(web.project.root, web.store, settings, _required(form, "source"))
    warnings = outcome.warnings
    if not warnings:
        return outcome.line()
    more = f"; and {len(warnings) - 3} more" if len(warnings) > 3 else ""
    shown = "; ".join(warnings[:3]) + more
    return f"{outcome.line()} (warning: {shown})"


def _add(web: Web, form: FormData) -> str:
    request = backlog.NewItemRequest(
        title=form_text(form, "title") or "", description=form_text(form, "description")
    )
    item = backlog.add_item(web.store, web.project.config.settings, request)
    return f"Added {item.id} — {item.title} (pipeline: {item.effective_pipeline})"


ACTIONS: dict[str, Action] = {
    "add": _add,
    "approve": _approve,
    "reject": _reject,
    "unblock": _unblock,
    "close": _close,
    "resolve": _resolve,
    "resume-agent": _resume_agent,
    "retry": _retry,
    "pause": _pause,
    "resume": _resume,
    "retry-notification": _retry_notification,
    "run-source": _run_source,
}


def _back_to(form: FormData) -> str:
    """Where to go after the action: a path of ours, never another site."""
    target = form.get("next")
    if isinstance(target, str) and target.startswith("/") and not target.startswith("//"):
        return target.split("?", 1)[0]
    return "/"


async def act(request: Request) -> Response:
    web = web_of(request)
    if not web.signed_in(request):
        return refuse(request, "refused: sign in first (the login URL `serve` printed)", 401)
    form = await request.form()
    if not same_secret(form_text(form, "csrf"), web.csrf):
        return refuse(request, "refused: the form's CSRF token is missing or wrong", 403)
    action = ACTIONS.get(request.path_params["action"])
    if action is None:
        return refuse(request, f"no action {request.path_params['action']!r}", 404)
    try:
        line = await _off_loop(action, web, form)
    except Exception as exc:
        if known_error_code(exc) is None:
            raise
        return refuse(request, f"phase-golem: error: {one_line(redact_text(str(exc)))}", 400)
    response = RedirectResponse(_back_to(form), status_code=303)
    # The outcome line travels in a cookie, not the URL: a link cannot make a page say it.
    response.set_cookie(FLASH, quote(line), max_age=60, httponly=True, samesite="strict")
    return response


async def _off_loop(action: Action, web: Web, form: FormData) -> str:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(action, web, form)
