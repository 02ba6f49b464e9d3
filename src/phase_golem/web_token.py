"""The project's dashboard token: `.phase-golem/web-token`, made at `init`, mode 0600.

Whoever holds it may change the project through `phase-golem serve`; so it is created
private (never through a link an agent planted) and read back without following links.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from phase_golem.safe_files import create_private, read_text_bounded

TOKEN_NAME = "web-token"
TOKEN_BYTES = 32
_TOKEN_LIMIT = 4096


def token_path(state_dir: Path) -> Path:
    return state_dir / TOKEN_NAME


def ensure_token(state_dir: Path) -> tuple[str, bool]:
    """(the token, whether it was made now); an existing token file is kept."""
    path = token_path(state_dir)
    if os.path.lexists(path):
        return read_token(state_dir), False
    token = secrets.token_urlsafe(TOKEN_BYTES)
    fd = create_private(path)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token, True


def read_token(state_dir: Path) -> str:
    text = read_text_bounded(
        token_path(state_dir), _TOKEN_LIMIT, follow_symlinks=False, what=TOKEN_NAME
    )
    return text.strip()


def csrf_token(token: str) -> str:
    """The CSRF token bound to the session token: unguessable without it, same for every form."""
    return hmac.new(token.encode(), b"phase-golem csrf", hashlib.sha256).hexdigest()


def same_secret(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())
