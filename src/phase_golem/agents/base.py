"""What every agent adapter provides, and what a finished agent reports back."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from phase_golem.domain.ndjson import parse_ndjson
from phase_golem.domain.runs import ErrorClass

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AgentRequest:
    """One invocation: the prompt, where the result goes, where the agent works."""

    run_id: str
    item_id: str
    phase: str
    attempt: int
    prompt: str
    run_dir: Path
    cwd: Path
    timeout_seconds: float
    model: str | None = None
    idempotency_key: str | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def prompt_file(self) -> Path:
        return self.run_dir / "prompt.md"

    @property
    def result_file(self) -> Path:
        return self.run_dir / "result.json"

    @property
    def stdout_file(self) -> Path:
        return self.run_dir / "stdout.log"

    @property
    def stderr_file(self) -> Path:
        return self.run_dir / "stderr.log"


@dataclass(frozen=True, slots=True)
class Invocation:
    argv: tuple[str, ...]
    stdin_text: str | None = None  # None: stdin is closed (/dev/null)


@dataclass(slots=True)
class StreamInfo:
    """What a structured output stream told us: identity, spend, and typed errors."""

    session_id: str | None = None
    cost_usd: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    error_class: ErrorClass | None = None
    error: str | None = None


class AgentAdapter(Protocol):
    name: str

    def binary(self) -> str | None:
        """The executable preflight must find on PATH (None: nothing to check)."""
        ...

    def install_hint(self) -> str: ...

    def invocation(self, request: AgentRequest) -> Invocation: ...

    def read_stream(self, stdout_file: Path) -> StreamInfo: ...


def json_lines(path: Path) -> Iterator[dict[str, Any]]:
    """Objects of an agent's JSON-lines stream; plain-text lines are skipped.

    An agent killed mid-write leaves a torn last line: dropped with a warning naming the
    file and line. A damaged line elsewhere is logged as an error naming both and skipped;
    the stream is evidence (session, spend, typed errors), the result file decides.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    parsed = parse_ndjson(
        text,
        str(path),
        candidate=lambda line: line.startswith("{"),
        on_damage=lambda message: log.error("%s", message),
    )
    for warning in parsed.warnings:
        log.warning("%s", warning)
    for _, value in parsed.records:
        if isinstance(value, dict):
            yield value


def _finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def as_int(value: Any) -> int:
    """A count from a stream; anything else (NaN, strings, negatives) counts as 0."""
    return max(int(value), 0) if _finite_number(value) else 0


def as_float(value: Any) -> float:
    return max(float(value), 0.0) if _finite_number(value) else 0.0


RATE_LIMIT_STATUSES = frozenset({429, 529})
UNAVAILABLE_STATUSES = frozenset({401, 403, 404})


def class_of_status(status: Any) -> ErrorClass | None:
    if status in RATE_LIMIT_STATUSES:
        return ErrorClass.RATE_LIMITED
    if status in UNAVAILABLE_STATUSES:
        return ErrorClass.UNAVAILABLE
    return None
