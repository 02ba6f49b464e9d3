"""Hostile and mistaken configs (config.py, config_checks.py): one clear message per problem,
all at once; misspelt keys get a "did you mean"; nothing absurd gets through."""

from __future__ import annotations

import os
import threading
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phase_golem.config import (
    ConfigError,
    load_config,
    parse_config,
    parse_config_text,
    parse_duration,
    resolve_workflow_path,
)
from tests.conftest import own_and_upstream

PIPELINE = "[pipelines.p]\nphases = [{ name = 'a', is_destructive = false }]\n"


def problems_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config_text(text, "phase-golem.toml")
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_misspelt_keys_and_tables_are_rejected_with_did_you_mean_all_at_once() -> None:
    message = problems_of(
        "[exection]\nmax_wip = 2\n[execution]\nmax_retires = 5\n"
        "[agent]\nscenaro = 's.yaml'\n[pipelines.p]\n"
        "phases = [{ name = 'a', is_destrutive = false }]\n"
    )
    assert "4 problems" in message or "5 problems" in message, message
    for needle in (
        "exection: unknown key (did you mean 'execution'?)",
        "execution.max_retires: unknown key (did you mean 'max_retries'?)",
        "agent.scenaro: unknown key (did you mean 'scenario'?)",
        "pipelines.p.phases[0].is_destrutive: unknown key (did you mean 'is_destructive'?)",
    ):
        assert needle in message, needle


def test_unknown_keys_in_phase_golems_own_tables_warn_one_line_each() -> None:
    settings, warnings = parse_config(
        "[project]\nprefix = 'WRK'\nowner = 'me'\n[execution]\nnightly = true\n"
        "[guardrails]\ncolour = 'red'\n[retired_section]\nx = 1\n",
        "phase-golem.toml",
    )
    assert settings.project.prefix == "WRK"
    assert warnings == (
        "phase-golem.toml: project.owner: unknown key, ignored",
        "phase-golem.toml: execution.nightly: unknown key, ignored",
        "phase-golem.toml: guardrails.colour: unknown key, ignored",
        "phase-golem.toml: retired_section: unknown key, ignored",
    )


@pytest.mark.parametrize(
    "example", own_and_upstream("phase-golem.toml", "phase-golem.example.toml")
)
def test_the_phase_golem_example_config_loads_without_a_warning(example: Path) -> None:
    text = example.read_text(encoding="utf-8")
    _, warnings = parse_config(text, example.name)
    assert warnings == ()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[execution]\nlease_seconds = inf\n", "execution.lease_seconds: Input should be a finite"),
        ("[execution]\nlease_seconds = 1e15\n", "execution.lease_seconds: Input should be less"),
        ("[execution]\nmax_wip = 1000000000000000000\n", "execution.max_wip"),
        ("[execution]\nmax_result_bytes = 9223372036854775807\n", "execution.max_result_bytes"),
        ("[execution.wake]\nmax_seconds = 1e30\n", "execution.wake.max_seconds"),
        ("[execution.backoff]\nfactor = nan\n", "execution.backoff.factor"),
        ("[budget]\nmax_cost_usd_per_item = inf\n", "budget.max_cost_usd_per_item"),
        ("[execution]\nphase_timeout_minutes = 1e300\n", "execution.phase_timeout_minutes"),
        ("[execution]\nmax_follow_ups = -1\n", "execution.max_follow_ups"),
        (
            "[[sources]]\nname = 'a'\ninbox = 'x'\nevery = nan\n",
            "sources[0].every.float: Input should be a finite number",
        ),
        ("[[sources]]\nname = 'a'\ninbox = 'x'\nevery = '9999999d'\n", "longer than a year"),
        ('[project]\nprefix = "WRK\\n"\n', "project.prefix: 'WRK\\\\n' may use only"),
        ("[project]\nprefix = 'W-" + "X" * 40 + "'\n", "project.prefix"),
        ('[agent]\nmodel = "opus\\u001b[2J"\n', "agent.model: 'opus\\\\x1b[2J'"),
        ('[agent]\nscenario = "s\\u0000.yaml"\n', "agent.scenario: 's\\\\x00.yaml' contains a NUL"),
        (
            "[agent]\ncli = 'command'\ncommand = 'run {prompt_file} {result_fille}'\n",
            "agent.command: unknown placeholder {result_fille} (known: {prompt_file}",
        ),
        ("[agent]\npass_env = ['OK_*', 'BAD NAME']\n", "agent.pass_env[1]: String should match"),
        ("[redaction]\nenv = ['']\n", "redaction.env[0]"),
        ("[storage]\nurl = 'sqlite:///file::memory:?cache=shared'\n", "in-memory databases"),
        ('[storage]\nurl = "sqlite:///a\\u0000b.db"\n', "storage.url: 'sqlite:///a\\\\x00b.db'"),
        ("[pipelines.\"a/b\"]\nphases = [{ name = 'x', is_destructive = false }]\n", "a/b"),
        (
            "[pipelines.p]\nphases = [{ name = 'triage', is_destructive = false }]\n",
            "pipelines.p.phases[0].name: 'triage' is the built-in phase",
        ),
        (
            '[pipelines.p]\nphases = [{ name = "bu\\nild", is_destructive = false }]\n',
            "pipelines.p.phases[0].name: 'bu\\\\nild' may use only",
        ),
        (
            "[pipelines.p]\nphases = [{ name = 'a', is_destructive = false, "
            "workflows = ['builtin:../../../etc/passwd'] }]\n",
            "must name a file under the built-in workflows",
        ),
        (
            "[pipelines.p]\nphases = [{ name = 'a', is_destructive = false, side_effect = true, "
            "reconcile = 'check {item} {brnch}' }]\n",
            "unknown placeholder {brnch}",
        ),
        ("[[sources]]\nname = '../x'\ninbox = 'x'\nevery = '1m'\n", "sources[0].name"),
    ],
)
def test_absurd_or_unsafe_values_are_rejected_naming_the_key(text: str, needle: str) -> None:
    message = problems_of(text)
    assert needle in message, message
    assert "\x1b" not in message and "\x00" not in message


def test_builtin_paths_cannot_climb_out_even_when_resolved_directly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="built-in workflows"):
        resolve_workflow_path("builtin:../../../etc/passwd", tmp_path)
    assert resolve_workflow_path("builtin:simple/plan.md", tmp_path).is_file()


def test_durations_must_be_finite_and_within_a_year() -> None:
    for bad in (float("nan"), float("inf"), 1e30, "nan", "0s", "-5"):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert parse_duration("365d") == 365 * 86400


def _project(tmp_path: Path, config: str) -> Path:
    (tmp_path / "phase-golem.toml").write_text(config, encoding="utf-8")
    return tmp_path


def test_the_store_must_stay_in_the_project_unless_given_as_absolute(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    for url, needle in (
        ("sqlite:///../outside.db", "leaves the project"),
        ("sqlite:///.phase-golem/../../x.db", "leaves the project"),
        ("sqlite:///.", "names a directory"),
    ):
        _project(root, f"[storage]\nurl = '{url}'\n")
        with pytest.raises(ConfigError, match=needle):
            load_config(root)
    absolute = tmp_path / "elsewhere.db"
    _project(root, f"[storage]\nurl = 'sqlite:///{absolute}'\n")
    assert load_config(root).settings.storage.url == f"sqlite:///{absolute}"
    assert not (tmp_path / "outside.db").exists()


def _load_in_thread(root: Path, config: Path) -> BaseException | None:
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            load_config(root, config)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive(), "reading the config blocked"
    return outcome[0]


def test_a_config_that_is_a_fifo_or_never_ends_is_refused_without_blocking(
    tmp_path: Path,
) -> None:
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    for config, needle in ((fifo, "FIFO"), (Path("/dev/zero"), "character device")):
        error = _load_in_thread(tmp_path, config)
        assert isinstance(error, ConfigError) and needle in str(error), error
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (2 << 20), encoding="utf-8")
    error = _load_in_thread(tmp_path, big)
    assert isinstance(error, ConfigError) and "byte limit" in str(error)


TOML_KEYS = {
    "execution": [
        "max_wip",
        "max_concurrent",
        "lease_seconds",
        "max_retries",
        "max_result_bytes",
        "phase_timeout_minutes",
        "max_follow_ups",
        "isolation",
    ],
    "agent": ["cli", "model", "command", "scenario", "pass_env"],
    "project": ["prefix"],
    "budget": ["max_cost_usd_per_run"],
    "storage": ["url"],
}
VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.booleans(),
    st.lists(st.text(max_size=5), max_size=3),
)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(value), repr(value))
    if isinstance(value, str):
        return '"' + "".join(f"\\u{ord(c):04x}" if not c.isalnum() else c for c in value) + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return str(value)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(sorted(TOML_KEYS)), st.integers(min_value=0, max_value=10), VALUES
        ),
        max_size=6,
    )
)
def test_any_config_either_loads_or_is_one_config_error(
    entries: list[tuple[str, int, object]],
) -> None:
    tables: dict[str, dict[str, str]] = {}
    for table, index, value in entries:
        keys = TOML_KEYS[table]
        tables.setdefault(table, {})[keys[index % len(keys)]] = _toml_value(value)
    text = "".join(
        f"[{table}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items())
        for table, keys in tables.items()
    )
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return  # not TOML at all: a different, tested, error
    try:
        parsed = parse_config_text(text, "t.toml")
    except ConfigError as error:
        assert "\n" not in str(error)
        return
    execution = parsed.execution
    assert 1 <= execution.max_wip <= 10_000 and 0 < execution.lease_seconds <= 86400
    assert 1024 <= execution.max_result_bytes <= 256 << 20


def test_a_pipeline_named_like_a_path_is_refused_before_anything_uses_it() -> None:
    message = problems_of(PIPELINE.replace("[pipelines.p]", '[pipelines."../x"]'))
    assert "pipelines.../x: '../x' may use only" in message
