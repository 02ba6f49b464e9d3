"""Exit codes (DESIGN §9) and the error kinds the CLI maps onto them."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    BLOCKED = 1  # a run ended with nothing completed and something blocked
    MISMATCH = 1  # verify: an artifact no longer matches its receipt
    BAD_INPUT = 2  # usage, config, file
    PRECONDITION = 3  # dirty tree, lock held, agent missing, project not initialised
    INTERNAL = 4  # a bug of ours; details are logged
