"""Checks every table of `phase-golem.toml` shares; a new table plugs in by using them.

- **Keys** (`key_problems`): walked against the pydantic model of each table, nested tables
  and arrays of tables included. In our own tables (`Strict` models) an unknown key is an
  error; in Phase Golem's own tables (`Lenient`: `[project]`, `[guardrails]`,
  `[execution]`, and the top level), which Phase Golem reads leniently, an unknown key is a
  one-line warning — unless it is a near miss of a real key (`max_retires`, `[exection]`),
  which is an error with "did you mean …". A new section only has to be a field of
  `ConfigFile` whose type is a `Strict` model.
- **Numbers**: the models forbid NaN and infinity (`allow_inf_nan=False`) and give every
  number an upper bound (config_schema.py), so nothing absurd reaches a timer or SQLite.
- **Names** (`name_problem`): pipeline, phase, source and sink names are short words of
  letters, digits, `.`, `_` and `-` — no path separators, newlines, NUL or escapes.
- **Text** (`text_problem`): paths, commands, URLs and models hold no control characters.
- **Templates** (`Checker.template`): commands split like a shell line whose `{placeholders}`
  are all known.
- `Checker` gathers the problems of one file (every table appends to it), so a user fixes a
  config in one pass; `storage_url_problem` / `storage_path_problem` keep the store inside
  the project, `builtin_path_problem` keeps `builtin:` workflows inside the package.
"""

from __future__ import annotations

import difflib
import re
import shlex
import types
import typing
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from pydantic import AliasChoices, BaseModel

from phase_golem.domain.templates import unknown_placeholders
from phase_golem.domain.text import one_line

BUILTIN_PREFIX = "builtin:"
E = TypeVar("E", bound=StrEnum)
_MODEL_PATTERN = re.compile(r"[A-Za-z0-9._/-]{1,200}")
NAME_LIMIT = 64
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
RESERVED_PHASE_NAMES = frozenset({"triage"})
DID_YOU_MEAN_CUTOFF = 0.75


def shown(value: str) -> str:
    """A value as it may be echoed in an error line: quoted, every control escaped."""
    return repr(one_line(value)) if _CONTROL.search(value) else repr(value)


def place(where: str) -> str:
    """A dotted key for an error line: as written, or quoted and escaped if it needs it."""
    return shown(where) if _CONTROL.search(where) else where


def name_problem(value: str) -> str | None:
    """Why `value` cannot name a pipeline, phase, source or sink, or None."""
    if not value.strip():
        return "must not be empty"
    if len(value) > NAME_LIMIT:
        return f"{shown(value[:20] + '…')} is longer than {NAME_LIMIT} characters"
    if not _NAME.fullmatch(value):
        return (
            f"{shown(value)} may use only letters, digits, '.', '_' and '-' "
            "(and must start with a letter or digit)"
        )
    return None


def text_problem(value: str) -> str | None:
    """Why `value` (a path, a command, a URL) is not usable, or None."""
    found = _CONTROL.search(value)
    if found is None:
        return None
    char = found.group(0)
    what = "a NUL character" if char == "\x00" else f"the control character {one_line(char)}"
    return f"{shown(value)} contains {what}"


def did_you_mean(key: str, known: list[str]) -> str | None:
    close = difflib.get_close_matches(key, known, n=1, cutoff=DID_YOU_MEAN_CUTOFF)
    return close[0] if close else None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds: itself, or inside `list[…]`, `dict[str, …]` or `… | None`."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (list, dict, typing.Union, types.UnionType):
        for argument in typing.get_args(annotation):
            model = _model_in(argument)
            if model is not None:
                return model
    return None


def _known_keys(model: type[BaseModel]) -> dict[str, str]:
    """Every key a table accepts (aliases too), each with the field it fills."""
    keys: dict[str, str] = {}
    for name, field in model.model_fields.items():
        keys[name] = name
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            for choice in alias.choices:
                if isinstance(choice, str):
                    keys[choice] = name
        elif isinstance(alias, str):
            keys[alias] = name
    return keys


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def key_problems(data: Any, model: type[BaseModel], where: str = "") -> tuple[list[str], list[str]]:
    """(errors, warnings) about the keys of `data`, a table meant for `model`."""
    errors: list[str] = []
    warnings: list[str] = []
    if not isinstance(data, Mapping):
        return errors, warnings
    known = _known_keys(model)
    strict = model.model_config.get("extra") == "forbid"
    for key, value in data.items():
        full = _join(where, str(key))
        if key not in known:
            guess = did_you_mean(str(key), list(known))
            if guess is not None:
                errors.append(f"{place(full)}: unknown key (did you mean {guess!r}?)")
            elif strict:
                errors.append(f"{place(full)}: unknown key")
            else:
                warnings.append(f"{place(full)}: unknown key, ignored")
            continue
        field = model.model_fields[known[key]]
        inner = _model_in(field.annotation)
        if inner is None:
            continue
        origin = typing.get_origin(field.annotation)
        if origin is dict and isinstance(value, Mapping):
            for name, table in value.items():
                more_errors, more_warnings = key_problems(table, inner, f"{full}.{name}")
                errors += more_errors
                warnings += more_warnings
        elif origin is list and isinstance(value, list):
            for index, table in enumerate(value):
                more_errors, more_warnings = key_problems(table, inner, f"{full}[{index}]")
                errors += more_errors
                warnings += more_warnings
        else:
            more_errors, more_warnings = key_problems(value, inner, full)
            errors += more_errors
            warnings += more_warnings
    return errors, warnings


def builtin_path_problem(workflow: str) -> str | None:
    """Why a `builtin:` workflow path would leave the package's own workflows, or None."""
    relative = workflow.removeprefix(BUILTIN_PREFIX)
    parts = relative.replace("\\", "/").split("/")
    if not relative or relative.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return f"{shown(workflow)} must name a file under the built-in workflows (no '..')"
    return None


def storage_url_problem(url: str) -> str | None:
    """Why `[storage] url` cannot name a store, judged from the text alone (the path is
    checked against the project in `storage_path_problem`)."""
    if text_problem(url) is not None:
        return text_problem(url)
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")) or url == "sqlite:///":
        return f"{url!r} must be sqlite:///PATH or postgresql://…"
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if path.startswith("file:") or ":memory:" in path or "?" in path:
            return (
                f"{url!r}: give a file path (sqlite:///.phase-golem/state.db, or "
                "sqlite:////absolute/path.db); URIs and in-memory databases are not supported"
            )
    return None


def storage_path_problem(url: str, root: Path) -> str | None:
    """A relative SQLite path must stay inside the project; no path may be a directory."""
    if not url.startswith("sqlite:///"):
        return None
    raw = url.removeprefix("sqlite:///")
    path = Path(raw)
    if not path.is_absolute():
        resolved = (root / path).resolve()
        if not resolved.is_relative_to(root.resolve()):
            return (
                f"{url!r} leaves the project ({resolved}); a relative path stays inside it, "
                "an absolute one is written sqlite:////absolute/path.db"
            )
        path = resolved
    if path.is_dir():
        return f"{url!r} names a directory ({path}), not a database file"
    return None


class Checker:
    """Collects every problem of a config, each with its dotted key."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def enum(self, where: str, value: str, kind: type[E]) -> E | None:
        text = value.strip().lower()
        for member in kind:
            if member.value == text:
                return member
        allowed = ", ".join(m.value for m in kind)
        self.problems.append(f"{where}: {value!r} is not one of {allowed}")
        return None

    def model(self, where: str, value: str | None) -> str | None:
        clean = (value or "").strip()
        if not clean:
            return None
        if clean.startswith("-") or not _MODEL_PATTERN.fullmatch(clean):
            self.problems.append(
                f"{where}: {shown(value or '')} may use only letters, digits, '.', '_', '/', '-' "
                "and must not start with '-'"
            )
        return clean

    def name(self, where: str, value: str) -> bool:
        """A name that may appear in paths, branches, commit messages and lines we print."""
        problem = name_problem(value)
        if problem is not None:
            self.problems.append(f"{where}: {problem}")
        return problem is None

    def text(self, where: str, value: str | None) -> bool:
        """A path, command or URL: no NUL, newline or terminal escape."""
        problem = text_problem(value) if value is not None else None
        if problem is not None:
            self.problems.append(f"{where}: {problem}")
        return problem is None

    def template(self, where: str, value: str, allowed: tuple[str, ...]) -> None:
        """A command split like a shell line whose `{placeholders}` we know."""
        if not self.text(where, value):
            return
        try:
            words = shlex.split(value)
        except ValueError as exc:
            self.problems.append(f"{where}: cannot be split into words: {exc}")
            return
        if not words:
            self.problems.append(f"{where}: must not be empty when given")
            return
        unknown = unknown_placeholders(value, allowed)
        if unknown:
            names = ", ".join("{" + name + "}" for name in unknown)
            known = ", ".join("{" + name + "}" for name in allowed)
            self.problems.append(f"{where}: unknown placeholder {names} (known: {known})")

    def workflow(self, where: str, value: str) -> None:
        if not self.text(where, value):
            return
        if not value.strip():
            self.problems.append(f"{where}: must not be empty")
        elif value.startswith(BUILTIN_PREFIX):
            problem = builtin_path_problem(value)
            if problem is not None:
                self.problems.append(f"{where}: {problem}")
