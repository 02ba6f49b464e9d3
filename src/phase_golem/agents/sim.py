"""The simulated agent: `python -m phase_golem.agents.sim [--scenario FILE]`.

A real subprocess that reads the same environment and writes the same result file as any
agent (DESIGN §6). A YAML scenario says, per item and phase, what to do; the first
matching rule wins and `defaults` fill the rest. Invocations are counted per
(item, phase) in `.phase-golem/sim-state.json`, so `times`, `fail_times` and
`subphases` hold across restarts of the orchestrator. It prints Claude Code's
stream-json lines, so cost, session and rate-limit handling travel the real path.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from phase_golem.fsutil import write_atomically
from phase_golem.safe_files import read_text_bounded

SCENARIO_LIMIT = 4 << 20

BEHAVIOURS = frozenset(
    {
        "hang",
        "crash",
        "garbage",
        "oversized",
        "no_result",
        "wrong_item",
        "rate_limit",
        "unavailable",
    }
)
MATCH_KEYS = frozenset({"item", "phase", "title", "attempt"})
RESULT_KEYS = frozenset(
    {
        "result",
        "summary",
        "context",
        "assessments",
        "pipeline_type",
        "duplicates",
        "follow_ups",
        "description",
        "blocked_type",
        "requires_human_review",
        "wake_at",
        "retry_after_seconds",
        "commit_summary",
        "artifacts",
        "based_on_commit",
    }
)
RULE_KEYS = RESULT_KEYS | {
    "match",
    "write",
    "subphases",
    "fail_times",
    "behave",
    "times",
    "delay",
    "linger",
    "wait_for",
    "wait_before_write",
    "side_effect_log",
    "key_log",
    "torn_stream",
    "cost",
    "exit_code",
}
DEFAULTS: dict[str, Any] = {"result": "phase_complete", "summary": "{phase} done for {item}"}


class ScenarioError(ValueError):
    pass


def load_scenario(path: Path | None) -> dict[str, Any]:
    """Read and check a scenario; every problem names its place in the file."""
    if path is None:
        return {"defaults": dict(DEFAULTS), "rules": []}
    try:
        # Bounded and non-blocking: a scenario that is /dev/zero or a FIFO is refused.
        data = yaml.safe_load(read_text_bounded(path, SCENARIO_LIMIT, what=str(path))) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"{path}: cannot read scenario: {exc}") from None
    except RecursionError:
        raise ScenarioError(f"{path}: cannot read scenario: nested too deeply") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: a scenario is a mapping with defaults and rules")
    unknown = set(data) - {"defaults", "rules"}
    if unknown:
        raise ScenarioError(f"{path}: unknown top-level keys: {', '.join(sorted(unknown))}")
    raw_defaults = data.get("defaults") or {}
    if not isinstance(raw_defaults, dict):
        raise ScenarioError(f"{path}: defaults must be a mapping")
    _check_rule(f"{path}: defaults", raw_defaults)
    rules = data.get("rules") or []
    if not isinstance(rules, list):
        raise ScenarioError(f"{path}: rules must be a list")
    for index, rule in enumerate(rules):
        where = f"{path}: rules[{index}]"
        if not isinstance(rule, dict):
            raise ScenarioError(f"{where}: must be a mapping")
        _check_rule(where, rule)
    return {"defaults": {**DEFAULTS, **raw_defaults}, "rules": rules}


NUMBER_KEYS = frozenset(
    {
        "delay",
        "linger",
        "subphases",
        "fail_times",
        "times",
        "cost",
        "exit_code",
        "retry_after_seconds",
    }
)


def _check_rule(where: str, rule: dict[str, Any]) -> None:
    bad = set(rule) - RULE_KEYS
    if bad:
        raise ScenarioError(f"{where}: unknown keys: {', '.join(sorted(bad))}")
    match = rule.get("match") or {}
    if not isinstance(match, dict) or set(match) - MATCH_KEYS:
        raise ScenarioError(f"{where}.match: keys must be among {sorted(MATCH_KEYS)}")
    if "title" in match:
        try:
            re.compile(str(match["title"]))
        except re.error as exc:
            raise ScenarioError(f"{where}.match.title: not a regular expression: {exc}") from None
    behave = rule.get("behave")
    if behave is not None and behave not in BEHAVIOURS:
        raise ScenarioError(f"{where}.behave: {behave!r} is not one of {sorted(BEHAVIOURS)}")
    for key in NUMBER_KEYS & set(rule):
        value = rule[key]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < 0
        ):
            raise ScenarioError(f"{where}.{key}: must be a number >= 0, not {value!r}")
    attempt = match.get("attempt")
    if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int)):
        raise ScenarioError(f"{where}.match.attempt: must be a whole number, not {attempt!r}")
    for key in ("wait_for", "wait_before_write"):
        gates = rule.get(key)
        if gates is not None and not (
            isinstance(gates, str)
            or (isinstance(gates, list) and gates and all(isinstance(g, str) for g in gates))
        ):
            raise ScenarioError(f"{where}.{key}: must be a path or a list of paths")
    writes = rule.get("write") or {}
    if not isinstance(writes, dict):
        raise ScenarioError(f"{where}.write: must map relative paths to contents")
    for relative in writes:
        parts = Path(str(relative)).parts
        if not parts or parts == (".",) or Path(str(relative)).is_absolute() or ".." in parts:
            raise ScenarioError(f"{where}.write: {relative!r} must stay inside the project")


def _matches(match: Mapping[str, Any], item: str, phase: str, title: str, attempt: int) -> bool:
    if "item" in match and str(match["item"]) != item:
        return False
    if "phase" in match and str(match["phase"]) != phase:
        return False
    if "title" in match and not re.search(str(match["title"]), title):
        return False
    return not ("attempt" in match and int(match["attempt"]) != attempt)


def choose_rule(
    scenario: Mapping[str, Any], item: str, phase: str, title: str, attempt: int, count: int
) -> dict[str, Any]:
    """The first matching rule still in force (`times` limits it to the first N calls)."""
    for rule in scenario["rules"]:
        if not _matches(rule.get("match") or {}, item, phase, title, attempt):
            continue
        if "times" in rule and count > int(rule["times"]):
            continue
        return {**scenario["defaults"], **rule}
    return dict(scenario["defaults"])


def _count_invocation(state_file: Path, key: str) -> int:
    """Count this invocation in the state file, which is only ever replaced whole.

    The lock lives in its own file: the state file is renamed over, so a lock on it
    would not exclude the next writer. A kill at any moment leaves the old counts or
    the new ones, never half a file.
    """
    state_file.parent.mkdir(parents=True, exist_ok=True)
    lock_fd = os.open(
        state_file.with_name(state_file.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600
    )
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        counts = _read_counts(state_file)
        counts[key] = int(counts.get(key, 0)) + 1
        write_atomically(state_file, json.dumps(counts, sort_keys=True), private=True)
        return int(counts[key])
    finally:
        os.close(lock_fd)


def _read_counts(state_file: Path) -> dict[str, Any]:
    try:
        text = read_text_bounded(state_file, SCENARIO_LIMIT, follow_symlinks=False)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        sys.stderr.write(f"sim: {state_file}: unreadable ({exc}); counting from zero\n")
        return {}
    try:
        counts = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        # Only a state file from before writes were atomic can be torn; say so, start over.
        sys.stderr.write(f"sim: {state_file}: unreadable ({exc.msg}); counting from zero\n")
        return {}
    return counts if isinstance(counts, dict) else {}


def _fill(value: Any, names: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        for name, replacement in names.items():
            value = value.replace("{" + name + "}", replacement)
        return value
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    if isinstance(value, dict):
        return {_fill(k, names): _fill(v, names) for k, v in value.items()}
    return value


def _emit(event: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def _write_result(path: Path, data: Any) -> None:
    write_atomically(path, data if isinstance(data, str) else json.dumps(data), private=True)


def _result_body(rule: Mapping[str, Any], item: str, phase: str, count: int) -> dict[str, Any]:
    body: dict[str, Any] = {"item_id": item, "phase": phase}
    for key in RESULT_KEYS - {"assessments"}:
        if key in rule:
            body[key] = rule[key]
    if "assessments" in rule:
        body["updated_assessments"] = rule["assessments"]
    fail_times = int(rule.get("fail_times", 0))
    subphases = int(rule.get("subphases", 0))
    if count <= fail_times:
        body["result"] = "failed"
        body["summary"] = f"simulated failure {count} of {fail_times}"
    elif count - fail_times <= subphases:
        body["result"] = "subphase_complete"
        body["summary"] = f"subphase {count - fail_times} of {subphases}: {body['summary']}"
    return body


def _misbehave(behave: str, result_file: Path, item: str, phase: str, session: str) -> int:
    if behave == "hang":
        # A child in the same group proves the whole group is stopped at the timeout.
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        time.sleep(3600)
        return 0
    if behave == "crash":
        sys.stderr.write("simulated crash\n")
        return 3
    if behave == "garbage":
        _write_result(result_file, '{"item_id": "' + item + '", "phase": oops')
        return 0
    if behave == "oversized":
        _write_result(result_file, json.dumps({"item_id": item, "pad": "x" * 2_000_000}))
        return 0
    if behave == "no_result":
        return 0
    if behave == "wrong_item":
        wrong = {"item_id": "WRONG-999", "phase": phase, "result": "phase_complete", "summary": "x"}
        _write_result(result_file, wrong)
        return 0
    error = "rate_limit" if behave == "rate_limit" else "authentication_failed"
    _emit({"type": "assistant", "session_id": session, "error": error, "message": {}})
    _emit(
        {
            "type": "result",
            "subtype": "error_during_execution",
            "is_error": True,
            "session_id": session,
            "total_cost_usd": 0.0,
        }
    )
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="phase_golem.agents.sim")
    parser.add_argument("--scenario", type=Path)
    args = parser.parse_args(argv)
    try:
        scenario = load_scenario(args.scenario)
        item = os.environ["PHASE_GOLEM_ITEM_ID"]
        phase = os.environ["PHASE_GOLEM_PHASE"]
        result_file = Path(os.environ["PHASE_GOLEM_RESULT_FILE"])
    except (ScenarioError, KeyError) as exc:
        sys.stderr.write(f"sim: {exc}\n")
        return 2
    run_id = os.environ.get("PHASE_GOLEM_RUN_ID", "run")
    attempt = int(os.environ.get("PHASE_GOLEM_ATTEMPT", "1"))
    title = os.environ.get("PHASE_GOLEM_ITEM_TITLE", "")
    # The project's state folder, also when the agent works in an item's worktree.
    state = Path(os.environ.get("PHASE_GOLEM_ROOT", ".")) / ".phase-golem"
    count = _count_invocation(state / "sim-state.json", f"{item}/{phase}")
    names = {"item": item, "phase": phase, "title": title, "run": run_id, "attempt": str(attempt)}
    rule = _fill(choose_rule(scenario, item, phase, title, attempt, count), names)
    session = f"sim-{run_id}"
    if rule.get("key_log"):
        # Before anything else, so an invocation killed mid-phase has still told the test.
        key = os.environ.get("PHASE_GOLEM_IDEMPOTENCY_KEY", "")
        _append_line(str(rule["key_log"]), f"{run_id} {item} {phase} {attempt} {key}")
    _emit({"type": "system", "subtype": "init", "session_id": session})
    time.sleep(float(rule.get("delay", 0)))
    if rule.get("behave"):
        return _misbehave(str(rule["behave"]), result_file, item, phase, session)
    if not _wait_for(rule.get("wait_before_write")):
        sys.stderr.write(f"sim: gave up waiting for {rule['wait_before_write']}\n")
        return 3
    for relative, content in (rule.get("write") or {}).items():
        target = Path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(str(content), encoding="utf-8")
    # `linger`: the files are there, the result is not yet (a crash can fall in between).
    time.sleep(float(rule.get("linger", 0)))
    if not _wait_for(rule.get("wait_for")):
        sys.stderr.write(f"sim: gave up waiting for {rule['wait_for']}\n")
        return 3
    if rule.get("side_effect_log"):
        _append_line(str(rule["side_effect_log"]), f"{item} {phase} {run_id}")
    _write_result(result_file, _result_body(rule, item, phase, count))
    cost = float(rule.get("cost", 0.01))
    _emit(
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "session_id": session,
            "total_cost_usd": cost,
            "usage": {"input_tokens": 1200, "output_tokens": 300},
        }
    )
    if rule.get("torn_stream"):
        # What an agent killed mid-write leaves: half a JSON line, no newline.
        sys.stdout.write('{"type": "assistant", "message": {"content": "half a li')
        sys.stdout.flush()
    return int(rule.get("exit_code", 0))


GATE_LIMIT_SECONDS = 900.0


def _wait_for(gates: str | list[str] | None) -> bool:
    """Hold, files written and result not, until every gate file exists: a test that
    creates them chooses the moment, however slow the machine is. A gate nobody opens
    gives up after a quarter of an hour, so a held agent never outlives its test for long."""
    paths = [Path(g) for g in ([gates] if isinstance(gates, str) else gates or [])]
    deadline = time.monotonic() + GATE_LIMIT_SECONDS
    while not all(path.exists() for path in paths):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _append_line(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as log:
        log.write(line + "\n")
        log.flush()
        os.fsync(log.fileno())


if __name__ == "__main__":
    sys.exit(main())
