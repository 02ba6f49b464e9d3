"""What an agent finds in its environment: what it needs, and not our other secrets.

An agent runs with full access to its working tree; it should not also hold every token
of the shell that started `phase-golem run`. By default it receives:

- the basics every program expects: PATH, HOME, USER, SHELL, locale (LANG, LC_*), TERM,
  TMPDIR, TZ, XDG directories, proxy and CA-certificate settings;
- its own credentials and settings: `claude` ANTHROPIC_* and CLAUDE_*; `codex` OPENAI_*
  and CODEX_*; `opencode` OPENCODE_* and the providers it speaks to; our own `sim` and
  `merge` agents the PYTHON* and GIT_* settings they run with;
- our PHASE_GOLEM_* variables for this run;
- anything `[agent] pass_env` names (`["NPM_TOKEN", "AWS_*"]`; globs work) — a `command`
  agent gets exactly the basics plus these.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from phase_golem.secrets import matches_any

BASE_NAMES: tuple[str, ...] = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TERM",
    "COLORTERM",
    "NO_COLOR",
    "TMPDIR",
    "TMP",
    "TEMP",
    "TZ",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "XDG_STATE_HOME",
    "XDG_RUNTIME_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "NODE_EXTRA_CA_CERTS",
)
_OURS_IN_PYTHON = ("PYTHONPATH", "PYTHONHOME", "PYTHONSAFEPATH", "VIRTUAL_ENV")
_GIT = ("GIT_AUTHOR_*", "GIT_COMMITTER_*", "GIT_CONFIG_*", "EMAIL")
AGENT_NAMES: Mapping[str, tuple[str, ...]] = {
    "claude": ("ANTHROPIC_*", "CLAUDE_*"),
    "codex": ("OPENAI_*", "CODEX_*"),
    "opencode": (
        "OPENCODE_*",
        "ANTHROPIC_*",
        "OPENAI_*",
        "OPENROUTER_*",
        "GEMINI_API_KEY",
        "GOOGLE_GENERATIVE_AI_API_KEY",
        "GROQ_API_KEY",
        "MISTRAL_API_KEY",
        "XAI_API_KEY",
    ),
    "sim": _OURS_IN_PYTHON,
    "merge": _OURS_IN_PYTHON + _GIT,
    "command": (),
}
OWN_PREFIX = "PHASE_GOLEM_"


def agent_base_environment(
    environ: Mapping[str, str], agent: str, pass_env: Iterable[str] = ()
) -> dict[str, str]:
    """The inherited part of an agent's environment (ours is added per run)."""
    allowed = (*BASE_NAMES, *AGENT_NAMES.get(agent, ()), *pass_env)
    return {
        name: value
        for name, value in environ.items()
        if not name.startswith(OWN_PREFIX) and matches_any(name, allowed)
    }
