"""Exit codes (DESIGN §9) and the error kinds the CLI maps onto them."""

from __future__ import annotations

import sys
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    BLOCKED = 1  # a run ended with nothing completed and something blocked
    MISMATCH = 1  # verify: an artifact no longer matches its receipt
    BAD_INPUT = 2  # usage, config, file
    PRECONDITION = 3  # dirty tree, lock held, agent missing, project not initialised
    INTERNAL = 4  # a bug of ours; details are logged


# The errors a user can cause, by where they are defined. An error class whose module was
# never imported cannot have been raised, so matching on `sys.modules` keeps the heavy
# modules that define them (config → pydantic, the YAML importer) off the start-up path.
# Order matters: NotFoundError is a StoreError that means bad input.
_KNOWN_ERRORS: tuple[tuple[str, str, ExitCode], ...] = (
    ("phase_golem.config_source", "ConfigError", ExitCode.BAD_INPUT),
    # A source already running is not bad input: try again when it ends.
    ("phase_golem.engine.sources", "SourceBusy", ExitCode.PRECONDITION),
    ("phase_golem.interchange.backlog_yaml", "BacklogFormatError", ExitCode.BAD_INPUT),
    ("phase_golem.domain.errors", "DomainError", ExitCode.BAD_INPUT),
    ("phase_golem.store.base", "NotFoundError", ExitCode.BAD_INPUT),
    # A project not set up, or a database that cannot be opened or written, is a
    # precondition, not our bug.
    ("phase_golem.project", "ProjectError", ExitCode.PRECONDITION),
    ("phase_golem.store.base", "StoreError", ExitCode.PRECONDITION),
    # The machine failed us (read-only, full disk, the database's files gone): one line.
    ("phase_golem.faults", "MachineFault", ExitCode.PRECONDITION),
    # A file given to us that is a FIFO, a device, too big, …
    ("phase_golem.safe_files", "FileRefused", ExitCode.BAD_INPUT),
)


def known_error_code(exc: Exception) -> ExitCode | None:
    """The exit code of an error a user can cause (the CLI's and the dashboard's), or None."""
    for module_name, class_name, code in _KNOWN_ERRORS:
        module = sys.modules.get(module_name)
        error_class = getattr(module, class_name, None) if module is not None else None
        if isinstance(error_class, type) and isinstance(exc, error_class):
            return code
    return None
