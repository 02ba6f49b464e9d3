"""The dashboard's security over real HTTP against a real `serve` (DESIGN §13): the token,
CSRF, Host and Origin checks, no change on GET, escaping, and run files kept inside the run."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Repo
from tests.e2e import add_items, commit_all, items_by_id, run_dir, runs_of, write_project
from tests.web import ALERT, Server, form_of, serving

pytest.importorskip("starlette", reason="the dashboard needs the [web] extra")

REVIEW = "  - match: {phase: triage}\n    requires_human_review: true\n"
HOSTILE_OUTPUT = (
    f"  - match: {{phase: triage}}\n    requires_human_review: true\n    summary: {ALERT!r}\n"
)


def _state(repo: Repo) -> tuple[str, str, str]:
    """What a refused request must leave exactly as it was: every item, the ledger (a pause
    is an event there) and the notifications outbox."""
    return (
        repo.ok("status", "--all", "--json").out,
        repo.ok("log", "--json").out,
        repo.ok("notifications", "--json").out,
    )


@pytest.fixture
def blocked(git_repo: Repo) -> Repo:
    repo = write_project(git_repo, REVIEW, execution="max_wip = 2")
    add_items(repo, "Needs review", ALERT)
    repo.ok("edit", "WRK-002", "--description", f"Problem: {ALERT} <img src=x onerror=alert(2)>")
    assert repo.pg("triage").code == 1
    return repo


@pytest.fixture
def server(blocked: Repo) -> Iterator[Server]:
    with serving(blocked) as running:
        yield running


def _forms(server: Server) -> dict[str, dict[str, str]]:
    """A valid form of every action, read from the pages as a browser would."""
    with server.client() as client:
        needs = client.get("/needs").text
        board = client.get("/").text
    forms = {name: form_of(needs, name) for name in ("approve", "reject", "unblock", "close")}
    forms["add"] = {**form_of(board, "add"), "title": "Injected"}
    forms["resolve"] = {**forms["approve"], "run": "run-000001", "decision": "happened"}
    forms["resume-agent"] = {**forms["approve"], "agent": "sim"}
    forms["reject"]["reason"] = forms["close"]["reason"] = "because"
    forms["retry"] = form_of(needs, "retry")
    forms["pause"] = {**form_of(board, "pause"), "reason": "from a forged form"}
    plain = {"csrf": forms["add"]["csrf"], "next": "/"}
    forms["resume"] = dict(plain)
    forms["retry-notification"] = {**plain, "notification": "1"}
    forms["run-source"] = {**plain, "source": "inbox"}
    return forms


def test_every_mutation_without_the_token_or_with_a_wrong_csrf_is_refused_and_changes_nothing(
    blocked: Repo, server: Server
) -> None:
    forms = _forms(server)
    before = _state(blocked)
    with server.client(signed_in=False) as anonymous, server.client() as client:
        for action, form in forms.items():
            assert anonymous.post(f"/actions/{action}", data=form).status_code == 401, action
            wrong = {**form, "csrf": "0" * 64}
            assert client.post(f"/actions/{action}", data=wrong).status_code == 403, action
            missing = {k: v for k, v in form.items() if k != "csrf"}
            assert client.post(f"/actions/{action}", data=missing).status_code == 403, action
            # A token from another project (a stolen cookie of another server) is not ours.
            with server.client(signed_in=False) as stolen:
                stolen.cookies.set("phase_golem_session", "not-" + server.token)
                assert stolen.post(f"/actions/{action}", data=form).status_code == 401, action
        assert _state(blocked) == before
        # The same form with its token does act: the refusals above were not luck.
        done = client.post("/actions/approve", data=forms["approve"])
        assert done.status_code == 303 and done.headers["location"] == "/needs"
    assert items_by_id(blocked)[forms["approve"]["item"]]["status"] == "ready"


def test_a_cross_origin_post_and_a_foreign_host_are_refused(blocked: Repo, server: Server) -> None:
    form = _forms(server)["approve"]
    before = _state(blocked)
    with server.client() as client:
        for origin in ("http://evil.example", "null", f"http://{server.host}.evil.example"):
            refused = client.post("/actions/approve", data=form, headers={"Origin": origin})
            assert refused.status_code == 403, origin
        referer = {"Referer": "http://evil.example/page"}
        assert client.post("/actions/approve", data=form, headers=referer).status_code == 403
        port = server.host.rsplit(":", 1)[1]
        for host in (f"evil.example:{port}", "evil.example", f"127.0.0.1.nip.io:{port}"):
            assert client.get("/", headers={"Host": host}).status_code == 421, host
            posted = client.post("/actions/approve", data=form, headers={"Host": host})
            assert posted.status_code == 421, host
        assert client.get("/", headers={"Host": f"localhost:{port}"}).status_code == 200
    assert _state(blocked) == before


def test_get_never_changes_state_and_pages_need_the_token(blocked: Repo, server: Server) -> None:
    before = _state(blocked)
    with server.client(signed_in=False) as anonymous, server.client() as client:
        for path in (
            "/",
            "/needs",
            "/items/WRK-001",
            "/runs",
            "/agents",
            "/events",
            "/notifications",
            "/sources",
        ):
            page = anonymous.get(path)
            assert page.status_code == 401 and "Needs review" not in page.text, path
        for action in ("approve", "close", "add"):
            assert client.get(f"/actions/{action}", params={"item": "WRK-001"}).status_code == 405
    assert _state(blocked) == before


def test_the_login_url_works_once_and_sets_a_strict_httponly_cookie(server: Server) -> None:
    with server.client(signed_in=False, follow_redirects=False) as browser:
        first = browser.get(server.login_url)
        assert first.status_code == 303
        cookie = first.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert browser.get("/").status_code == 200  # the cookie signs this browser in
    with server.client(signed_in=False, follow_redirects=False) as other:
        assert other.get(server.login_url).status_code == 401  # used up
        assert other.post("/login", data={"token": "wrong"}).status_code == 401
        assert other.post("/login", data={"token": server.token}).status_code == 303


def test_security_headers_forbid_inline_script_and_framing(server: Server) -> None:
    with server.client() as client:
        for path in ("/", "/needs", "/static/live.js", "/nowhere"):
            headers = client.get(path).headers
            csp = headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp, path
            assert "frame-ancestors 'none'" in csp and headers["x-frame-options"] == "DENY"
        page = client.get("/").text
    assert "<script>" not in page and "onclick" not in page  # every script is a file


def test_hostile_titles_descriptions_and_agent_output_are_shown_as_text(
    git_repo: Repo,
) -> None:
    repo = write_project(git_repo, HOSTILE_OUTPUT)
    add_items(repo, ALERT)
    repo.ok("edit", "WRK-001", "--description", f"Context: {ALERT}")
    assert repo.pg("triage").code == 1
    [triage] = runs_of(repo)
    with serving(repo) as server, server.client() as client:
        paths = ("/", "/needs", "/items/WRK-001", "/runs", "/notifications")
        pages = [client.get(p).text for p in paths]
        pages += [
            client.get(f"/runs/{triage['id']}/files/{n}").text
            for n in ("stdout.log", "result.json")
        ]
    for page in pages:
        assert ALERT not in page
    assert all("<script" not in p.replace('<script src="/static/', "") for p in pages)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0] + pages[2]


def test_run_files_are_served_only_from_inside_the_run_directory(
    blocked: Repo, server: Server
) -> None:
    [first, *_] = runs_of(blocked)
    own = run_dir(blocked, first["id"])
    ok, text = server.raw_get(f"/runs/{first['id']}/files/prompt.md")
    assert ok == 200 and "WRK-00" in text
    for path in (
        f"/runs/{first['id']}/files/../../web-token",
        f"/runs/{first['id']}/files/..%2f..%2fweb-token",
        f"/runs/{first['id']}/files/%2e%2e/%2e%2e/web-token",
        "/runs/..%2f..%2f/files/web-token",
        "/runs/../../web-token",
        f"/runs/{first['id']}/files/state.db",
    ):
        status, body = server.raw_get(path)
        assert status in (400, 403, 404), path
        assert server.token not in body, path
    # Whatever a run file holds, a page never shows a secret in it.
    secret = "ghp_" + "A1b2C3d4" * 4
    (own / "stdout.log").unlink(missing_ok=True)
    (own / "stdout.log").write_text(f'{{"type": "note", "text": "token {secret}"}}\n')
    status, body = server.raw_get(f"/runs/{first['id']}/files/stdout.log")
    assert status == 200 and secret not in body and "[REDACTED]" in body
    # A link an agent planted in its own run directory is never followed.
    (own / "stderr.log").unlink(missing_ok=True)
    os.symlink(blocked.root / ".phase-golem" / "web-token", own / "stderr.log")
    status, body = server.raw_get(f"/runs/{first['id']}/files/stderr.log")
    assert status == 403 and "symbolic link" in body and server.token not in body


def test_a_failed_action_shows_the_cli_line_and_changes_nothing(
    blocked: Repo, server: Server
) -> None:
    form = _forms(server)["approve"]
    blocked.ok("approve", "WRK-001")
    before = _state(blocked)
    cli = blocked.pg("approve", "WRK-001")
    assert cli.code == 2
    with server.client() as client:
        page = client.post("/actions/approve", data={**form, "item": "WRK-001"})
    assert page.status_code == 400
    assert cli.err.strip().replace("'", "&#39;") in page.text
    assert _state(blocked) == before


def test_metrics_parse_and_state_returns_the_cli_json(blocked: Repo, server: Server) -> None:
    with server.client(signed_in=False) as anonymous:
        assert anonymous.get("/metrics").status_code == 401
        assert anonymous.get("/api/v1/state").status_code == 401
    with server.client() as client:
        text = client.get("/metrics").text
        state = client.get("/api/v1/state").json()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    items = {s.labels["status"]: s.value for s in families["phase_golem_items"].samples}
    assert items == {"blocked": 2.0}
    runs = families["phase_golem_runs"].samples
    assert sum(s.value for s in runs) == len(runs_of(blocked)) == 2
    assert {"phase_golem_cost_usd", "phase_golem_tokens", "phase_golem_queue_depth"} <= set(
        families
    )
    assert state["items"] == blocked.ok("status", "--json").json()
    assert state["runs"] == blocked.ok("runs", "--json").json()


def test_metrics_public_opens_metrics_and_state_but_not_pages(git_repo: Repo) -> None:
    repo = write_project(git_repo)
    config = repo.root / "phase-golem.toml"
    config.write_text(config.read_text() + "\n[serve]\nmetrics_public = true\n")
    commit_all(repo, "public metrics")
    with serving(repo) as server, server.client(signed_in=False) as anonymous:
        assert anonymous.get("/metrics").status_code == 200
        assert anonymous.get("/api/v1/state").status_code == 200
        assert anonymous.get("/").status_code == 401


def test_init_makes_a_private_token_and_serve_warns_off_loopback(git_repo: Repo) -> None:
    git_repo.ok("init")
    token = git_repo.root / ".phase-golem" / "web-token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600 and len(token.read_text().strip()) >= 32
    again = token.read_text()
    git_repo.ok("init")
    assert token.read_text() == again  # kept, never replaced
    with serving(git_repo, "--host", "0.0.0.0", "--allow-host", "golem.lan") as server:
        assert "warning: serving on 0.0.0.0, not loopback" in server.stderr_path.read_text()
        port = server.host.rsplit(":", 1)[1]
        with server.client() as client:
            assert client.get("/", headers={"Host": f"golem.lan:{port}"}).status_code == 200
            assert client.get("/", headers={"Host": f"other.lan:{port}"}).status_code == 421


def test_serve_without_a_project_is_one_line(tmp_path: Path, git_repo: Repo) -> None:
    result = git_repo.pg("serve", "--port", "0")
    assert result.code == 3 and result.err.count("\n") == 1 and "init" in result.err


def _ledger_events(lines: Iterator[str], count: int) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    for line in lines:
        if line.startswith("data: "):
            found.append(json.loads(line.removeprefix("data: ")))
            if len(found) == count:
                break
    return found


def test_events_stream_the_ledger_from_a_seq_and_resume_after_the_last_id(
    blocked: Repo, server: Server
) -> None:
    ledger = blocked.ok("log", "--json").json_lines()
    last = ledger[-1]["seq"]
    with server.client() as client:
        with client.stream("GET", "/events", params={"after": last}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            blocked.ok("add", "Arrives while watching")
            [event] = _ledger_events(stream.iter_lines(), 1)
        assert event == {"seq": last + 1, "kind": "item.created", "item": "WRK-003"}
        # A browser that reconnects sends the last id it saw and misses nothing after it.
        resumed = {"Last-Event-ID": str(ledger[0]["seq"])}
        with client.stream("GET", "/events", headers=resumed) as stream:
            replayed = _ledger_events(stream.iter_lines(), 2)
    assert [e["seq"] for e in replayed] == [ledger[1]["seq"], ledger[2]["seq"]]
