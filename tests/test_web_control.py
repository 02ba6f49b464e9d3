"""The dashboard's scheduler control and outbox over real HTTP against a real `serve`:
retry, pause and resume call the CLI's engine functions (same lines, same refusals), the
notifications page pages in the store and retries, the sources page says when there are none
and runs a source now as `sources run NAME` does.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import EXE, Repo
from tests.e2e import add_items, commit_all, items_by_id, write_project
from tests.waiting import DEADLINE_SECONDS, state_rows, wait_for_file
from tests.web import Server, form_of, serving

pytest.importorskip("starlette", reason="the dashboard needs the [web] extra")

EXHAUSTED = "  - match: {phase: plan}\n    result: failed\n    summary: 'the plan did not hold'\n"
FAILING_SINK = '\n[[notify]]\nname = "desk"\ncommand = "exit 7"\non = ["*"]\nmax_attempts = 1\n'


def _flash(page: Any) -> str:
    return str(page.text)


@pytest.fixture
def exhausted(git_repo: Repo) -> Repo:
    """One item blocked after its plan phase failed every retry, and a sink that fails."""
    repo = write_project(git_repo, EXHAUSTED, execution="max_retries = 1")
    with (repo.root / "phase-golem.toml").open("a", encoding="utf-8") as config:
        config.write(FAILING_SINK)
    commit_all(repo, "a sink that fails")
    add_items(repo, "Fails its plan")
    assert repo.pg("run").code == 1
    assert items_by_id(repo)["WRK-001"]["status"] == "blocked"
    return repo


@pytest.fixture
def server(exhausted: Repo) -> Iterator[Server]:
    with serving(exhausted) as running:
        yield running


def test_retry_pause_and_resume_from_the_dashboard_say_what_the_cli_says(
    exhausted: Repo, server: Server
) -> None:
    with server.client(follow_redirects=True) as client:
        item_page = client.get("/items/WRK-001").text
        retry = {**form_of(item_page, "retry"), "notes": "try a smaller plan"}
        pause = {**form_of(item_page, "pause"), "reason": "lunch <b>break</b>"}
        done = client.post("/actions/retry", data=retry)
        assert "WRK-001 → in_progress at plan: a fresh visit, retries reset" in done.text
        item = items_by_id(exhausted)["WRK-001"]
        assert item["status"] == "in_progress"
        assert "try a smaller plan" in item["unblock_context"]
        assert "The previous attempt failed" in item["unblock_context"]
        # Retrying it again is refused with the CLI's own line, and changes nothing.
        cli = exhausted.pg("retry", "WRK-001")
        refused = client.post("/actions/retry", data=retry)
        assert cli.code == 2 and refused.status_code == 400
        assert cli.err.strip() in refused.text.replace("&#39;", "'")
        paused = client.post("/actions/pause", data=pause)
        assert "Scheduler paused since" in paused.text
        assert "lunch &lt;b&gt;break&lt;/b&gt;" in paused.text  # the header says so, escaped
        status = exhausted.ok("status").out
        assert "Scheduler paused" in status and "lunch <b>break</b>" in status
        again = client.post("/actions/pause", data=pause)
        assert "Already paused." in again.text
        resume = form_of(again.text, "resume")
        resumed = client.post("/actions/resume", data=resume)
        assert "Scheduler resumed" in resumed.text and 'data-paused="no"' in resumed.text
        assert "Scheduler paused" not in exhausted.ok("status").out
        assert "The scheduler was not paused" in client.post("/actions/resume", data=resume).text


def test_the_notifications_page_filters_pages_and_retries_a_failed_one(
    exhausted: Repo, server: Server
) -> None:
    rows = [r for r in exhausted.ok("notifications", "--json").json() if r["sink"] == "desk"]
    failed = [r for r in rows if r["status"] == "failed"]
    assert failed and all(r["last_error"] for r in failed)
    with server.client(follow_redirects=True) as client:
        page = client.get("/notifications", params={"status": "failed"}).text
        for row in failed:
            assert f'data-notification="{row["id"]}"' in page
        assert 'data-status="sent"' not in page and "exited 7" in page
        target = failed[0]
        form = form_of(page, "retry-notification")
        assert form["notification"] == str(failed[-1]["id"])  # newest first
        form["notification"] = str(target["id"])
        done = client.post("/actions/retry-notification", data=form)
        assert f"Notification {target['id']} ({target['kind']} → desk) is due again" in done.text
        [after] = [
            r for r in exhausted.ok("notifications", "--json").json() if r["id"] == target["id"]
        ]
        assert (after["status"], after["attempts"]) == ("pending", 0)
        bad = client.post("/actions/retry-notification", data={**form, "notification": "x1"})
        assert bad.status_code == 400 and "is not a notification id" in bad.text
        missing = client.post("/actions/retry-notification", data={**form, "notification": "999"})
        assert missing.status_code == 400 and "no notification 999" in missing.text
        assert client.get("/notifications", params={"status": "lost"}).status_code == 400
        assert client.get("/notifications", params={"before": "-1"}).status_code == 400
        older = client.get("/notifications", params={"before": str(target["id"])}).text
        assert f'data-notification="{target["id"]}"' not in older


def test_the_sources_page_says_when_no_source_is_configured(server: Server) -> None:
    with server.client(follow_redirects=True) as client:
        page = client.get("/sources")
    assert page.status_code == 200 and "No sources configured" in page.text


def test_the_sources_page_runs_a_source_now_as_sources_run_does(git_repo: Repo) -> None:
    from tests.test_sources_e2e import script
    from tests.test_sources_run_e2e import SLOW, project

    script(git_repo.root / "scripts" / "slow.py", SLOW)
    repo = project(
        git_repo, '[[sources]]\nname = "slow"\ncommand = "scripts/slow.py"\nevery = "1h"\n'
    )
    gate, started = repo.root / "scripts" / "slow.gate", repo.root / "scripts" / "slow.started"
    gate.write_text("go")  # the first run answers at once
    with serving(repo) as server, server.client(follow_redirects=True) as client:
        page = client.get("/sources").text  # configured, never run: listed, can be run
        assert 'data-source="slow"' in page
        form = form_of(page, "run-source")
        assert form["source"] == "slow" and form["next"] == "/sources"
        done = client.post("/actions/run-source", data=form)
        assert done.status_code == 200 and "/sources" in str(done.url)
        assert "[source slow] fired: 1 created, 0 updated, 0 closed" in done.text
        listed = repo.ok("sources", "--json").json()
        assert (listed[0]["runs"], listed[0]["items_created"]) == (1, 1)
        # While the CLI runs it, the dashboard is refused with the CLI's own line.
        gate.unlink()
        started.unlink()
        first = subprocess.Popen(
            [str(EXE), "sources", "run", "slow"],
            cwd=repo.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            wait_for_file(started, process=first)
            cli = repo.pg("sources", "run", "slow")
            refused = client.post("/actions/run-source", data=form)
        finally:
            gate.write_text("go")
            first.communicate(timeout=DEADLINE_SECONDS)
        assert cli.code == 3 and refused.status_code == 400
        assert cli.err.strip() in refused.text.replace("&#39;", "'")
        unknown = client.post("/actions/run-source", data={**form, "source": "nope"})
        assert unknown.status_code == 400
        assert "no source named &#39;nope&#39; (sources: slow)" in unknown.text
        missing = client.post("/actions/run-source", data={**form, "source": ""})
        assert missing.status_code == 400 and "missing source" in missing.text
    listed = repo.ok("sources", "--json").json()
    assert listed[0]["runs"] == 2 and listed[0]["running"] is False  # the refusals ran nothing
    assert len(state_rows(repo.root, "SELECT id FROM items WHERE source = 'slow'")) == 1
