"""The plain, immutable settings the rules take as arguments.

`config.py` builds these from `phase-golem.toml`; the domain never reads files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from phase_golem.domain.guardrails import Guardrails
from phase_golem.domain.items import PhasePool
from phase_golem.domain.notifications import NotifySink
from phase_golem.domain.sources import SourceConfig


class Staleness(StrEnum):
    IGNORE = "ignore"
    WARN = "warn"
    BLOCK = "block"


class ApprovalGate(StrEnum):
    NONE = "none"
    BEFORE = "before"
    AFTER = "after"


class Isolation(StrEnum):
    SHARED = "shared"
    WORKTREE = "worktree"


class AgentCli(StrEnum):
    CLAUDE = "claude"
    CODEX = "codex"
    OPENCODE = "opencode"
    COMMAND = "command"
    SIM = "sim"
    MERGE = "merge"  # built in: merges an item's branch (worktree isolation)


class Permission(StrEnum):
    READ = "read"
    EDIT = "edit"
    FULL = "full"


class MergeStrategy(StrEnum):
    FAST_FORWARD = "fast-forward"
    MERGE_COMMIT = "merge-commit"


@dataclass(frozen=True, slots=True)
class PhaseConfig:
    name: str
    is_destructive: bool
    workflows: tuple[str, ...] = ()
    staleness: Staleness = Staleness.IGNORE
    # Ours (DESIGN §5): per-phase overrides and the side-effect / approval controls.
    side_effect: bool = False
    reconcile: str | None = None
    approval: ApprovalGate = ApprovalGate.NONE
    agent: AgentCli | None = None
    model: str | None = None
    timeout_seconds: float | None = None
    max_retries: int | None = None


@dataclass(frozen=True, slots=True)
class PhasePosition:
    pool: PhasePool
    index: int
    phase: PhaseConfig


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    name: str
    phases: tuple[PhaseConfig, ...]
    pre_phases: tuple[PhaseConfig, ...] = ()

    def phases_in(self, pool: PhasePool) -> tuple[PhaseConfig, ...]:
        return self.pre_phases if pool is PhasePool.PRE else self.phases

    def locate(self, name: str, pool: PhasePool | None = None) -> PhasePosition | None:
        """Find a phase by name, in the given pool or (when None) pre first, then main."""
        pools = (pool,) if pool is not None else (PhasePool.PRE, PhasePool.MAIN)
        for candidate in pools:
            for index, phase in enumerate(self.phases_in(candidate)):
                if phase.name == name:
                    return PhasePosition(candidate, index, phase)
        return None

    def next_phase(self, pool: PhasePool, name: str) -> PhaseConfig | None:
        """The phase after `name` in the same pool, or None when `name` is the last."""
        phases = self.phases_in(pool)
        for index, phase in enumerate(phases):
            if phase.name == name:
                return phases[index + 1] if index + 1 < len(phases) else None
        return None

    def order_index(self, pool: PhasePool, name: str) -> int | None:
        """Progress rank used by advance-furthest-first: pre index, or len(pre) + main index."""
        position = self.locate(name, pool)
        if position is None:
            return None
        if pool is PhasePool.PRE:
            return position.index
        return len(self.pre_phases) + position.index

    @property
    def phase_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.pre_phases + self.phases)


@dataclass(frozen=True, slots=True)
class BackoffConfig:
    base_seconds: float = 10.0
    factor: float = 2.0
    max_seconds: float = 600.0
    max_transient: int = 5


@dataclass(frozen=True, slots=True)
class WakeConfig:
    min_seconds: float = 30.0
    max_seconds: float = 86400.0


@dataclass(frozen=True, slots=True)
class ExecutionConfig:
    phase_timeout_minutes: float = 30.0
    max_retries: int = 2
    default_phase_cap: int = 100
    max_wip: int = 1
    max_concurrent: int = 1
    isolation: Isolation = Isolation.SHARED
    merge_strategy: MergeStrategy = MergeStrategy.MERGE_COMMIT
    lease_seconds: float = 60.0
    reconcile_timeout_seconds: float = 60.0
    backoff: BackoffConfig = field(default_factory=BackoffConfig)
    wake: WakeConfig = field(default_factory=WakeConfig)
    max_result_bytes: int = 1_048_576
    max_triage_attempts: int = 3
    max_follow_ups: int = 20
    # The git remote workers on several machines share item branches through (DESIGN §14).
    remote: str | None = None


@dataclass(frozen=True, slots=True)
class AgentConfig:
    cli: AgentCli = AgentCli.CLAUDE
    model: str | None = None
    command: str | None = None
    scenario: str | None = None
    permission: Permission = Permission.EDIT
    pass_env: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BudgetConfig:
    max_cost_usd_per_run: float | None = None
    max_cost_usd_per_item: float | None = None


@dataclass(frozen=True, slots=True)
class RedactionConfig:
    env: tuple[str, ...] = ()  # more variables whose values are secrets


@dataclass(frozen=True, slots=True)
class ServeConfig:
    metrics_public: bool = False  # /metrics and /api/v1/state readable without the token
    public_url: str | None = None  # the dashboard's address, for links in notifications


@dataclass(frozen=True, slots=True)
class StorageConfig:
    url: str = "sqlite:///.phase-golem/state.db"

    @property
    def is_shared(self) -> bool:
        """A database workers in other clones and on other hosts use too (PostgreSQL)."""
        return self.url.startswith(("postgresql://", "postgres://"))


@dataclass(frozen=True, slots=True)
class ProjectConfig:
    prefix: str = "WRK"
    backlog_path: str | None = None


def _frozen_pipelines(
    pipelines: Mapping[str, PipelineConfig],
) -> Mapping[str, PipelineConfig]:
    return MappingProxyType(dict(pipelines))


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the rules need, in one immutable value."""

    project: ProjectConfig = field(default_factory=ProjectConfig)
    guardrails: Guardrails = field(default_factory=Guardrails)
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    pipelines: Mapping[str, PipelineConfig] = field(default_factory=lambda: _frozen_pipelines({}))
    storage: StorageConfig = field(default_factory=StorageConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    sources: tuple[SourceConfig, ...] = ()
    redaction: RedactionConfig = field(default_factory=RedactionConfig)
    notify: tuple[NotifySink, ...] = ()
    serve: ServeConfig = field(default_factory=ServeConfig)

    def pipeline(self, name: str | None) -> PipelineConfig | None:
        return self.pipelines.get(name or "feature")
