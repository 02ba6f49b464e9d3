"""`phase-golem schema result`: the published agent contract, as JSON Schema."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from phase_golem.cli.render import print_json


class SchemaName(StrEnum):
    RESULT = "result"


def schema_command(
    name: Annotated[
        SchemaName, typer.Argument(help="result: the JSON file an agent writes when it is done.")
    ],
) -> None:
    """Print the JSON Schema of a file agents write (result: the agent contract).

    Generated from the model that validates the file (DESIGN §6), so it never drifts.
    """
    from phase_golem.domain.results import result_json_schema

    if name is SchemaName.RESULT:
        print_json(result_json_schema())
