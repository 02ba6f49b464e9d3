"""phase-golem.toml: Phase Golem's keys, defaults and validation, plus ours."""

from __future__ import annotations

from pathlib import Path

import pytest

from phase_golem.config import (
    ConfigError,
    default_pipelines,
    load_config,
    parse_config_text,
    parse_duration,
    resolve_workflow_path,
)
from phase_golem.config_template import render_config_template
from phase_golem.domain.items import Level, Size
from phase_golem.domain.pipelines import (
    AgentCli,
    ApprovalGate,
    Isolation,
    Settings,
    Staleness,
)
from tests.conftest import fixture_path, upstream_path


def problems_of(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config_text(text, "phase-golem.toml")
    return str(caught.value)


def test_missing_file_means_defaults_and_both_pipelines(tmp_path: Path) -> None:
    loaded = load_config(tmp_path)
    assert loaded.path is None and loaded.base_dir == tmp_path
    settings = loaded.settings
    assert settings.project.prefix == "WRK"
    assert (settings.guardrails.max_size, settings.guardrails.max_risk) == (Size.MEDIUM, Level.LOW)
    execution = settings.execution
    assert (execution.phase_timeout_minutes, execution.max_retries) == (30, 2)
    assert (execution.max_wip, execution.max_concurrent, execution.default_phase_cap) == (1, 1, 100)
    assert settings.agent.cli is AgentCli.CLAUDE
    feature = settings.pipelines["feature"]
    assert [p.name for p in feature.pre_phases] == ["research"]
    assert [p.name for p in feature.phases] == ["prd", "design", "spec", "build", "review"]
    assert [p.name for p in feature.phases if p.is_destructive] == ["build"]
    assert [p.name for p in settings.pipelines["simple"].phases] == ["plan", "build", "review"]


def test_builtin_workflows_exist_for_every_default_phase(tmp_path: Path) -> None:
    for pipeline in default_pipelines().values():
        for phase in pipeline.pre_phases + pipeline.phases:
            for workflow in phase.workflows:
                path = resolve_workflow_path(workflow, tmp_path)
                assert path.is_file(), workflow
                assert len(path.read_text().splitlines()) >= 8
    assert resolve_workflow_path("wf/x.md", tmp_path) == tmp_path / "wf/x.md"


def test_a_phase_golem_style_config_loads_unchanged(tmp_path: Path) -> None:
    written = fixture_path("phase-golem.toml")
    loaded = load_config(tmp_path, written)
    assert loaded.base_dir == written.parent
    settings = loaded.settings
    assert settings.project.prefix == "OPS"
    assert (settings.guardrails.max_size, settings.guardrails.max_risk) == (
        Size.LARGE,
        Level.MEDIUM,
    )
    assert (settings.execution.max_wip, settings.execution.max_concurrent) == (2, 2)
    assert set(settings.pipelines) == {"feature", "hotfix"}
    feature = settings.pipelines["feature"]
    assert [p.name for p in feature.pre_phases] == ["research"]
    assert [(p.name, p.is_destructive) for p in feature.phases] == [
        ("prd", False),
        ("design", False),
        ("build", True),
        ("review", False),
    ]
    assert feature.phases[2].workflows == ("flows/build.md", "flows/style.md")
    assert [p.name for p in settings.pipelines["hotfix"].phases] == ["build"]


@pytest.mark.upstream
def test_phase_golem_example_loads_unchanged(tmp_path: Path) -> None:
    example = upstream_path("phase-golem.example.toml")
    loaded = load_config(tmp_path, example)
    assert loaded.base_dir == example.parent
    settings = loaded.settings
    assert settings.project.prefix == "WRK"
    assert set(settings.pipelines) == {"feature"}  # defaults only when none are defined
    feature = settings.pipelines["feature"]
    assert [p.name for p in feature.pre_phases] == ["research"]
    assert [(p.name, p.is_destructive) for p in feature.phases] == [
        ("prd", False),
        ("build", True),
        ("review", False),
    ]
    assert feature.phases[1].workflows == ("workflows/build.md",)


def test_template_written_by_init_loads_to_the_defaults() -> None:
    settings = parse_config_text(render_config_template("ABC"), "t.toml")
    assert settings.project.prefix == "ABC"
    assert dict(settings.pipelines) == default_pipelines()
    defaults = Settings(pipelines=settings.pipelines)
    assert settings.execution == defaults.execution
    assert settings.guardrails == defaults.guardrails


def test_abbreviations_and_case_in_guardrails() -> None:
    settings = parse_config_text(
        '[guardrails]\nmax_size = "L"\nmax_complexity = "h"\nmax_risk = "Medium"\n', "t"
    )
    assert settings.guardrails.max_size is Size.LARGE
    assert settings.guardrails.max_complexity is Level.HIGH
    assert settings.guardrails.max_risk is Level.MEDIUM


def test_destructive_alias_and_array_of_tables_form() -> None:
    settings = parse_config_text(
        "[[pipelines.p.phases]]\nname = 'a'\ndestructive = true\n"
        "[[pipelines.p.phases]]\nname = 'merge'\nis_destructive = false\nside_effect = true\n"
        "reconcile = 'git branch --merged main | grep -q x'\napproval = 'before'\n"
        "agent = 'command'\nmodel = 'gpt-5.1'\ntimeout_seconds = 90\nmax_retries = 0\n"
        "staleness = 'warn'\n",
        "t",
    )
    first, merge = settings.pipelines["p"].phases
    assert first.is_destructive
    assert merge.side_effect and merge.approval is ApprovalGate.BEFORE
    assert merge.agent is AgentCli.COMMAND and merge.model == "gpt-5.1"
    assert (merge.timeout_seconds, merge.max_retries, merge.staleness) == (90, 0, Staleness.WARN)


def test_missing_is_destructive_is_named() -> None:
    message = problems_of("[pipelines.p]\nphases = [{ name = 'a' }]\n")
    assert "pipelines.p.phases[0].is_destructive: required" in message


def test_unknown_keys_rejected_in_agent_and_phases_but_ignored_elsewhere() -> None:
    message = problems_of(
        "[agent]\nshoe = 1\n[pipelines.p]\n"
        "phases = [{ name = 'a', is_destructive = false, x = 1 }]\n"
    )
    assert "agent.shoe: unknown key" in message
    assert "pipelines.p.phases[0].x: unknown key" in message
    settings = parse_config_text(
        "[project]\nbacklog_path = 'B.yaml'\nwhatever = 1\n[execution]\nnew_knob = 3\n"
        "[guardrails]\nmore = 1\n",
        "t",
    )
    assert settings.project.backlog_path == "B.yaml"


def test_every_problem_is_reported_together() -> None:
    message = problems_of(
        "[execution]\nmax_wip = 0\nmax_concurrent = 0\n"
        "[agent]\nmodel = '-rm'\n"
        "[pipelines.a]\npre_phases = [{ name = 'x', is_destructive = true }]\n"
        "phases = [{ name = 'x', is_destructive = false }]\n"
        "[pipelines.b]\npre_phases = []\n"
    )
    assert message.startswith("phase-golem.toml: 6 problems: ")
    assert "\n" not in message
    for needle in (
        "execution.max_wip: must be at least 1",
        "execution.max_concurrent: must be at least 1",
        "agent.model",
        "pipelines.a: phase name 'x' is used twice",
        "'x' is destructive; pre-phases must not be",
        "pipelines.b: needs at least one main phase",
    ):
        assert needle in message


def test_staleness_block_needs_max_wip_one() -> None:
    text = "[pipelines.p]\nphases = [{ name = 'b', is_destructive = true, staleness = 'block' }]\n"
    parse_config_text(text, "t")
    message = problems_of("[execution]\nmax_wip = 2\n" + text)
    assert 'staleness = "block"' in message and "max_wip > 1" in message


@pytest.mark.parametrize(
    ("model", "ok"),
    [
        ("claude-sonnet-4-5", True),
        ("openai/gpt-5.1", True),
        ("  ", True),
        ("-x", False),
        ("a b", False),
        ("x;rm", False),
    ],
)
def test_model_allow_list(model: str, ok: bool) -> None:
    text = f"[agent]\nmodel = '{model}'\n"
    if ok:
        value = parse_config_text(text, "t").agent.model
        assert value == (model.strip() or None)
    else:
        assert "agent.model" in problems_of(text)


def test_our_additions_are_validated() -> None:
    settings = parse_config_text(
        "[storage]\nurl = 'postgresql://u@h/db'\n[execution]\nisolation = 'worktree'\n"
        "backoff = { base_seconds = 5, max_seconds = 60 }\nwake = { min_seconds = 1 }\n"
        "[budget]\nmax_cost_usd_per_run = 2.5\n"
        "[agent]\ncli = 'sim'\nscenario = 's.yaml'\n"
        "[[sources]]\nname = 'inbox'\ninbox = 'BACKLOG_INBOX.yaml'\nevery = '1m30s'\n"
        "[[sources]]\nname = 'gh'\ncommand = 'x.sh'\ncron = '*/15 * * * 1-5'\n",
        "t",
    )
    assert settings.execution.isolation is Isolation.WORKTREE
    assert settings.execution.backoff.base_seconds == 5
    assert settings.budget.max_cost_usd_per_run == 2.5
    assert settings.sources[0].every_seconds == 90
    assert settings.sources[1].cron == "*/15 * * * 1-5"
    message = problems_of(
        "[storage]\nurl = 'mysql://x'\n[execution]\nisolation = 'vm'\n"
        "backoff = { base_seconds = 50, max_seconds = 10, jitter = 1 }\n"
        "[agent]\ncli = 'command'\n"
        "[[sources]]\nname = 'a'\nevery = 'soon'\n"
        "[[sources]]\nname = 'b'\ninbox = 'x'\ncommand = 'y'\ncron = '* * *'\n"
    )
    for needle in (
        "storage.url",
        "execution.isolation: 'vm' is not one of shared, worktree",
        "execution.backoff.jitter: unknown key",
        "agent.command: required",
        "sources[0]: give exactly one of `inbox` or `command`",
        "sources[0].every: invalid duration 'soon'",
        "sources[1]: give exactly one of `inbox` or `command`",
        "sources[1].cron: cron '* * *' must have 5 fields",
    ):
        assert needle in message, needle


@pytest.mark.parametrize(
    ("text", "seconds"), [("10s", 10), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("7", 7)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "phase-golem.toml").write_text("[execution]\nmax_wip = \n")
    with pytest.raises(ConfigError, match=r"phase-golem.toml: invalid TOML: .*line 2"):
        load_config(tmp_path)


def test_explicit_config_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path, tmp_path / "nope.toml")


def test_wrong_types_are_reported_with_their_key() -> None:
    message = problems_of("[execution]\nmax_retries = 'many'\nphase_timeout_minutes = -1\n")
    assert "execution.max_retries" in message
    assert "execution.phase_timeout_minutes" in message


def test_worktree_isolation_with_a_pipeline_without_merge_names_the_pipeline() -> None:
    text = (
        '[execution]\nisolation = "worktree"\n\n[pipelines.mine]\n'
        'phases = [{ name = "build", is_destructive = true }]\n'
    )
    problem = problems_of(text)
    assert 'pipelines.mine: isolation = "worktree" needs a last phase that merges' in problem
    assert 'agent = "merge"' in problem


def test_the_templates_commented_isolation_line_gives_pipelines_that_merge() -> None:
    # What a user does: uncomment the line in the file `init` wrote.
    text = render_config_template("WRK").replace(
        '# isolation = "shared"', 'isolation = "worktree"', 1
    )
    settings = parse_config_text(text, "phase-golem.toml")
    assert settings.execution.isolation is Isolation.WORKTREE
    for pipeline in settings.pipelines.values():
        assert pipeline.phases[-1].agent is AgentCli.MERGE, pipeline.name


def test_serve_public_url_links_notifications_and_must_be_an_http_url() -> None:
    text = '[serve]\npublic_url = "https://golem.example/"\n'
    assert parse_config_text(text, "t.toml").serve.public_url == "https://golem.example"
    for bad in ("golem.example", "ftp://golem.example", "https://golem.example/?a=1"):
        message = problems_of(f'[serve]\npublic_url = "{bad}"\n')
        assert "serve.public_url" in message and bad in message, bad


def test_the_shared_remote_defaults_to_origin_on_postgresql_and_is_checked() -> None:
    sqlite = parse_config_text("[execution]\n", "phase-golem.toml")
    assert sqlite.execution.remote is None  # one clone: nothing to share through
    shared = '[storage]\nurl = "postgresql://u@db/x"\n'
    assert parse_config_text(shared, "t.toml").execution.remote == "origin"
    named = parse_config_text(shared + '[execution]\nremote = "team"\n', "t.toml")
    assert named.execution.remote == "team"
    assert "execution.remote" in problems_of('[execution]\nremote = "../elsewhere"\n')
