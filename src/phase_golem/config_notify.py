"""`[[notify]]` tables (DESIGN §12): validated like every table, every problem reported."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from phase_golem.config_checks import name_problem
from phase_golem.config_schema import NotifyTable
from phase_golem.domain.notifications import NOTIFICATION_KINDS, NotifySink
from phase_golem.domain.redaction import redact

_ENV_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")


def validate_notify_tables(
    data: Any, problems: list[str], pydantic_problems: Any
) -> list[NotifyTable]:
    if not isinstance(data, list):
        problems.append("notify: must be an array of tables ([[notify]])")
        return []
    kept: list[NotifyTable] = []
    for index, table in enumerate(data):
        try:
            kept.append(NotifyTable.model_validate(table))
        except ValidationError as exc:
            problems += pydantic_problems(exc, ("notify", index))
    return kept


def notify_sinks(problems: list[str], tables: list[NotifyTable]) -> tuple[NotifySink, ...]:
    sinks: list[NotifySink] = []
    names: set[str] = set()
    for index, table in enumerate(tables):
        where = f"notify[{index}]"
        why = name_problem(table.name)
        if why is not None:
            problems.append(f"{where}.name: {why}")
        elif table.name in names:
            problems.append(f"{where}.name: {table.name!r} is used twice")
        names.add(table.name)
        given = [k for k in ("webhook", "webhook_env", "command") if getattr(table, k) is not None]
        if len(given) != 1:
            problems.append(f"{where}: give exactly one of `webhook_env`, `webhook` or `command`")
        if table.webhook is not None:
            scheme = urlsplit(table.webhook).scheme
            if scheme not in ("http", "https") or not urlsplit(table.webhook).netloc:
                shown = redact(table.webhook)
                problems.append(f"{where}.webhook: {shown!r} is not an http(s) URL")
        if table.webhook_env is not None and (
            not table.webhook_env or not set(table.webhook_env) <= _ENV_NAME_CHARS
        ):
            problems.append(f"{where}.webhook_env: {table.webhook_env!r} is not a variable name")
        if table.command is not None and not table.command.strip():
            problems.append(f"{where}.command: must not be empty")
        unknown = [k for k in table.on if k != "*" and k not in NOTIFICATION_KINDS]
        if unknown:
            known = ", ".join(sorted(NOTIFICATION_KINDS))
            problems.append(f"{where}.on: unknown kind {unknown[0]!r} (known: *, {known})")
        sinks.append(
            NotifySink(
                name=table.name,
                webhook=table.webhook,
                webhook_env=table.webhook_env,
                command=table.command,
                on=tuple(table.on),
                timeout_seconds=table.timeout_seconds,
                max_attempts=table.max_attempts,
            )
        )
    return tuple(sinks)
