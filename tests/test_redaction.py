"""Redaction (domain/redaction.py), which variables are secrets (secrets.py), and what an
agent inherits (agents/environment.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phase_golem.agents.environment import agent_base_environment
from phase_golem.domain.redaction import (
    REDACTED,
    forget_secret_values,
    redact,
    redact_text,
    register_secret_values,
)
from phase_golem.secrets import name_looks_secret, register_environment_secrets, secret_values

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SHAPES = {
    "anthropic": "sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
    "openai": "sk-proj-ABCDEFGHIJKLMNOPQRSTUV",
    "github": "ghp_abcdefghijklmnopqrstuvwxyz0123",
    "github_pat": "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
    "gitlab": "glpat-abcdefghijklmnopqrst",
    "npm": "npm_" + "a1B2c3D4e5" * 3 + "abcdef",
    "aws_id": "AKIAIOSFODNN7EXAMPLE",
    "slack_token": "xoxb-123456789012-abcdefghij",
    "stripe": "sk_live_abcdefghijklmnop1234",
    "google": "AIza" + "B" * 35,
    "hf": "hf_" + "c" * 34,
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
    "slack_webhook": "https://hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX",
    "discord_webhook": "https://discord.com/api/webhooks/123456789/abcdefghijklmnopqrstuvwx",
}


@pytest.fixture(autouse=True)
def empty_registry() -> Iterator[None]:
    forget_secret_values()
    yield
    forget_secret_values()


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_every_known_token_shape_is_redacted_inside_text(name: str) -> None:
    secret = SHAPES[name]
    out = redact_text(f"before {secret} after")
    assert secret not in out and REDACTED in out
    assert out.startswith("before ") and out.endswith(" after")


def test_assignments_urls_headers_and_private_keys() -> None:
    text = (
        'AWS_SECRET_ACCESS_KEY=abcd1234efgh "api_key": "zzzzzz" password: hunter22\n'
        "postgres://user:s3cret@db.example/x Authorization: Bearer abcdefghijklmnopqrstu\n"
        "Authorization: Basic dXNlcjpwYXNzd29yZA==\n"
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n"
    )
    out = redact_text(text)
    for secret in ("abcd1234efgh", "zzzzzz", "hunter22", "s3cret", "abcdefghijklmnopqrstu"):
        assert secret not in out, secret
    assert "dXNlcjpwYXNzd29yZA" not in out and "MIIEpAIBAAKCAQEA" not in out
    assert "postgres://user:[REDACTED]@db.example/x" in out  # the URL stays readable


def test_a_private_key_without_its_end_line_is_still_redacted() -> None:
    out = redact_text("log\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n\nafter\n")
    assert "b3BlbnNzaC1rZXk" not in out and out.startswith("log\n") and "after" in out


def test_registered_values_are_replaced_in_any_shape_and_json_escaped() -> None:
    register_secret_values(["plain-but-secret-1", 'quote"d\\value', "short"])
    out = redact_text('x plain-but-secret-1y {"v": "quote\\"d\\\\value"} short')
    assert "plain-but-secret-1" not in out and 'quote\\"d' not in out
    assert out.endswith(" short"), "values under the minimum length are not registered"


@settings(max_examples=200)
@given(
    before=st.text(max_size=40),
    after=st.text(max_size=40),
    secret=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=8),
)
def test_a_registered_value_never_survives_whatever_surrounds_it(
    before: str, after: str, secret: str
) -> None:
    forget_secret_values()
    register_secret_values([secret])
    assert secret not in redact_text(before + secret + after)


@settings(max_examples=200)
@given(st.text(max_size=200))
def test_redaction_is_idempotent(text: str) -> None:
    once = redact_text(text)
    assert redact_text(once) == once


def test_mappings_lose_values_of_secret_looking_keys() -> None:
    register_secret_values(["registered-secret-value"])
    data = {"api_key": "plain", "nested": [{"note": "has registered-secret-value"}], "n": 3}
    assert redact(data) == {"api_key": REDACTED, "nested": [{"note": f"has {REDACTED}"}], "n": 3}


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("AWS_SECRET_ACCESS_KEY", True),
        ("NPM_TOKEN", True),
        ("SLACK_WEBHOOK_URL", True),
        ("GITHUB_PAT", True),
        ("DB_PASSWORD", True),
        ("MYAPITOKEN", True),
        ("SENTRY_DSN", True),
        ("PATH", False),
        ("PWD", False),
        ("HOME", False),
        ("KEYBOARD_LAYOUT", False),
        ("PHASE_GOLEM_IDEMPOTENCY_KEY", False),
    ],
)
def test_which_variable_names_say_secret(name: str, secret: bool) -> None:
    assert name_looks_secret(name) is secret


def test_secret_values_come_from_names_credential_urls_and_the_configured_list() -> None:
    environ = {
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "DATABASE_URL": "postgres://app:pa55word@db:5432/app",
        "CORP_LICENSE": "LIC-0000-1111-2222",
        "HOME": "/home/me",
        "EMPTY_TOKEN": "",
    }
    values = secret_values(environ, ["CORP_*"])
    assert AWS_SECRET in values and "LIC-0000-1111-2222" in values
    assert "postgres://app:pa55word@db:5432/app" in values and "pa55word" in values
    assert "/home/me" not in values
    assert register_environment_secrets(environ, ["CORP_*"]) == len(values)
    out = redact_text(f"{AWS_SECRET} LIC-0000-1111-2222 pa55word /home/me")
    assert out == f"{REDACTED} {REDACTED} {REDACTED} /home/me"


def test_an_agent_inherits_only_what_it_needs_plus_pass_env() -> None:
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/home/me",
        "LC_ALL": "C.UTF-8",
        "ANTHROPIC_API_KEY": "sk-ant-x",
        "OPENAI_API_KEY": "sk-proj-x",
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "AWS_REGION": "eu-west-1",
        "NPM_TOKEN": "npm_x",
        "PHASE_GOLEM_RUN_ID": "run-000009",  # ours are set per run, never inherited
    }
    claude = agent_base_environment(environ, "claude")
    assert set(claude) == {"PATH", "HOME", "LC_ALL", "ANTHROPIC_API_KEY"}
    codex = agent_base_environment(environ, "codex")
    assert "OPENAI_API_KEY" in codex and "ANTHROPIC_API_KEY" not in codex
    command = agent_base_environment(environ, "command", ("NPM_TOKEN", "AWS_*"))
    assert set(command) == {
        "PATH",
        "HOME",
        "LC_ALL",
        "NPM_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
    }
