"""Reading files we did not write, and creating files where an agent may have been first.

Every file phase-golem reads — configs, imports, scenarios, workflow prompts, and the
files an agent leaves in its run directory — is read here:

- opened non-blocking, so a FIFO can never hang us (and a blocked read can never keep
  SIGINT/SIGTERM from working); only a regular file is read: a FIFO, a device
  (`/dev/zero`), a socket or a directory is refused in one line;
- read with a size bound, so a file that never ends costs at most the bound;
- for run files, opened with `O_NOFOLLOW` and refused when hard-linked elsewhere, so an
  agent that replaces `result.json` with a link cannot make us read (or change) a file
  outside the project.

Files we create in a run directory are made with `O_EXCL | O_NOFOLLOW` after removing
whatever name was there, so a planted symlink is replaced, never written through.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

CONFIG_LIMIT = 1 << 20  # 1 MiB: a config or scenario is a few kilobytes
IMPORT_LIMIT = 256 << 20  # 256 MiB: a backlog of hundreds of thousands of items
PROMPT_FILE_LIMIT = 8 << 20  # a workflow prompt
TRANSCRIPT_LIMIT = 512 << 20  # an agent's stdout/stderr, read back to redact and parse

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISLNK, "a symbolic link"),
)


class FileRefused(OSError):
    """A file we will not read (or write): the message is one line naming it and why."""

    def __init__(self, message: str, code: int = errno.EINVAL) -> None:
        super().__init__(code, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def kind_of(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def open_regular(path: Path, *, follow_symlinks: bool = True, what: str = "") -> int:
    """A read-only descriptor of the regular file at `path`, or FileRefused."""
    label = what or str(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise FileRefused(f"{label}: is a symbolic link; not followed") from None
        raise FileRefused(
            f"{label}: cannot read: {exc.strerror or exc}", exc.errno or errno.EIO
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileRefused(f"{label}: is {kind_of(info.st_mode)}, not a regular file")
        if not follow_symlinks and info.st_nlink > 1:
            raise FileRefused(f"{label}: has other hard links; not read")
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_bounded(path: Path, limit: int, *, follow_symlinks: bool = True, what: str = "") -> bytes:
    """The bytes of a regular file of at most `limit` bytes, or FileRefused."""
    label = what or str(path)
    fd = open_regular(path, follow_symlinks=follow_symlinks, what=what)
    try:
        data = _read_at_most(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise FileRefused(f"{label}: larger than the {limit}-byte limit", errno.EFBIG)
    return data


def read_text_bounded(
    path: Path, limit: int, *, follow_symlinks: bool = True, what: str = ""
) -> str:
    """`read_bounded` decoded as UTF-8 (strictly: other bytes are FileRefused)."""
    data = read_bounded(path, limit, follow_symlinks=follow_symlinks, what=what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRefused(
            f"{what or path}: not UTF-8 text (invalid byte at offset {exc.start})"
        ) from None


def _read_at_most(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def ensure_private_directory(path: Path) -> None:
    """A 0700 directory of ours at `path`: made if missing, refused if a link or a file.

    Its mode is tightened only when it is a real directory (never through a link).
    """
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise FileRefused(f"{path}: is {kind_of(info.st_mode)}, not a directory; not used")
    if stat.S_IMODE(info.st_mode) != 0o700 and info.st_uid == os.geteuid():
        os.chmod(path, 0o700)


def ensure_run_directory(runs_dir: Path, run_id: str) -> Path:
    """`runs_dir/run_id` as a private directory, whatever name an agent left there."""
    ensure_private_directory(runs_dir)
    run_dir = runs_dir / run_id
    try:
        info = os.lstat(run_dir)
    except FileNotFoundError:
        info = None
    if info is not None and not stat.S_ISDIR(info.st_mode):
        os.unlink(run_dir)  # a planted link or file in our own private directory
    ensure_private_directory(run_dir)
    return run_dir


def create_private(path: Path) -> int:
    """A new 0600 file at `path` for writing: what was there is unlinked, never followed."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        raise FileRefused(f"{path}: is a directory; not replaced") from None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return os.open(path, flags, 0o600)


def write_private(path: Path, text: str) -> None:
    fd = create_private(path)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def lexists(path: Path) -> bool:
    return os.path.lexists(path)
