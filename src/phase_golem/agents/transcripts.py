"""An agent's stdout/stderr, read back safely: redacted in place, parsed line by line.

Both work in bounded memory whatever the agent printed: a transcript is processed a block
of whole lines at a time, and a line longer than `MAX_LINE_BYTES` is cut into pieces
(redaction) or skipped (parsing; no stream event we read is that long). The file is opened
without following links (safe_files), so a name the agent replaced is never read through.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from phase_golem.domain.redaction import redact_text
from phase_golem.fsutil import fsync_directory
from phase_golem.safe_files import open_regular

BLOCK_BYTES = 4 << 20
MAX_LINE_BYTES = 8 << 20


def _blocks(fd: int) -> Iterator[bytes]:
    """The file in blocks that end at a newline (unless a line outgrows MAX_LINE_BYTES)."""
    carry = b""
    while True:
        chunk = os.read(fd, BLOCK_BYTES)
        if not chunk:
            break
        data = carry + chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0 and len(data) < MAX_LINE_BYTES:
            carry = data
            continue
        if cut == 0:
            cut = len(data)
        yield data[:cut]
        carry = data[cut:]
    if carry:
        yield carry


def redact_file(path: Path) -> bool:
    """Replace `path` by its redacted copy (atomically, 0600) when it held a secret.

    Nothing is written until a block needs redacting; the clean blocks before it are then
    copied across. Returns whether it changed. FileRefused when the name is not a plain file
    of ours (a link, a FIFO, a hard link).
    """
    fd = open_regular(path, follow_symlinks=False, what=path.name)
    out: BinaryIO | None = None
    temp_name = ""
    offset = 0
    try:
        for block in _blocks(fd):
            text = block.decode("utf-8", errors="replace")
            clean = redact_text(text)
            if out is None and clean != text:
                temp_fd, temp_name = tempfile.mkstemp(
                    prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
                )
                out = os.fdopen(temp_fd, "wb")
                _copy_prefix(fd, out, offset)
            if out is not None:
                out.write(clean.encode("utf-8") if clean != text else block)
            offset += len(block)
        if out is None:
            return False
        out.flush()
        os.fsync(out.fileno())
        out.close()
        os.replace(temp_name, path)
        temp_name = ""
        fsync_directory(path.parent)
        return True
    finally:
        os.close(fd)
        if out is not None and not out.closed:
            out.close()
        if temp_name:
            Path(temp_name).unlink(missing_ok=True)


def _copy_prefix(fd: int, out: BinaryIO, length: int) -> None:
    position = 0
    while position < length:
        chunk = os.pread(fd, min(BLOCK_BYTES, length - position), position)
        if not chunk:
            break
        out.write(chunk)
        position += len(chunk)


def bounded_lines(path: Path) -> Iterator[tuple[int, bytes | None]]:
    """(1-based number, line without its newline) for each line of a run file; None for a
    line too long to be read whole. FileRefused when the name is not a plain file."""
    fd = open_regular(path, follow_symlinks=False, what=path.name)
    try:
        number = 0
        pending = b""
        oversized = False
        while True:
            chunk = os.read(fd, BLOCK_BYTES)
            if not chunk:
                break
            pending += chunk
            while True:
                newline = pending.find(b"\n")
                if newline == -1:
                    break
                number += 1
                yield number, None if oversized else pending[:newline]
                oversized = False
                pending = pending[newline + 1 :]
            if len(pending) > MAX_LINE_BYTES:
                oversized, pending = True, b""
        if pending or oversized:
            yield number + 1, None if oversized else pending
    finally:
        os.close(fd)
