"""The dashboard in a real Chromium (the OS package, driven by Playwright) against a real
`serve` over a project that a real `run` with the simulated agent is working on.

Screenshots of every page are saved under `test-artifacts/web/` (git-ignored); the
README's `docs/dashboard.png` is the board one of these runs made.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Repo
from tests.e2e import add_items, items_by_id, runs_of, start_run, wait_for_agents, write_project
from tests.test_side_effects import _uncertain
from tests.waiting import DEADLINE_SECONDS, wait_until
from tests.web import Server, serving

pytest.importorskip("starlette", reason="the dashboard needs the [web] extra")
playwright = pytest.importorskip("playwright.sync_api", reason="the dev extra installs playwright")

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "web"
WAIT_MS = DEADLINE_SECONDS * 1000 / 2  # a browser wait, not a bet: only a hang meets it

pytestmark = [
    pytest.mark.serial,  # a browser wants the machine's attention
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="no /usr/bin/chromium (the OS package: apt-get install chromium; .ci/run does)",
    ),
]


@pytest.fixture
def page() -> Iterator[playwright.Page]:
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 860})
            context.set_default_timeout(WAIT_MS)
            yield context.new_page()
        finally:
            browser.close()


def _shot(page: playwright.Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def _sign_in(page: playwright.Page, server: Server) -> None:
    page.goto(server.login_url)
    page.wait_for_selector("h1:text('Board')")


def _card_in(page: playwright.Page, status: str, item: str) -> str:
    return f"section.column[data-status='{status}'] article.card[data-item='{item}']"


def test_the_board_follows_a_run_live_and_an_approval_from_the_page_reaches_status(
    git_repo: Repo, tmp_path: Path, page: playwright.Page
) -> None:
    gate = tmp_path / "let-plan-finish"
    rules = (
        f"  - match: {{item: WRK-001, phase: plan}}\n    wait_for: {str(gate)!r}\n"
        "  - match: {item: WRK-002, phase: triage}\n    requires_human_review: true\n"
        "  - match: {item: WRK-001, phase: build}\n"
        '    write: {"src/{item}.txt": "built {item} <script>alert(1)</script>\\n"}\n'
    )
    repo = write_project(git_repo, rules, execution="max_wip = 2\nmax_concurrent = 2")
    add_items(repo, "Live work", "Needs a human")
    run = start_run(repo)
    try:
        wait_for_agents(repo, "plan", 1, process=run)
        with serving(repo) as server:
            _sign_in(page, server)
            page.wait_for_selector(_card_in(page, "in_progress", "WRK-001") + " .running")
            page.wait_for_selector("body[data-live='connected']")
            _shot(page, "board-running")
            page.evaluate("window.stillTheSamePage = true")
            gate.write_text("go")
            # Only the live stream can move the card: the page is never reloaded.
            page.wait_for_selector(_card_in(page, "in_progress", "WRK-001"), state="detached")
            page.wait_for_selector(_card_in(page, "blocked", "WRK-002"))
            wait_until(lambda: run.poll() is not None, "run finished")
            page.wait_for_function("document.querySelector('.note') !== null")
            assert page.evaluate("window.stillTheSamePage") is True
            _shot(page, "board")
            page.set_viewport_size({"width": 390, "height": 844})  # a phone
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            _shot(page, "board-phone")
            page.set_viewport_size({"width": 1280, "height": 860})
            _approve_from_needs(page, repo)
            _visit_every_page(page, repo)
    finally:
        if run.poll() is None:
            run.kill()
        run.communicate()


def _approve_from_needs(page: playwright.Page, repo: Repo) -> None:
    page.click("nav >> text=Needs you")
    need = page.locator("article.need[data-item='WRK-002']")
    need.wait_for()
    assert "Requires human review" in need.inner_text()
    _shot(page, "needs-you")
    need.locator("form.action:has(button[data-action='approve']) input[name='notes']").fill(
        "Go ahead, from the browser"
    )
    need.locator("button[data-action='approve']").click()
    page.wait_for_selector(".flash:text('WRK-002 approved')")
    item = items_by_id(repo)["WRK-002"]
    assert (item["status"], item["unblock_context"]) == ("ready", "Go ahead, from the browser")


def _visit_every_page(page: playwright.Page, repo: Repo) -> None:
    page.goto(page.url.split("/needs")[0] + "/items/WRK-001")
    page.wait_for_selector("h2:text('Runs')")
    _shot(page, "item")
    committed = [r for r in runs_of(repo, "WRK-001") if r["phase"] == "build"]
    assert committed, "the build phase ran"
    page.click(f"tr[data-run='{committed[0]['id']}'] a:text('stdout.log')")
    page.wait_for_selector("pre.file")
    _shot(page, "run-stdout")
    page.go_back()
    page.click(f"tr[data-run='{committed[0]['id']}'] a:text('diff')")
    shown = page.locator("pre.file").inner_text()
    assert "diff --git" in shown and "built WRK-001 <script>alert(1)</script>" in shown
    _shot(page, "run-diff")
    for name, title in (("Runs", "Runs"), ("Agents", "Agents")):
        page.click(f"nav >> text={name}")
        page.wait_for_selector(f"h1:text('{title}')")
        _shot(page, name.lower())


def test_resolving_from_the_page_reaches_status(
    git_repo: Repo, tmp_path: Path, page: playwright.Page
) -> None:
    repo, ship = _uncertain(git_repo, tmp_path / "effects.log", after=True)
    with serving(repo) as server:
        _sign_in(page, server)
        page.click("nav >> text=Needs you")
        need = page.locator(f"article.need[data-run='{ship['id']}']")
        need.wait_for()
        _shot(page, "needs-you-resolve")
        need.locator("button:text('It happened')").click()
        page.wait_for_selector(f".flash:text('{ship['id']} resolved as happened')")
    [run] = [r for r in runs_of(repo) if r["id"] == ship["id"]]
    assert run["mutation"] == "resolved_happened"
    item = items_by_id(repo)["WRK-001"]
    assert (item["status"], item["phase"]) == ("in_progress", "review")


def test_the_readme_shows_a_screenshot_the_tests_made() -> None:
    root = Path(__file__).resolve().parents[1]
    shot = root / "docs" / "dashboard.png"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "docs/dashboard.png" in (root / "README.md").read_text(encoding="utf-8")
