"""Reading what a source has to say (DESIGN §11): an inbox file, a command, `gh`.

Each kind gives a `Fetched`: the entries, warnings, and (inbox) the file to remove once
the run's transaction committed. Nothing here writes the store. A failure is a
`SourceFailure` whose message is one line naming what went wrong (the exit code and the
last line of stderr, a timeout, an oversized output, a malformed line, gh's own words).
Processes run in their own process group, with a timeout and a bound on their output.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phase_golem.domain.errors import ParseError
from phase_golem.domain.source_entries import (
    SourceEntry,
    SourceOutputError,
    canonical_id,
    deduplicated,
    entry_from_mapping,
    github_id,
    parse_json_lines,
)
from phase_golem.domain.sources import SourceConfig, SourceKind
from phase_golem.domain.text import one_line as escaped

MAX_OUTPUT_BYTES = 64 * 1024 * 1024
MAX_STDERR_BYTES = 64 * 1024
MAX_ERROR_CHARS = 300
GH_FIELDS = "number,title,body,state,url,labels,updatedAt"


class SourceFailure(Exception):
    """The run failed; nothing is applied. The message is one line. `bad_output`: what
    the source said is malformed (bad input), not that it could not say it."""

    def __init__(self, message: str, *, bad_output: bool = False) -> None:
        super().__init__(message)
        self.bad_output = bad_output


@dataclass(frozen=True)
class Fetched:
    entries: tuple[SourceEntry, ...]
    warnings: tuple[str, ...] = ()
    taken: Path | None = None  # the inbox file moved aside: removed after the commit
    restore: Path | None = None  # where it goes back if the run fails
    extra: Mapping[str, Any] = field(default_factory=dict)


def one_line(text: str) -> str:
    clean = " ".join(part.strip() for part in text.splitlines() if part.strip())
    clean = escaped(clean)
    return clean if len(clean) <= MAX_ERROR_CHARS else clean[: MAX_ERROR_CHARS - 1] + "…"


# ---- processes -------------------------------------------------------------------------
@dataclass
class _Captured:
    data: bytearray = field(default_factory=bytearray)
    over: bool = False


def _drain(stream: Any, into: _Captured, limit: int, on_over: Callable[[], None]) -> None:
    while chunk := stream.read(65536):
        if len(into.data) + len(chunk) > limit:
            into.over = True
            on_over()
            return
        into.data += chunk


def run_bounded(
    argv: list[str], cwd: Path, env: Mapping[str, str], timeout: float, max_bytes: int
) -> tuple[int, bytes, str]:
    """(exit code, stdout, stderr text) of a process run to its end; SourceFailure on a
    timeout, an output over `max_bytes`, or a program that cannot start."""
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise SourceFailure(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None

    def kill() -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)

    out, err = _Captured(), _Captured()
    readers = [
        threading.Thread(target=_drain, args=(proc.stdout, out, max_bytes, kill), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, err, MAX_STDERR_BYTES, lambda: None)),
    ]
    for reader in readers:
        reader.start()
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill()
        proc.wait()
        raise SourceFailure(f"timed out after {timeout:g}s (timeout_seconds)") from None
    finally:
        kill()  # whatever it left in its group goes with it
        for reader in readers:
            reader.join(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    if out.over:
        raise SourceFailure(f"its output is larger than {max_bytes} bytes")
    return code, bytes(out.data), err.data.decode("utf-8", "replace")


def _command_env(source: SourceConfig, root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PHASE_GOLEM_SOURCE"] = source.name
    env["PHASE_GOLEM_ROOT"] = str(root)
    return env


def fetch_command(source: SourceConfig, root: Path) -> Fetched:
    try:
        argv = shlex.split(source.command or "")
    except ValueError as exc:
        raise SourceFailure(f"cannot split the command: {exc}") from None
    if "/" in argv[0] and not Path(argv[0]).is_absolute():
        argv[0] = str(root / argv[0])
    env = _command_env(source, root)
    code, stdout, stderr = run_bounded(argv, root, env, source.timeout_seconds, MAX_OUTPUT_BYTES)
    if code != 0:
        tail = one_line(stderr.strip().splitlines()[-1]) if stderr.strip() else "no stderr"
        raise SourceFailure(f"exit {code}: {tail}")
    try:
        parsed = parse_json_lines(stdout)
    except SourceOutputError as exc:
        raise SourceFailure(f"{exc}; nothing was applied", bad_output=True) from None
    return Fetched(parsed.entries, parsed.warnings)


# ---- github ----------------------------------------------------------------------------
def gh_argv(source: SourceConfig) -> list[str]:
    argv = ["gh", "issue", "list", "--repo", source.github or ""]
    for label in source.labels:
        argv += ["--label", label]
    return [*argv, "--state", "all", "--json", GH_FIELDS, "--limit", str(source.limit)]


def _issue(raw: Any, index: int, repo: str) -> SourceEntry:
    where = f"issue {index + 1} of gh's answer"
    if not isinstance(raw, dict):
        raise SourceFailure(f"{where}: expected an object", bad_output=True)
    number = raw.get("number")
    if isinstance(number, bool) or not isinstance(number, int):
        raise SourceFailure(f"{where}: no issue number", bad_output=True)
    state = raw.get("state")
    mapping = {
        "external_id": github_id(repo, number),
        "title": raw.get("title"),
        "description": raw.get("body") or None,
        "state": "closed" if isinstance(state, str) and state.upper() == "CLOSED" else "open",
        "url": raw.get("url"),
    }
    try:
        return entry_from_mapping(mapping, f"{where} (#{number})")
    except SourceOutputError as exc:
        raise SourceFailure(str(exc), bad_output=True) from None


def fetch_github(source: SourceConfig, root: Path) -> Fetched:
    env = _command_env(source, root)
    env.setdefault("GH_PROMPT_DISABLED", "1")
    env.setdefault("NO_COLOR", "1")
    code, stdout, stderr = run_bounded(
        gh_argv(source), root, env, source.timeout_seconds, MAX_OUTPUT_BYTES
    )
    if code != 0:  # authentication and its errors are gh's: its own words, in one line
        raise SourceFailure(f"gh: {one_line(stderr) or f'exit {code}'}")
    try:
        issues = json.loads(stdout.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SourceFailure(
            f"gh printed something that is not JSON: {one_line(str(exc))}"
        ) from None
    if not isinstance(issues, list):
        raise SourceFailure("gh printed JSON that is not a list of issues")
    repo = source.github or ""
    entries = [_issue(raw, index, repo) for index, raw in enumerate(issues)]
    return Fetched(deduplicated(entries))


# ---- the inbox -------------------------------------------------------------------------
def taken_path(inbox: Path, source: SourceConfig) -> Path:
    """Where the inbox file waits while its run is applied (beside it, same filesystem)."""
    return inbox.with_name(f".{inbox.name}.{source.name}.taken")


def fetch_inbox(source: SourceConfig, root: Path) -> Fetched:
    """Move the drop file aside, then read it; a file left aside by a run that was cut
    off is read first (its entries are found by their hash, so none is made twice)."""
    from phase_golem.interchange.backlog_yaml import BacklogFormatError, read_import_text
    from phase_golem.interchange.inbox import parse_inbox_text

    inbox = root / (source.inbox or "")
    taken = taken_path(inbox, source)
    if not taken.exists():
        try:
            os.rename(inbox, taken)
        except FileNotFoundError:
            return Fetched(())
        except OSError as exc:
            raise SourceFailure(f"{inbox}: cannot move it aside: {exc.strerror or exc}") from None
    try:
        parsed = parse_inbox_text(read_import_text(taken), inbox.name)
    except (BacklogFormatError, ParseError, OSError) as exc:
        _put_back(taken, inbox)
        raise SourceFailure(f"{one_line(str(exc))}; nothing was applied", bad_output=True) from None
    entries = []
    for entry in parsed.entries:
        identity = {
            "title": entry.title,
            "description": entry.description,
            "size": entry.size.value if entry.size else None,
            "pipeline_type": entry.pipeline_type,
        }
        mapping = {**identity, "external_id": canonical_id(identity)}
        try:
            entries.append(entry_from_mapping(mapping, f"{inbox.name} entry {entry.title!r}"))
        except SourceOutputError as exc:
            _put_back(taken, inbox)
            raise SourceFailure(f"{exc}; nothing was applied", bad_output=True) from None
    return Fetched(deduplicated(entries), parsed.warnings, taken=taken, restore=inbox)


def _put_back(taken: Path, inbox: Path) -> None:
    """A file that cannot be read goes back where the user left it, to be fixed there."""
    if not inbox.exists():
        with contextlib.suppress(OSError):
            os.rename(taken, inbox)


def fetch(source: SourceConfig, root: Path) -> Fetched:
    kind = source.kind
    if kind is SourceKind.INBOX:
        return fetch_inbox(source, root)
    if kind is SourceKind.GITHUB:
        return fetch_github(source, root)
    return fetch_command(source, root)
