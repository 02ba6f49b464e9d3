"""Which environment variables hold secrets: collected once at start, handed to redaction.

Pure code cannot read the environment, so the CLI (at start, and again once the config
names more variables) calls `register_environment_secrets`, and from then on every
`redact()` / `redact_text()` — ledger, worklog, commit messages, prompts, transcripts,
results, every command's output and error line — replaces those values.

A variable's value is a secret when its name says so (a word such as KEY, TOKEN, SECRET,
PASSWORD or WEBHOOK: `AWS_SECRET_ACCESS_KEY`, `NPM_TOKEN`, `SLACK_WEBHOOK_URL`), when the
value is a URL carrying credentials (`DATABASE_URL=postgres://user:pw@host/db`), or when
`[redaction] env` in the config lists the name (glob patterns such as `CORP_*` work).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping

from phase_golem.domain.redaction import register_secret_values

SECRET_NAME_WORDS = frozenset(
    {
        "KEY",
        "KEYS",
        "APIKEY",
        "TOKEN",
        "TOKENS",
        "SECRET",
        "SECRETS",
        "PASSWORD",
        "PASSWD",
        "PASS",
        "PASSPHRASE",
        "WEBHOOK",
        "CREDENTIAL",
        "CREDENTIALS",
        "CREDS",
        "AUTH",
        "DSN",
        "PAT",
        "PRIVATE",
        "COOKIE",
        "SIGNATURE",
    }
)
_GLUED_ENDINGS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "WEBHOOK")
_URL_WITH_CREDENTIALS = re.compile(
    r"^[A-Za-z][A-Za-z0-9+.-]{0,31}://(?P<user>[^/\s:@]{0,256}):(?P<password>[^@\s]{1,256})@"
)
# Ours: their values (run ids, the idempotency key, paths) are meant to be seen.
_OWN_PREFIX = "PHASE_GOLEM_"


def name_looks_secret(name: str) -> bool:
    upper = name.upper()
    if upper.startswith(_OWN_PREFIX):
        return False
    words = [w for w in re.split(r"[^A-Z0-9]+", upper) if w]
    return any(w in SECRET_NAME_WORDS for w in words) or upper.endswith(_GLUED_ENDINGS)


def matches_any(name: str, patterns: Iterable[str]) -> bool:
    """`NPM_TOKEN` or `AWS_*`: case-sensitive globs, as environment names are."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def secret_values(environ: Mapping[str, str], extra_names: Iterable[str] = ()) -> list[str]:
    """The values in `environ` that are secrets (see the module's rules)."""
    extra = tuple(extra_names)
    values: list[str] = []
    for name, value in environ.items():
        if not value or name.startswith(_OWN_PREFIX):
            continue
        url = _URL_WITH_CREDENTIALS.match(value)
        if name_looks_secret(name) or matches_any(name, extra) or url is not None:
            values.append(value)
        if url is not None:
            values.append(url.group("password"))
    return values


def register_environment_secrets(
    environ: Mapping[str, str], extra_names: Iterable[str] = ()
) -> int:
    """Hand the environment's secret values to the redactor; how many there were."""
    values = secret_values(environ, extra_names)
    register_secret_values(values)
    return len(values)
