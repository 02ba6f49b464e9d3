"""Secret redaction for everything we store, print, commit or send: the one place.

Two ways a secret is recognised:

- **by value**: the engine and the CLI collect, once at start, the values of environment
  variables that hold secrets (phase_golem/secrets.py) and register them here; every
  occurrence of such a value is replaced, whatever its shape;
- **by shape**: known token formats (`sk-ant-…`, `ghp_…`, `npm_…`, AWS key ids, Slack
  and Discord webhooks, JWTs, PEM private keys), `name=value` assignments whose name says
  secret, `Bearer …`, and the password of a URL (`scheme://user:PASSWORD@host`).

Every pattern runs in time linear in the text: quantifiers are bounded or possessive, and a
pattern that scans a run of characters may only start where such a run starts, so no
position is scanned again and again (bench/redaction.py measures it up to 10 MB). The
registry is the only state; it holds values, never reads the environment itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[REDACTED]"
# Shorter values would redact ordinary words; they are not registered.
MIN_SECRET_LENGTH = 6


class _Registry:
    """The secret values registered so far, longest first (one per process)."""

    values: tuple[str, ...] = ()


_REGISTRY = _Registry()

_SECRET_KEY_NAME = re.compile(
    r"(?i)(api[_-]?key|secret|token|password|passwd|credential|authorization|private[_-]?key)"
)
_TOKEN_CHARS = "A-Za-z0-9_-"
# Each shape starts only where a run of token characters starts (the lookbehind), so a long
# run is scanned from one place, not from each of its characters.
_START = rf"(?<![{_TOKEN_CHARS}])"
# (a lowercase literal every match contains, the pattern): the literal is looked for first,
# so text without any of them — nearly all text — costs a few substring searches.
_SECRET_VALUE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("sk-", re.compile(_START + r"sk-(?:ant-|proj-)?[A-Za-z0-9_-]{16,}+")),  # Anthropic, OpenAI
    ("_", re.compile(_START + r"gh[pousr]_[A-Za-z0-9]{20,}+")),  # GitHub tokens
    ("github_pat_", re.compile(_START + r"github_pat_[A-Za-z0-9_]{20,}+")),
    ("glpat-", re.compile(_START + r"glpat-[A-Za-z0-9_-]{20,}+")),  # GitLab
    ("npm_", re.compile(_START + r"npm_[A-Za-z0-9]{36}+")),  # npm
    ("ia", re.compile(_START + r"(?:AKIA|ASIA)[0-9A-Z]{16}+(?![0-9A-Z])")),  # AWS key ids
    ("xox", re.compile(_START + r"xox[abposr]-[A-Za-z0-9-]{10,}+")),  # Slack tokens
    ("k_", re.compile(_START + r"[rs]k_(?:live|test)_[A-Za-z0-9]{16,}+")),  # Stripe
    ("aiza", re.compile(_START + r"AIza[0-9A-Za-z_-]{35}+")),  # Google API keys
    ("hf_", re.compile(_START + r"hf_[A-Za-z0-9]{30,}+")),  # Hugging Face
    (
        "eyj",
        re.compile(_START + r"eyJ[A-Za-z0-9_-]{8,}+\.eyJ[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]{8,}+"),
    ),  # JWT
    (
        "hooks.slack.com",
        re.compile(
            r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]{8,}+"
        ),
    ),
    (
        "/api/webhooks/",
        re.compile(
            r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/[0-9]{5,}+/[A-Za-z0-9_-]{8,}+"
        ),
    ),
    ("bearer", re.compile(r"(?i)(?<![A-Za-z0-9_])bearer[ \t]{1,8}+[A-Za-z0-9._~+/-]{16,}+=*+")),
    ("basic", re.compile(r"(?i)(?<![A-Za-z0-9_])basic[ \t]{1,8}+[A-Za-z0-9+/]{12,}+=*+")),
)
_ASSIGNMENT_WORDS = ("key", "secret", "token", "passw", "credential")
# `password=hunter2`, `"api_key": "abc"`, `AWS_SECRET_ACCESS_KEY=…` inside free text: the
# match starts at the word that says secret, so the name before it costs nothing.
_ASSIGNMENT = re.compile(
    r"(?i)(?:api[_-]?key|secret|token|password|passwd|credential)"
    r"[A-Za-z0-9_]{0,40}+[\"']?+[ \t]{0,8}+[=:][ \t]{0,8}+[\"']?+"
    r"(?P<value>[^\s\"',;]{4,}+)"
)
# URL credentials, scheme://user:password@host: found from its `://`, user and password
# bounded, and neither may contain the `/` that every further `://` starts with.
_URL_CREDENTIALS = re.compile(r"://[^/\s:@]{1,256}+:(?P<value>[^@\s/]{1,256}+)@")
_PEM_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----")
# A private key with no END line (a truncated paste) is redacted this far at most.
_PEM_UNTERMINATED_LIMIT = 16_384


def register_secret_values(values: Iterable[str]) -> None:
    """Add values to replace wherever they appear (longest first, so none leaves a part).

    A value is also registered as JSON writes it inside a string, because transcripts and
    stored results are JSON text.
    """
    found = set(_REGISTRY.values)
    for value in values:
        if not isinstance(value, str):
            continue
        for form in (value, value.strip(), json.dumps(value, ensure_ascii=False)[1:-1]):
            if len(form) >= MIN_SECRET_LENGTH and REDACTED not in form:
                found.add(form)
    _REGISTRY.values = tuple(sorted(found, key=lambda v: (-len(v), v)))


def registered_secret_count() -> int:
    return len(_REGISTRY.values)


def forget_secret_values() -> None:
    """Empty the registry (tests; a library user switching projects)."""
    _REGISTRY.values = ()


def _redact_values(text: str) -> str:
    for value in _REGISTRY.values:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def _redact_group(pattern: re.Pattern[str], text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        start, end = match.span("value")
        whole_start = match.start()
        raw = match.group(0)
        return raw[: start - whole_start] + REDACTED + raw[end - whole_start :]

    return pattern.sub(replace, text)


def _redact_private_keys(text: str) -> str:
    if "PRIVATE KEY-----" not in text:
        return text
    out: list[str] = []
    position = 0
    while True:
        begin = _PEM_BEGIN.search(text, position)
        if begin is None:
            break
        end = _PEM_END.search(text, begin.end())
        out.append(text[position : begin.start()])
        out.append(REDACTED)
        if end is None:
            # No END anywhere after: no later BEGIN has one either, so this is the last.
            cut = min(len(text), begin.end() + _PEM_UNTERMINATED_LIMIT)
            newline = text.find("\n\n", begin.end(), cut)
            position = newline if newline != -1 else cut
            break
        position = end.end()
    out.append(text[position:])
    return "".join(out)


def redact_text(text: str) -> str:
    """`text` with every secret we know of replaced by `[REDACTED]`."""
    if not text:
        return text
    text = _redact_values(text)
    lowered = text.lower()
    for trigger, pattern in _SECRET_VALUE_PATTERNS:
        if trigger in lowered:
            text = pattern.sub(REDACTED, text)
    if any(word in lowered for word in _ASSIGNMENT_WORDS):
        text = _redact_group(_ASSIGNMENT, text)
    if "://" in text:
        text = _redact_group(_URL_CREDENTIALS, text)
    return _redact_private_keys(text)


def redact_optional(text: str | None) -> str | None:
    return None if text is None else redact_text(text)


def redact(value: Any) -> Any:
    """Redact secrets in a JSON-like value; keys that name a secret lose their value."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, inner in value.items():
            if (
                isinstance(key, str)
                and _SECRET_KEY_NAME.search(key)
                and isinstance(inner, str)
                and inner
            ):
                out[key] = REDACTED
            else:
                out[key] = redact(inner)
        return out
    if isinstance(value, (list, tuple)):
        return [redact(inner) for inner in value]
    return value
