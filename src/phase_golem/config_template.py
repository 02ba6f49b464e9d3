"""The commented `phase-golem.toml` that `phase-golem init` writes."""

from __future__ import annotations

_TEMPLATE = """\
# Phase Golem configuration. Every key is optional; the values shown are the defaults.
# A misspelt key is an error ("did you mean ..."); an unknown key in [project], [guardrails]
# or [execution] is ignored with a warning, as Phase Golem ignores it.

[project]
prefix = "{prefix}"            # item IDs look like {prefix}-001

[guardrails]
# Items above these thresholds after scoping are blocked for a human to look at.
max_size = "medium"         # small | medium | large (s/m/l)
max_complexity = "medium"   # low | medium | high (l/m/h)
max_risk = "low"            # low | medium | high

[execution]
phase_timeout_minutes = 30  # kill an agent after this long (fractions allowed)
max_retries = 2             # attempts = max_retries + 1
default_phase_cap = 100
max_wip = 1                 # items in_progress at once
max_concurrent = 1          # agents running at once
# isolation = "shared"      # shared (one working tree) | worktree (one per item, on its own
#                           # branch; the pipelines below then end with a merge phase)
# remote = "origin"         # the git remote item branches and merges go through when
#                           # workers in several clones share a PostgreSQL store
# lease_seconds = 60        # a run's claim, renewed while its agent lives; expired = crashed
# reconcile_timeout_seconds = 60   # how long a side-effect phase's reconcile command may take
# backoff = {{ base_seconds = 10, factor = 2, max_seconds = 600, max_transient = 5 }}
# wake = {{ min_seconds = 30, max_seconds = 86400 }}
# max_result_bytes = 1048576
# max_follow_ups = 20       # follow-ups one result may create; the rest are reported

# [agent]
# cli = "claude"            # claude | codex | opencode | command | sim
# model = "claude-sonnet-4-5"
# permission = "edit"       # read | edit | full
# command = "my-agent --prompt {{prompt_file}} --out {{result_file}}"   # for cli = "command"
# scenario = "sim-scenario.yaml"                                      # for cli = "sim"
# pass_env = ["NPM_TOKEN", "AWS_*"]   # more variables agents may see (each gets only its own
#                                     # credentials, PATH, HOME, locale, TERM, TMPDIR, ours)

# [redaction]
# env = ["CORP_*"]          # variables whose values are secrets too; those named ...KEY,
#                           # ...TOKEN, ...SECRET, ...PASSWORD, ...WEBHOOK and URLs with a
#                           # password always are: replaced by [REDACTED] wherever we write

# [storage]
# url = "sqlite:///.phase-golem/state.db"   # relative: inside the project; absolute:
#                                           # sqlite:////abs/path.db; or postgresql://…

# [budget]
# max_cost_usd_per_run = 5.0
# max_cost_usd_per_item = 20.0

# [[sources]]               # intake: items created on a schedule
# name = "inbox"
# inbox = "BACKLOG_INBOX.yaml"
# every = "10s"

# Pipelines: pre-phases run while an item is scoping, phases while it is in progress.
# Phase keys: name, workflows, is_destructive (required), staleness (ignore|warn|block),
# and per-phase agent, model, timeout_seconds, max_retries, side_effect, reconcile, approval.
# reconcile (side_effect phases): a command, no shell, run when the phase's outcome is unknown
# after a crash or timeout; {{item}} {{phase}} {{run_id}} {{branch}} {{key}} are filled in.
# Exit 0: it happened (the phase counts as complete), 1: it did not (retried), else: ask a human.
# "builtin:" workflows ship with phase-golem; other paths resolve against this file's folder.

[pipelines.feature]
pre_phases = [
    {{ name = "research", workflows = ["builtin:feature/research.md"], is_destructive = false }},
]
phases = [
    {{ name = "prd", workflows = ["builtin:feature/prd.md"], is_destructive = false }},
    {{ name = "design", workflows = ["builtin:feature/design.md"], is_destructive = false }},
    {{ name = "spec", workflows = ["builtin:feature/spec.md"], is_destructive = false }},
    {{ name = "build", workflows = ["builtin:feature/build.md"], is_destructive = true }},
    {{ name = "review", workflows = ["builtin:feature/review.md"], is_destructive = false }},
]

[pipelines.simple]
phases = [
    {{ name = "plan", workflows = ["builtin:simple/plan.md"], is_destructive = false }},
    {{ name = "build", workflows = ["builtin:simple/build.md"], is_destructive = true }},
    {{ name = "review", workflows = ["builtin:simple/review.md"], is_destructive = false }},
]
"""


def render_config_template(prefix: str) -> str:
    return _TEMPLATE.format(prefix=prefix)
