"""The process lock: one orchestrator per project (`.phase-golem/phase-golem.lock`)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType

from phase_golem.processes import pid_alive
from phase_golem.safe_files import read_bounded, write_private


class LockHeld(Exception):
    pass


class ProcessLock:
    """An OS `flock` taken first, then our PID written; both go when we exit or die."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "phase-golem.lock"
        self.pid_path = state_dir / "phase-golem.pid"
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:  # e.g. a link planted in its place, a read-only directory
            raise LockHeld(f"{self.path}: cannot take the lock: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LockHeld(self._contention_message()) from None
        self._fd = fd
        tmp = self.pid_path.with_suffix(".pid.tmp")
        write_private(tmp, f"{os.getpid()}\n")  # a name planted there is replaced, not followed
        os.replace(tmp, self.pid_path)

    def _contention_message(self) -> str:
        try:
            pid = int(read_bounded(self.pid_path, 64, follow_symlinks=False).strip())
        except (OSError, ValueError):
            return f"another phase-golem is running here (lock {self.path} is held)"
        if pid_alive(pid):
            return f"another phase-golem is running here (PID {pid})"
        return (
            f"the lock {self.path} is held but PID {pid} is gone; "
            "if no phase-golem is running, remove the lock file"
        )

    def release(self) -> None:
        if self._fd is None:
            return
        self.pid_path.unlink(missing_ok=True)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> ProcessLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
