"""`phase-golem demo`: a small git project, a backlog, a scenario, the whole pipeline.

Everything is real except the agent's intelligence: the store, the scheduler, the agent
subprocesses (the simulated agent), the git repository and the files they write.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from phase_golem.domain.errors import DomainError
from phase_golem.domain.pipelines import Settings
from phase_golem.engine.backlog import NewItemRequest, add_item
from phase_golem.engine.selection import RunOptions
from phase_golem.engine.session import run_session
from phase_golem.engine.sources import run_now
from phase_golem.project import init_project, load_project

DEMO_CONFIG = """\
[project]
prefix = "WRK"

[execution]
max_wip = 2
max_concurrent = 2
phase_timeout_minutes = 2
max_retries = 2

[agent]
cli = "sim"
scenario = "demo-scenario.yaml"

[[sources]]
name = "inbox"
inbox = "BACKLOG_INBOX.yaml"
every = "30s"
"""

# What a teammate drops into the inbox; the inbox source makes it an item.
DEMO_INBOX = "- title: Add request IDs to the logs\n"
DEMO_IGNORED = "BACKLOG_INBOX.yaml\n.BACKLOG_INBOX.yaml.*\n"

DEMO_SCENARIO = """\
defaults: {result: phase_complete, summary: "{phase} done for {item}", delay: 0.05}
rules:
  - match: {title: "^Add a health check", phase: triage}
    duplicates: [WRK-001]
    summary: "Same request as WRK-001"
  - match: {item: WRK-001, phase: triage}
    assessments: {size: medium, risk: low, complexity: medium, impact: high}
    pipeline_type: feature
    summary: "Medium feature; research it first"
  - match: {item: WRK-004, phase: triage}
    assessments: {size: medium, risk: low, impact: medium}
    pipeline_type: feature
  - match: {phase: triage}
    assessments: {size: small, risk: low, complexity: low, impact: medium}
    pipeline_type: simple
    summary: "Small and safe; straight to ready"
  - match: {item: WRK-001, phase: design}
    follow_ups: ["Document the health endpoint", "Add a health-check endpoint"]
  - match: {item: WRK-003, phase: build}
    fail_times: 2
    write: {"src/{item}.txt": "built {item}\\n"}
  - match: {item: WRK-004, phase: prd}
    result: blocked
    context: "Needs a decision: which auth provider should we migrate to?"
    blocked_type: decision
    times: 1                  # once approved, the next prd run goes on
  - match: {phase: build}
    write: {"src/{item}.txt": "built {item}\\n"}
"""

DEMO_ITEMS = (
    NewItemRequest("Add a health-check endpoint"),
    NewItemRequest("Add a health check endpoint"),
    NewItemRequest("Rate-limit the public API"),
    NewItemRequest("Migrate auth to a new provider"),
)


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


def build_demo_project(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise DomainError(f"{root} is not empty; give the demo an empty or new directory")
    _git(root, "init", "-q", "-b", "main")
    _git(root, "config", "user.email", "demo@phase-golem.invalid")
    _git(root, "config", "user.name", "phase-golem demo")
    (root / "phase-golem.toml").write_text(DEMO_CONFIG, encoding="utf-8")
    (root / "demo-scenario.yaml").write_text(DEMO_SCENARIO, encoding="utf-8")
    (root / "README.md").write_text("# Demo project\n", encoding="utf-8")
    init_project(root, "WRK", None)
    with (root / ".gitignore").open("a", encoding="utf-8") as ignore:
        ignore.write(DEMO_IGNORED)  # the drop file is the inbox's, never the repository's
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "Demo project")


def closing_hint(root: Path | None) -> list[str]:
    """What to try next: WRK-004 waits for a decision; approving it lets it finish."""
    if root is None:
        return [
            "The project was temporary and is gone; `phase-golem demo DIR` keeps it in DIR.",
            "Then decide WRK-004 and let it finish: `phase-golem --root DIR approve WRK-004 "
            '--notes "use provider X"`, then `phase-golem --root DIR run --no-sources`.',
        ]
    pg = f"phase-golem --root {root}"
    steps = [
        (f"{pg} show WRK-004", "why it stopped"),
        (f'{pg} approve WRK-004 --notes "use provider X"', "decide"),
        (f"{pg} run --no-sources", "it goes on and finishes"),
        (f"{pg} log", "everything that happened"),
    ]
    width = max(len(command) for command, _ in steps)
    lines = [f"The project stays in {root}. Next: WRK-004 waits for your decision."]
    lines += [f"  {command:<{width}}   # {why}" for command, why in steps]
    return [
        *lines,
        "Without --no-sources, `run` stays up and takes what arrives in the inbox",
        f"({root / 'BACKLOG_INBOX.yaml'}) as it comes; Ctrl-C stops it.",
    ]


def run_demo(directory: Path | None, emit: Callable[[str], None]) -> int:
    from phase_golem.cli.app import main as cli_main

    keep = directory is not None
    root = (directory or Path(tempfile.mkdtemp(prefix="phase-golem-demo-"))).resolve()
    if not keep:
        root.rmdir()
    started = time.monotonic()
    try:
        build_demo_project(root)
        project = load_project(root, None)
        settings: Settings = project.config.settings
        emit(f"Demo project in {root}; backlog:")
        for request in DEMO_ITEMS:
            item = add_item(project.store(), settings, request)
            emit(f"  {item.id}  {item.title}")
        emit("")
        (root / "BACKLOG_INBOX.yaml").write_text(DEMO_INBOX, encoding="utf-8")
        emit("$ phase-golem sources run inbox   (an entry was dropped in BACKLOG_INBOX.yaml)")
        emit(run_now(root, project.store(), settings, "inbox").line())
        emit("")
        emit("$ phase-golem run --no-sources   (simulated agent, max_concurrent = 2)")
        options = RunOptions(cap=settings.execution.default_phase_cap, sources=False)
        summary = run_session(project, options, emit)
        for line in summary.lines():
            emit(line)
        project.close()
        emit("")
        emit("$ phase-golem runs --item WRK-003   (a build that failed twice, then passed)")
        cli_main(["--root", str(root), "runs", "--item", "WRK-003"])
        emit("")
        emit("$ phase-golem status --all")
        cli_main(["--root", str(root), "status", "--all"])
        emit("")
        emit("$ git log --oneline   (one commit per phase that wrote files, then the halt commit)")
        log = subprocess.run(
            ["git", "-C", str(root), "log", "--oneline"],
            capture_output=True,
            text=True,
            check=False,
        )
        for line in log.stdout.splitlines():
            emit(f"  {line}")
        emit("")
        emit(f"Finished in {time.monotonic() - started:.1f} s.")
        for line in closing_hint(root if keep else None):
            emit(line)
        return 0
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
