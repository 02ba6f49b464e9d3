"""The migration runner both SQL stores share (one `schema_migrations` table each).

A dialect's migrations are the numbered files `migrations/<dialect>/NNNN_name.sql`. The
store opens its own transaction and takes its own write lock; this module decides what
to apply, applies it through a `MigrationSession`, and refuses a database that already
carries a version this code does not know (written by a newer phase-golem).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from phase_golem.store.errors import StoreError

VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
)


def migration_files(dialect: str) -> list[tuple[int, str, Path]]:
    """(version, name, file) of every `NNNN_name.sql` of a dialect, in order (unread)."""
    folder = Path(__file__).parent / "migrations" / dialect
    found: list[tuple[int, str, Path]] = []
    for entry in folder.iterdir():
        name = entry.name
        if not name.endswith(".sql"):
            continue
        number, _, rest = name.partition("_")
        if not number.isdigit():
            raise StoreError(f"migration file {name} must start with a number")
        found.append((int(number), rest.removesuffix(".sql"), entry))
    found.sort()
    versions = [v for v, _, _ in found]
    # Numbers are reserved per feature branch, so one may land before a lower one: each
    # is applied by its number, and only a repeated number is an error.
    if len(set(versions)) != len(versions) or (versions and versions[0] < 1):
        raise StoreError(f"{dialect} migrations must have distinct numbers from 1: {versions}")
    return found


def migration_scripts(dialect: str) -> list[tuple[int, str, str]]:
    """(version, name, sql) for every `NNNN_name.sql` of a dialect, in order."""
    return [(v, name, path.read_text("utf-8")) for v, name, path in migration_files(dialect)]


def known_versions(dialect: str) -> set[int]:
    return {version for version, _, _ in migration_files(dialect)}


class MigrationSession(Protocol):
    """One open write transaction of a store, as the runner needs it."""

    def applied_versions(self) -> set[int]:
        """The versions in `schema_migrations` (the table exists by now)."""

    def run_script(self, sql: str) -> None:
        """Execute one migration file's statements."""

    def record(self, version: int, name: str) -> None:
        """Note `version` as applied."""


def apply_migrations(session: MigrationSession, dialect: str, where: str) -> list[int]:
    """Apply every migration the database lacks, by number; the versions applied."""
    scripts = migration_scripts(dialect)
    applied = session.applied_versions()
    unknown = sorted(applied - {version for version, _, _ in scripts})
    if unknown:
        raise StoreError(
            f"{where}: database schema version {unknown[-1]} is newer than "
            f"this phase-golem understands ({scripts[-1][0]}); upgrade phase-golem"
        )
    done: list[int] = []
    for version, name, sql in scripts:
        if version in applied:
            continue
        session.run_script(sql)
        session.record(version, name)
        done.append(version)
    return done
