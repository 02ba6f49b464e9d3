"""The one-line log format, imported only once a command runs (`--version` skips logging)."""

from __future__ import annotations

import logging

from phase_golem.cli.failures import error_line


class OneLineFormatter(logging.Formatter):
    """`phase-golem: LEVEL: message` on one line, redacted and escaped; an exception that
    came with the record is named, its traceback is not printed."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            message = f"{message} ({type(error).__name__}: {error})"
        return f"phase-golem: {record.levelname}: {error_line(message)}"
