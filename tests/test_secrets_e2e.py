"""An agent that echoes every secret in its environment, and puts some in its summary, commit
summary, context and follow-ups: none of them may reach a file under the project (the
database included), the git history, or the output of any command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import Repo, git_in
from tests.e2e import add_items, write_project

SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY",
    "DATABASE_URL": "postgres://app:Pw-9f8e7d6c5b@db.internal:5432/app",
    "NPM_TOKEN": "npm_Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAbCd",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T01ABCDEF/B02GHIJKL/q1w2e3r4t5y6u7i8o9p0",
    "GITHUB_TOKEN": "ghp_q8W7e6R5t4Y3u2I1o0PaSdFgHjKlZxCvBn",
    "ANTHROPIC_API_KEY": "sk-ant-api03-Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg",
    "STRIPE_SECRET_KEY": "sk_live_51HxQ2eKLmNoPqRsTuVwXyZ012",
    "CORP_LICENSE": "LIC-7Q2Z-9X4W-3M8N-CORP",  # only the config says this one is secret
}
# What must never appear: each whole value, and the password inside the URL.
NEEDLES = [*SECRETS.values(), "Pw-9f8e7d6c5b"]
ECHO_AGENT = r"""
import json, os, sys
secrets = {k: v for k, v in os.environ.items() if not k.startswith("PHASE_GOLEM_")}
for name, value in sorted(secrets.items()):
    print(f"{name}={value}")
    print(json.dumps({"type": "assistant", "text": f"I see {name}={value}"}))
    sys.stderr.write(f"debug: {value}\n")
item, phase = os.environ["PHASE_GOLEM_ITEM_ID"], os.environ["PHASE_GOLEM_PHASE"]
every = " ".join(secrets.get(n, "") for n in SECRET_NAMES)
result = {
    "item_id": item,
    "phase": phase,
    "result": "phase_complete",
    "summary": f"done; the keys are {every}",
    "commit_summary": f"use {secrets.get('GITHUB_TOKEN')} and {secrets.get('DATABASE_URL')}",
    "context": f"license {secrets.get('CORP_LICENSE')}",
}
if phase == "triage":
    result["updated_assessments"] = {"size": "small", "risk": "low", "complexity": "low"}
else:
    os.makedirs("src", exist_ok=True)
    open(f"src/{item}-{phase}.txt", "w").write("work without secrets\n")
    rotate = f"Rotate {secrets.get('NPM_TOKEN')}"
    result["follow_ups"] = [rotate, {"title": "Audit", "context": every}]
open(os.environ["PHASE_GOLEM_RESULT_FILE"], "w").write(json.dumps(result))
"""
PIPELINE = """\
[pipelines.feature]
phases = [
    { name = "plan", is_destructive = false },
    { name = "build", is_destructive = true },
]
"""


def echo_project(git_repo: Repo, pass_env: list[str]) -> Repo:
    script = git_repo.root / "echo_agent.py"
    names = json.dumps(sorted(SECRETS))
    script.write_text(f"SECRET_NAMES = {names}\n" + ECHO_AGENT, encoding="utf-8")
    agent = (
        f'cli = "command"\ncommand = "{sys.executable} {script}"\n'
        f'pass_env = {json.dumps(pass_env)}\n\n[redaction]\nenv = ["CORP_*"]'
    )
    return write_project(git_repo, agent=agent, pipelines=PIPELINE)


def leaks(text: str | bytes) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [needle for needle in NEEDLES if needle.encode() in data]


def test_no_echoed_secret_reaches_any_file_commit_or_output(
    git_repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    repo = echo_project(git_repo, sorted(SECRETS))
    add_items(repo, f"Deploy with {SECRETS['ANTHROPIC_API_KEY']}", "Second")
    ran = repo.ok("run", "--plain")
    outputs = {"run": ran.out + ran.err}
    for args in (
        ["status"],
        ["status", "--all", "--json"],
        ["show", "WRK-001"],
        ["show", "WRK-001", "--json"],
        ["log"],
        ["log", "--json"],
        ["runs"],
        ["runs", "--json"],
        ["export"],
        ["export", "--ledger", "-"],
    ):
        result = repo.ok(*args)
        outputs[" ".join(args)] = result.out + result.err
    repo.ok("export", "--format", "task-golem", str(repo.root / "tg-out"))
    for name, text in outputs.items():
        assert leaks(text) == [], name
    assert "[REDACTED]" in outputs["log --json"]

    agent_saw = [p for p in (repo.root / ".phase-golem" / "runs").glob("*/stdout.log")]
    assert agent_saw and all(p.read_text().count("[REDACTED]") >= 16 for p in agent_saw)
    for path in sorted(p for p in repo.root.rglob("*") if p.is_file() and ".git" not in p.parts):
        assert leaks(path.read_bytes()) == [], path
    history = subprocess.run(
        ["git", "-C", str(repo.root), "log", "-p", "--all", "--format=%H%n%B"],
        capture_output=True,
        check=True,
    ).stdout
    assert b"[WRK-001][plan]" in history
    assert leaks(history) == []
    revisions = git_in(repo.root, "rev-list", "--all").split()
    for needle in NEEDLES:
        found = subprocess.run(
            ["git", "-C", str(repo.root), "grep", "-F", "-l", needle, *revisions],
            capture_output=True,
            check=False,
        )
        assert found.returncode == 1 and found.stdout == b"", needle


def test_by_default_an_agent_gets_none_of_the_secrets_it_does_not_need(
    git_repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HARMLESS_SETTING", "yes")
    repo = echo_project(git_repo, [])
    add_items(repo, "Look around")
    repo.ok("run", "--plain", "--cap", "1")
    stdout = next((repo.root / ".phase-golem" / "runs").glob("*/stdout.log"))
    seen = {
        line.split("=", 1)[0]
        for line in stdout.read_text(encoding="utf-8").splitlines()
        if "=" in line and not line.startswith("{")
    }
    assert seen.isdisjoint(SECRETS), seen & set(SECRETS)
    assert "HARMLESS_SETTING" not in seen and "PATH" in seen and "HOME" in seen


def test_a_secret_registered_after_it_was_stored_is_still_not_shown(
    project: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    value = "Zq7-late-registered-value-991"
    project.ok("add", f"Mentions {value}")
    assert value in project.ok("status", "--json").out  # not a secret yet: stored as given
    monkeypatch.setenv("LATE_TOKEN", value)
    for args in (["status"], ["status", "--json"], ["show", "WRK-001", "--json"], ["log"]):
        out = project.ok(*args).out
        assert value not in out and value[:12] not in out and "[REDACTED]" in out, args
