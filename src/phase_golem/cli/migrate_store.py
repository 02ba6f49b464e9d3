"""`phase-golem migrate-store --to postgresql://…` (DESIGN §14)."""

from __future__ import annotations

from typing import Annotated

import typer

from phase_golem.cli.context import state_of
from phase_golem.cli.output import print_json
from phase_golem.store.errors import StoreError


def migrate_store(
    ctx: typer.Context,
    to: Annotated[
        str,
        typer.Option("--to", metavar="URL", help="postgresql://USER:PASSWORD@HOST:PORT/DBNAME"),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the row counts as JSON.")] = False,
) -> None:
    """Copy this project's SQLite store into an empty PostgreSQL database, in one
    transaction (the SQLite file is only read).

    Items, runs, the ledger, receipts, schedules, counters, settings and notifications all
    go; a database that holds any of them already is refused and left as it was. Then
    point `[storage] url` at the database.
    """
    project = state_of(ctx).project()
    store = project.store()
    path = getattr(store, "path", None)
    if path is None:
        raise StoreError("migrate-store copies a SQLite store; this project's is not one")
    project.close()  # the copy reads the file on a read-only connection of its own
    try:
        from phase_golem.store.pg_copy import copy_sqlite_to_postgres
    except ImportError:
        raise StoreError(
            "PostgreSQL storage needs the postgres extra: pip install 'phase-golem[postgres]'"
        ) from None
    report = copy_sqlite_to_postgres(path, to)
    if as_json:
        print_json({"target": report.target, "rows": report.rows})
        return
    counts = ", ".join(f"{n} {table}" for table, n in report.rows.items() if n)
    typer.echo(f"Copied {report.total} rows into {report.target} ({counts or 'nothing'})")
    typer.echo('Next: set [storage] url = "postgresql://…" in phase-golem.toml for every worker')
