"""The agent contract (DESIGN §6): the JSON result an agent writes, parsed and checked.

Phase Golem's schema plus ours (`requires_human_review`, `blocked_type`, `wake_at`,
`retry_after_seconds`, `artifacts`). Unknown fields are ignored, as upstream does, so
agents may add their own. Every rejection names the field that is wrong.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from phase_golem.domain.descriptions import StructuredDescription
from phase_golem.domain.errors import ParseError
from phase_golem.domain.items import Assessments, BlockedType, Level, Size
from phase_golem.domain.redaction import redact_optional, redact_text
from phase_golem.domain.runs import ErrorClass
from phase_golem.domain.text import text_problem

# Our schema is four levels deep; agents may add fields of their own, but not a tower.
MAX_RESULT_DEPTH = 64
# "Come back later" beyond ten years is a mistake, not a plan (and would overflow dates).
MAX_RETRY_AFTER_SECONDS = 10 * 366 * 86400.0


class ResultCode(StrEnum):
    PHASE_COMPLETE = "phase_complete"
    SUBPHASE_COMPLETE = "subphase_complete"
    FAILED = "failed"
    BLOCKED = "blocked"


class ResultProblem(Exception):
    """A result that cannot be used; `error_class` says how the run is classified."""

    def __init__(self, error_class: ErrorClass, message: str) -> None:
        super().__init__(message)
        self.error_class = error_class


def _enum_or_none(kind: type[Size] | type[Level]) -> Any:
    def convert(value: Any) -> Any:
        if value is None or isinstance(value, kind):
            return value
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {type(value).__name__}")
        try:
            return kind.parse(value)
        except ParseError as exc:
            raise ValueError(str(exc)) from None

    return BeforeValidator(convert)


def _follow_up_entry(value: Any) -> Any:
    # Plain strings are accepted on purpose (Phase Golem is lenient with agents).
    return {"title": value} if isinstance(value, str) else value


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class FollowUp(_Model):
    title: Annotated[str, Field(min_length=1, max_length=500)]
    context: str | None = None
    suggested_size: Annotated[Size | None, _enum_or_none(Size)] = None
    suggested_risk: Annotated[Level | None, _enum_or_none(Level)] = None


# A follow-up is an object or a bare title; the schema says both.
_FOLLOW_UP_ENTRY = BeforeValidator(_follow_up_entry, json_schema_input_type=str | FollowUp)


class _Assessments(_Model):
    size: Annotated[Size | None, _enum_or_none(Size)] = None
    complexity: Annotated[Level | None, _enum_or_none(Level)] = None
    risk: Annotated[Level | None, _enum_or_none(Level)] = None
    impact: Annotated[Level | None, _enum_or_none(Level)] = None


class _Description(_Model):
    context: str = ""
    problem: str = ""
    solution: str = ""
    impact: str = ""
    sizing_rationale: str = ""


class _ResultModel(_Model):
    item_id: Annotated[str, Field(min_length=1)]
    phase: Annotated[str, Field(min_length=1)]
    result: ResultCode
    summary: str
    context: str | None = None
    updated_assessments: _Assessments | None = None
    follow_ups: list[Annotated[FollowUp, _FOLLOW_UP_ENTRY]] = []
    based_on_commit: str | None = None
    pipeline_type: str | None = None
    commit_summary: str | None = None
    duplicates: list[str] = []
    description: _Description | None = None
    requires_human_review: bool = False
    blocked_type: BlockedType | None = None
    wake_at: str | None = None
    retry_after_seconds: Annotated[
        float | None, Field(ge=0, le=MAX_RETRY_AFTER_SECONDS, allow_inf_nan=False)
    ] = None
    artifacts: list[str] = []


def result_json_schema() -> dict[str, Any]:
    """The JSON Schema of a result file, generated from the model that validates it, so
    the published contract can never drift from what `parse_result` accepts."""
    schema = _ResultModel.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **schema,
        "title": "phase-golem result file",
        "description": (
            "What an agent writes to the path in PHASE_GOLEM_RESULT_FILE (also named in its "
            "prompt) before it exits. Fields not listed are ignored; levels and sizes also "
            "accept Phase Golem's one-letter abbreviations, case-insensitively."
        ),
    }


@dataclass(frozen=True, slots=True)
class PhaseResult:
    item_id: str
    phase: str
    result: ResultCode
    summary: str
    context: str | None = None
    assessments: Assessments | None = None
    follow_ups: tuple[FollowUp, ...] = ()
    based_on_commit: str | None = None
    pipeline_type: str | None = None
    commit_summary: str | None = None
    duplicates: tuple[str, ...] = ()
    description: StructuredDescription | None = None
    requires_human_review: bool = False
    blocked_type: BlockedType | None = None
    wake_at: str | None = None
    retry_after_seconds: float | None = None
    artifacts: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        """What a block or failure says: the context when given, else the summary."""
        return (self.context or "").strip() or self.summary.strip() or self.result.value


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "result"


def _from_model(model: _ResultModel) -> PhaseResult:
    assessments = None
    if model.updated_assessments is not None:
        a = model.updated_assessments
        assessments = Assessments(a.size, a.complexity, a.risk, a.impact)
    description = None
    if model.description is not None:
        description = StructuredDescription(**model.description.model_dump())
    return PhaseResult(
        item_id=model.item_id,
        phase=model.phase,
        result=model.result,
        summary=model.summary,
        context=model.context,
        assessments=assessments,
        follow_ups=tuple(model.follow_ups),
        based_on_commit=model.based_on_commit,
        pipeline_type=model.pipeline_type,
        commit_summary=model.commit_summary,
        duplicates=tuple(d.strip() for d in model.duplicates if d.strip()),
        description=description,
        requires_human_review=model.requires_human_review,
        blocked_type=model.blocked_type,
        wake_at=model.wake_at,
        retry_after_seconds=model.retry_after_seconds,
        artifacts=tuple(model.artifacts),
    )


def parse_result(
    raw: bytes,
    *,
    expected_item: str,
    expected_phase: str,
    max_bytes: int,
) -> PhaseResult:
    """Bytes of a result file → a checked result, or ResultProblem naming what is wrong.

    Size, JSON and schema problems are `invalid_result` (retried with the message in the
    next prompt); a result for another item or phase is `mismatch` (never retried).
    """
    if len(raw) > max_bytes:
        raise ResultProblem(
            ErrorClass.INVALID_RESULT,
            f"result file is {len(raw)} bytes, over the {max_bytes}-byte limit",
        )
    if not raw.strip():
        raise ResultProblem(ErrorClass.INVALID_RESULT, "result file is empty")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultProblem(ErrorClass.INVALID_RESULT, f"result is not valid JSON: {exc}") from None
    except RecursionError:
        raise ResultProblem(ErrorClass.INVALID_RESULT, "result is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of thousands of digits
        message = f"result is not usable JSON: {exc}"
        raise ResultProblem(ErrorClass.INVALID_RESULT, message) from None
    problem = structure_problem(data)
    if problem is not None:
        raise ResultProblem(ErrorClass.INVALID_RESULT, problem)
    if not isinstance(data, dict):
        raise ResultProblem(
            ErrorClass.INVALID_RESULT, f"result must be a JSON object, not {type(data).__name__}"
        )
    try:
        model = _ResultModel.model_validate(data)
    except ValidationError as exc:
        problems = [f"{_where(e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ResultProblem(
            ErrorClass.INVALID_RESULT, "result does not match the schema: " + "; ".join(problems)
        ) from None
    if model.item_id != expected_item or model.phase != expected_phase:
        raise ResultProblem(
            ErrorClass.MISMATCH,
            f"result identity mismatch: expected {expected_item}/{expected_phase}, "
            f"got {model.item_id}/{model.phase}",
        )
    return _from_model(model)


def structure_problem(data: Any, max_depth: int = MAX_RESULT_DEPTH) -> str | None:
    """What makes decoded JSON unusable as a result, walked without recursion: nesting past
    `max_depth`, or a key or string with a NUL or a lone surrogate (neither survives git,
    the environment or UTF-8). The place is named the way the schema errors name it."""
    pending: list[tuple[Any, str, int]] = [(data, "result", 0)]
    while pending:
        value, where, depth = pending.pop()
        if depth > max_depth:
            return f"result is nested more than {max_depth} levels deep (at {where})"
        if isinstance(value, str):
            problem = text_problem(value)
            if problem is not None:
                return f"{where} {problem}"
        elif isinstance(value, dict):
            for key, inner in value.items():
                problem = text_problem(key)
                if problem is not None:
                    return f"a key in {where} {problem}"
                pending.append((inner, f"{where}.{key}", depth + 1))
        elif isinstance(value, list):
            pending.extend((inner, f"{where}[{i}]", depth + 1) for i, inner in enumerate(value))
    return None


def redact_result(result: PhaseResult) -> PhaseResult:
    """The result with every secret we know of removed from the text it carries, before
    any of it reaches the store, an item, a commit message, the worklog or a prompt."""
    follow_ups = tuple(
        f.model_copy(update={"title": redact_text(f.title), "context": redact_optional(f.context)})
        for f in result.follow_ups
    )
    description = result.description
    if description is not None:
        description = StructuredDescription(
            **{k: redact_text(v) for k, v in description.to_dict().items()}
        )
    return dataclasses.replace(
        result,
        summary=redact_text(result.summary),
        context=redact_optional(result.context),
        commit_summary=redact_optional(result.commit_summary),
        follow_ups=follow_ups,
        description=description,
    )


def result_to_dict(result: PhaseResult) -> dict[str, Any]:
    """The stored form of a result (on the run record), with empty parts left out."""
    data: dict[str, Any] = {
        "item_id": result.item_id,
        "phase": result.phase,
        "result": result.result.value,
        "summary": result.summary,
    }
    optional: dict[str, Any] = {
        "context": result.context,
        "based_on_commit": result.based_on_commit,
        "pipeline_type": result.pipeline_type,
        "commit_summary": result.commit_summary,
        "blocked_type": result.blocked_type.value if result.blocked_type else None,
        "wake_at": result.wake_at,
        "retry_after_seconds": result.retry_after_seconds,
    }
    data.update({k: v for k, v in optional.items() if v is not None})
    if result.requires_human_review:
        data["requires_human_review"] = True
    if result.assessments is not None:
        data["updated_assessments"] = {
            k: getattr(result.assessments, k).value
            for k in ("size", "complexity", "risk", "impact")
            if getattr(result.assessments, k) is not None
        }
    if result.follow_ups:
        data["follow_ups"] = [
            f.model_dump(mode="json", exclude_none=True) for f in result.follow_ups
        ]
    if result.duplicates:
        data["duplicates"] = list(result.duplicates)
    if result.description is not None:
        data["description"] = result.description.to_dict()
    if result.artifacts:
        data["artifacts"] = list(result.artifacts)
    return data


def result_from_dict(data: dict[str, Any]) -> PhaseResult:
    """Rebuild a stored result (it was valid when stored, so identity is its own)."""
    raw = json.dumps(data).encode()
    return parse_result(
        raw,
        expected_item=str(data.get("item_id")),
        expected_phase=str(data.get("phase")),
        max_bytes=len(raw),
    )
