"""Atomic file writes: readers (and a crash) see the old file or the new one, never half."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

PRIVATE_MODE = 0o600


def _default_mode() -> int:
    # What a plain open() would give, so an export outside .phase-golem/ is not surprising.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomically(path: Path, content: str | Iterable[str], *, private: bool = False) -> None:
    """Temp file beside `path`, fsync, rename over it, fsync the directory.

    `private` makes the file 0600 (DESIGN: files under `.phase-golem/`); otherwise it gets
    the mode a plain write would. `content` may be an iterable of chunks, so a large
    export is streamed rather than built in memory.
    """
    directory = path.parent
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, PRIVATE_MODE if private else _default_mode())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if isinstance(content, str):
                handle.write(content)
            else:
                for chunk in content:
                    handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    fsync_directory(directory)


def fsync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable (a no-op where directories cannot be opened)."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
