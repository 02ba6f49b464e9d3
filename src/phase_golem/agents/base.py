"""What every agent adapter provides, and what a finished agent reports back."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from phase_golem.agents.transcripts import MAX_LINE_BYTES, bounded_lines
from phase_golem.domain.ndjson import torn_line_warning
from phase_golem.domain.runs import ErrorClass
from phase_golem.safe_files import FileRefused

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
    # More inherited variables this agent may see (`[agent] pass_env`; agents/environment.py).
    pass_env: tuple[str, ...] = ()

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
    the stream is evidence (session, spend, typed errors), the result file decides. A file
    the agent replaced with a link or a FIFO is not read; a line too long to be an event
    we read is skipped.
    """
    failed: tuple[int, str] | None = None  # the last bad line: damage unless nothing follows
    try:
        for number, raw in bounded_lines(path):
            line = raw.decode("utf-8", errors="replace").strip() if raw is not None else ""
            if raw is not None and not line.startswith("{"):
                continue
            if failed is not None:
                log.error("%s: line %d: malformed JSON: %s", path, *failed)
                failed = None
            if raw is None:
                log.error("%s: line %d: over %d bytes; skipped", path, number, MAX_LINE_BYTES)
                continue
            try:
                value = json.loads(line)
            except (ValueError, RecursionError) as exc:
                failed = (number, getattr(exc, "msg", None) or type(exc).__name__)
                continue
            if isinstance(value, dict):
                yield value
    except FileNotFoundError:
        return
    except FileRefused as refused:
        log.warning("%s", refused)
        return
    if failed is not None:
        log.warning("%s", torn_line_warning(str(path), failed[0], failed[1]))


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
