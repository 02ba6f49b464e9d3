"""The shape of `phase-golem.toml` as pydantic models (parsing only; rules are in config.py).

Phase Golem ignores unknown keys in [project], [guardrails] and [execution] and rejects
them in [agent] and phase tables; our own new tables reject unknown keys too.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from phase_golem.domain.errors import ParseError
from phase_golem.domain.items import Level, Size


def _size(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return Size.parse(value, what="size")
        except ParseError as exc:
            raise ValueError(str(exc)) from None
    return value


def _level(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return Level.parse(value, what="level")
        except ParseError as exc:
            raise ValueError(str(exc)) from None
    return value


class Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProjectSection(Lenient):
    prefix: str = "WRK"
    backlog_path: str | None = None


class GuardrailsSection(Lenient):
    max_size: Size = Size.MEDIUM
    max_complexity: Level = Level.MEDIUM
    max_risk: Level = Level.LOW

    _size = field_validator("max_size", mode="before")(_size)
    _levels = field_validator("max_complexity", "max_risk", mode="before")(_level)


class BackoffSection(Strict):
    base_seconds: Annotated[float, Field(gt=0)] = 10.0
    factor: Annotated[float, Field(ge=1)] = 2.0
    max_seconds: Annotated[float, Field(gt=0)] = 600.0
    max_transient: Annotated[int, Field(ge=1)] = 5


class WakeSection(Strict):
    min_seconds: Annotated[float, Field(ge=0)] = 30.0
    max_seconds: Annotated[float, Field(gt=0)] = 86400.0


class ExecutionSection(Lenient):
    phase_timeout_minutes: Annotated[float, Field(gt=0)] = 30.0
    max_retries: Annotated[int, Field(ge=0)] = 2
    default_phase_cap: Annotated[int, Field(ge=1)] = 100
    max_wip: int = 1
    max_concurrent: int = 1
    isolation: str = "shared"
    merge_strategy: str = "merge-commit"
    lease_seconds: Annotated[float, Field(gt=0)] = 60.0
    reconcile_timeout_seconds: Annotated[float, Field(gt=0)] = 60.0
    backoff: BackoffSection = BackoffSection()
    wake: WakeSection = WakeSection()
    max_result_bytes: Annotated[int, Field(ge=1024)] = 1_048_576
    max_triage_attempts: Annotated[int, Field(ge=1)] = 3


class AgentSection(Strict):
    cli: str = "claude"
    model: str | None = None
    command: str | None = None
    scenario: str | None = None
    permission: str = "edit"


class PhaseTable(Strict):
    name: str
    workflows: list[str] = []
    is_destructive: bool = Field(validation_alias=AliasChoices("is_destructive", "destructive"))
    staleness: str = "ignore"
    side_effect: bool = False
    reconcile: str | None = None
    approval: str = "none"
    agent: str | None = None
    model: str | None = None
    timeout_seconds: Annotated[float, Field(gt=0)] | None = None
    max_retries: Annotated[int, Field(ge=0)] | None = None


class PipelineTable(Strict):
    pre_phases: list[PhaseTable] = []
    phases: list[PhaseTable] = []


class StorageSection(Strict):
    url: str = "sqlite:///.phase-golem/state.db"


class BudgetSection(Strict):
    max_cost_usd_per_run: Annotated[float, Field(gt=0)] | None = None
    max_cost_usd_per_item: Annotated[float, Field(gt=0)] | None = None


class SourceTable(Strict):
    name: str
    inbox: str | None = None
    command: str | None = None
    every: str | float | None = None
    cron: str | None = None


class ConfigFile(Lenient):
    project: ProjectSection = ProjectSection()
    guardrails: GuardrailsSection = GuardrailsSection()
    execution: ExecutionSection = ExecutionSection()
    agent: AgentSection = AgentSection()
    pipelines: dict[str, PipelineTable] = {}
    storage: StorageSection = StorageSection()
    budget: BudgetSection = BudgetSection()
    sources: list[SourceTable] = []
