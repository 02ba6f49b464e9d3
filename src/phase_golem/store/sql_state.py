"""The engine state's typed tables in SQL (store/state.py; shared by both dialects)."""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping, Sequence
from typing import Any

from phase_golem.store.state import Leftover, PausedAgent, PendingCommit

PENDING_COLUMNS = (
    "run_id",
    "item_id",
    "tree",
    "phase",
    "touched",
    "own",
    "succeeded",
    "immediate",
    "summary",
    "overlapped",
    "own_committed",
    "intended",
)
_FLAGS = ("succeeded", "immediate", "overlapped", "own_committed")
_LISTS = ("touched", "own")


def _marks(count: int) -> str:
    return ", ".join("?" for _ in range(count))


def _pending_params(entry: PendingCommit, seq: int) -> tuple[Any, ...]:
    values: list[Any] = [seq]
    for name in PENDING_COLUMNS:
        value = getattr(entry, name)
        if name in _FLAGS:
            value = int(bool(value))
        elif name in _LISTS:
            value = json.dumps(list(value))
        values.append(value)
    return tuple(values)


def _pending_from_row(row: Mapping[str, Any]) -> PendingCommit:
    fields: dict[str, Any] = {}
    for name in PENDING_COLUMNS:
        value = row[name]
        if name in _FLAGS:
            value = bool(value)
        elif name in _LISTS:
            value = tuple(str(p) for p in json.loads(value))
        fields[name] = value
    return PendingCommit(**fields)


def _leftover_from_row(row: Mapping[str, Any]) -> Leftover:
    owners = tuple((str(o[0]), str(o[1])) for o in json.loads(row["owners"]))
    runs = tuple(str(r) for r in json.loads(row["runs"]))
    return Leftover(row["tree"], row["path"], owners, runs, row["blob"])


class SqlStateRows(abc.ABC):
    @abc.abstractmethod
    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]: ...
    @abc.abstractmethod
    def _exec(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def _load_pending(self) -> list[PendingCommit]:
        sql = f"SELECT {', '.join(PENDING_COLUMNS)} FROM pending_commits ORDER BY seq"
        return [_pending_from_row(row) for row in self._all(sql)]

    def _replace_pending(self, entries: Sequence[PendingCommit]) -> None:
        self._exec("DELETE FROM pending_commits")
        insert = (
            f"INSERT INTO pending_commits (seq, {', '.join(PENDING_COLUMNS)}) "
            f"VALUES ({_marks(len(PENDING_COLUMNS) + 1)})"
        )
        for seq, entry in enumerate(entries, start=1):
            self._exec(insert, _pending_params(entry, seq))

    def _load_leftovers(self) -> list[Leftover]:
        rows = self._all("SELECT tree, path, owners, runs, blob FROM leftovers ORDER BY tree, path")
        return [_leftover_from_row(row) for row in rows]

    def _replace_leftovers(self, entries: Sequence[Leftover]) -> None:
        self._exec("DELETE FROM leftovers")
        for e in entries:
            self._exec(
                "INSERT INTO leftovers (tree, path, owners, runs, blob) VALUES (?, ?, ?, ?, ?)",
                (
                    e.tree,
                    e.path,
                    json.dumps([list(o) for o in e.owners]),
                    json.dumps(list(e.runs)),
                    e.blob,
                ),
            )

    def _load_pauses(self) -> tuple[list[PausedAgent], dict[str, str]]:
        paused = [
            PausedAgent(row["agent"], row["reason"], row["since"], row["run_id"])
            for row in self._all(
                "SELECT agent, reason, since, run_id FROM agent_pauses ORDER BY agent"
            )
        ]
        resumed = {
            str(row["agent"]): str(row["resumed_at"])
            for row in self._all("SELECT agent, resumed_at FROM agent_resumes ORDER BY agent")
        }
        return paused, resumed

    def _replace_pauses(self, paused: Sequence[PausedAgent], resumed: Mapping[str, str]) -> None:
        self._exec("DELETE FROM agent_pauses")
        self._exec("DELETE FROM agent_resumes")
        for p in paused:
            self._exec(
                "INSERT INTO agent_pauses (agent, reason, since, run_id) VALUES (?, ?, ?, ?)",
                (p.agent, p.reason, p.since, p.run_id),
            )
        for agent, at in resumed.items():
            self._exec("INSERT INTO agent_resumes (agent, resumed_at) VALUES (?, ?)", (agent, at))
