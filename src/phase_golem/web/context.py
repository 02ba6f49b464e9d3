"""What every handler shares: the project, its store, the token, the templates."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from phase_golem.domain.redaction import redact_text
from phase_golem.domain.text import printable
from phase_golem.engine.control import PauseState, pause_state
from phase_golem.project import Project
from phase_golem.store import Store
from phase_golem.web_token import csrf_token, same_secret

COOKIE = "phase_golem_session"
FLASH = "phase_golem_flash"  # the outcome line of the last action, shown once


def _shown(value: Any) -> Any:
    """Every value a template prints: secrets redacted, control characters shown escaped
    (jinja2's autoescaping then makes it inert HTML)."""
    if value is None:
        return ""
    if hasattr(value, "__html__"):
        return value  # markup built by our own templates (macros), already made safe
    if isinstance(value, str):
        return printable(redact_text(value))
    if isinstance(value, jinja2.runtime.Undefined | bool | int | float):
        return value
    return printable(redact_text(str(value)))


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("phase_golem.web", "templates"),
        autoescape=True,
        finalize=_shown,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["money"] = lambda value: f"${float(value or 0):.4f}"
    return env


class LoginTicket:
    """The one-time login URL's secret: good for one use, then gone."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: str | None = secrets.token_urlsafe(24)

    @property
    def value(self) -> str | None:
        return self._value

    def redeem(self, given: str | None) -> bool:
        with self._lock:
            if self._value is None or not same_secret(given, self._value):
                return False
            self._value = None
            return True


@dataclass
class Web:
    project: Project
    store: Store
    token: str
    templates: jinja2.Environment = field(default_factory=make_templates)
    ticket: LoginTicket = field(default_factory=LoginTicket)

    @property
    def csrf(self) -> str:
        return csrf_token(self.token)

    @property
    def metrics_public(self) -> bool:
        return self.project.config.settings.serve.metrics_public

    def signed_in(self, request: Request) -> bool:
        bearer = request.headers.get("authorization", "")
        if bearer.startswith("Bearer "):
            return same_secret(bearer.removeprefix("Bearer ").strip(), self.token)
        return same_secret(request.cookies.get(COOKIE), self.token)

    def _scheduler(self, request: Request) -> SchedulerControl:
        with self.store.reader() as tx:
            return SchedulerControl(pause_state(tx), request.url.path)

    def page(
        self, template: str, status_code: int = 200, request: Request | None = None, **values: Any
    ) -> HTMLResponse:
        flash = request.cookies.get(FLASH) if request is not None else None
        if request is not None and "scheduler" not in values:
            values["scheduler"] = self._scheduler(request)
        html = self.templates.get_template(template).render(
            csrf=self.csrf, flash=unquote(flash) if flash else None, **values
        )
        response = HTMLResponse(html, status_code=status_code)
        if flash:
            response.delete_cookie(FLASH, httponly=True, samesite="strict")
        return response


@dataclass(frozen=True)
class SchedulerControl:
    """The header's pause/resume control: the flag as the store has it now."""

    paused: PauseState | None
    next: str


def web_of(request: Request) -> Web:
    web = request.app.state.web
    assert isinstance(web, Web)
    return web
