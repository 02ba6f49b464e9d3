"""A real `phase-golem serve` process for the dashboard's tests, and HTTP helpers.

The server binds port 0 and prints the URL the kernel chose; tests read it from the
process's output file (never a guessed port), and the server is stopped, then killed if
need be, however the test ends.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.conftest import EXE, Repo
from tests.waiting import wait_until

LOGIN = re.compile(r"Sign in once with: (http://\S+/login\?once=\S+)")
ALERT = "<script>alert(1)</script>"


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base: str
    login_url: str
    token: str
    stderr_path: Path

    @property
    def host(self) -> str:
        return urlsplit(self.base).netloc

    def client(self, *, signed_in: bool = True, **options: object) -> httpx.Client:
        cookies = {"phase_golem_session": self.token} if signed_in else {}
        return httpx.Client(base_url=self.base, cookies=cookies, timeout=60, **options)  # type: ignore[arg-type]

    def raw_get(self, path: str) -> tuple[int, str]:
        """GET of `path` exactly as written (no client normalises `..` away)."""
        parts = urlsplit(self.base)
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=60)
        try:
            connection.putrequest("GET", path, skip_host=True)
            connection.putheader("Host", self.host)
            connection.putheader("Cookie", f"phase_golem_session={self.token}")
            connection.endheaders()
            response = connection.getresponse()
            return response.status, response.read().decode("utf-8", "replace")
        finally:
            connection.close()


@contextlib.contextmanager
def serving(repo: Repo, *args: str) -> Iterator[Server]:
    out = repo.root.parent / f"serve-{os.getpid()}-{id(repo)}.out"
    err = out.with_suffix(".err")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHASE_GOLEM")}
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [str(EXE), "serve", "--port", "0", *args],
            cwd=repo.root,
            stdout=stdout,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    try:
        found = wait_until(
            lambda: LOGIN.search(out.read_text(encoding="utf-8")),
            "serve printed its login URL",
            process=process,
        )
        login_url = found.group(1)
        token = (repo.root / ".phase-golem" / "web-token").read_text(encoding="utf-8").strip()
        base = login_url.split("/login", 1)[0]
        yield Server(process, base, login_url, token, err)
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def form_of(html: str, action: str) -> dict[str, str]:
    """The hidden fields of the first form posting to /actions/<action> in a page."""
    match = re.search(
        rf'<form method="post" action="/actions/{re.escape(action)}".*?</form>', html, re.S
    )
    assert match, f"no {action} form on the page"
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', match.group(0)))
