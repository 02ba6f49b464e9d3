"""The agent contract as published: the JSON Schema `schema result` prints, and the example
agent of the README, copied out of README.md and run as a real `command` agent."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from phase_golem.cli.demo import DEMO_SCENARIO
from phase_golem.domain.results import ResultCode, _ResultModel, result_json_schema
from tests.conftest import Repo, git_in
from tests.e2e import add_items, commit_all, items_by_id, runs_of

README = Path(__file__).resolve().parents[1] / "README.md"
MARKER = "<!-- example-agent:"


def example_agent() -> str:
    text = README.read_text(encoding="utf-8")
    after = text[text.index(MARKER) :]
    found = re.search(r"```python\n(.*?)```", after, re.DOTALL)
    assert found, "the README's example agent block is gone"
    return found.group(1)


def test_the_readme_example_agent_is_short() -> None:
    lines = [line for line in example_agent().splitlines() if line.strip()]
    assert len(lines) <= 12, len(lines)


def test_the_readme_example_agent_runs_items_to_done(git_repo: Repo, tmp_path: Path) -> None:
    agent = tmp_path / "my_agent.py"  # outside the repository: the tree stays clean
    agent.write_text(example_agent(), encoding="utf-8")
    (git_repo.root / "phase-golem.toml").write_text(
        '[project]\nprefix = "WRK"\n\n[agent]\ncli = "command"\n'
        f"command = {json.dumps(f'{sys.executable} {agent}')}\n",
        encoding="utf-8",
    )
    git_repo.ok("init")
    commit_all(git_repo, "set up")
    add_items(git_repo, "Write the changelog", "Tidy the docs")
    result = git_repo.pg("run")
    assert result.code == 0, result.out + result.err
    items = items_by_id(git_repo)
    assert {i["status"] for i in items.values()} == {"done"}
    runs = runs_of(git_repo)
    assert {r["status"] for r in runs} == {"committed"}
    assert {r["result"]["summary"] for r in runs} == {"noted"}
    assert items["WRK-001"]["size"] == "small"  # triage's assessments were taken
    committed = set(git_in(git_repo.root, "log", "--format=", "--name-only").split())
    for run in runs:
        note = f"notes/{run['item_id']}-{run['phase']}.md"
        assert (git_repo.root / note).read_text().startswith("Read ")
        assert note in committed
    assert git_in(git_repo.root, "status", "--porcelain") == ""


def test_schema_result_prints_the_schema_of_the_validating_model(project: Repo) -> None:
    printed = project.ok("schema", "result").json()
    assert printed == json.loads(json.dumps(result_json_schema()))
    assert printed["$schema"].endswith("2020-12/schema")
    assert set(printed["properties"]) == set(_ResultModel.model_fields)
    assert printed["required"] == ["item_id", "phase", "result", "summary"]
    codes = printed["$defs"]["ResultCode"]["enum"]
    assert codes == [code.value for code in ResultCode]
    follow_up = printed["properties"]["follow_ups"]["items"]["anyOf"]
    assert {"type": "string"} in follow_up  # a bare title is accepted, and the schema says so
    bad = project.pg("schema", "results")
    assert bad.code == 2 and "results" in bad.err


def shadowed(rules: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """(earlier, later) rule indexes where the later rule can never match: the first
    matching rule wins, and the earlier one (not limited by `times`) matches all it does."""
    found: list[tuple[int, int]] = []
    for j, later in enumerate(rules):
        wanted = dict(later.get("match") or {})
        for i, earlier in enumerate(rules[:j]):
            general = dict(earlier.get("match") or {})
            if "times" not in earlier and all(wanted.get(k) == v for k, v in general.items()):
                found.append((i, j))
                break
    return found


def readme_scenario() -> dict[str, Any]:
    text = README.read_text(encoding="utf-8")
    after = text[text.index("### The simulated agent") :]
    found = re.search(r"```yaml\n(.*?)```", after, re.DOTALL)
    assert found, "the README's simulated-agent example is gone"
    loaded: dict[str, Any] = yaml.safe_load(found.group(1))
    return loaded


def test_no_rule_of_the_readme_or_demo_scenario_comes_after_one_that_covers_it() -> None:
    readme = readme_scenario()["rules"]
    assert shadowed(readme) == []
    assert shadowed(yaml.safe_load(DEMO_SCENARIO)["rules"]) == []
    # The check itself: a catch-all placed first hides the specific rule after it.
    catch_all, specific = readme[1], readme[0]
    assert catch_all["match"] == {"phase": "triage"} and "title" in specific["match"]
    assert shadowed([catch_all, specific]) == [(0, 1)]
