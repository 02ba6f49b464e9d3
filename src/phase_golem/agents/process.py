"""Run one agent process: its own process group, output to files, a hard timeout.

The group is what we signal, so helpers an agent starts die with it. On a timeout or a
cancel: TERM to the group, up to `grace` seconds, then KILL; after a normal exit any
member left in the group is terminated too, so nothing we started outlives its run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from phase_golem.safe_files import create_private

TERM_GRACE_SECONDS = 5.0

_live_groups: set[int] = set()


@dataclass(frozen=True, slots=True)
class ProcessExit:
    exit_code: int | None
    timed_out: bool = False
    cancelled: bool = False

    @property
    def killed_by_signal(self) -> int | None:
        if self.exit_code is not None and self.exit_code < 0:
            return -self.exit_code
        return None


class SpawnError(Exception):
    """The program could not be started at all (missing binary, not executable)."""


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _group_alive(pgid: int) -> bool:
    return _signal_group(pgid, 0)


async def _wait_group_gone(pgid: int, seconds: float) -> bool:
    deadline = asyncio.get_running_loop().time() + seconds
    while _group_alive(pgid):
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def stop_group(process: asyncio.subprocess.Process, grace: float) -> None:
    """TERM the whole group, give it `grace` seconds in all, KILL what is left; reap."""
    pgid = process.pid
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    _signal_group(pgid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(process.wait()), grace)
    # An unreaped leader keeps the group alive, so this also covers a leader ignoring TERM.
    if not await _wait_group_gone(pgid, max(deadline - loop.time(), 0.0)):
        _signal_group(pgid, signal.SIGKILL)
    await process.wait()
    await _wait_group_gone(pgid, 1.0)
    _live_groups.discard(pgid)


async def _feed(process: asyncio.subprocess.Process, text: str | None) -> None:
    if text is None or process.stdin is None:
        return
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        process.stdin.write(text.encode())
        await process.stdin.drain()
        process.stdin.close()


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdout_path: Path,
    stderr_path: Path,
    timeout: float,
    stdin_text: str | None = None,
    on_start: Callable[[int], None] | None = None,
    grace: float = TERM_GRACE_SECONDS,
) -> ProcessExit:
    """Run `argv` to completion, a timeout, or cancellation (which is re-raised)."""
    # Made afresh without following links: a name planted in the run directory is replaced.
    with (
        os.fdopen(create_private(stdout_path), "wb") as out,
        os.fdopen(create_private(stderr_path), "wb") as err,
    ):
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=str(cwd),
                env=dict(env),
                stdin=asyncio.subprocess.PIPE
                if stdin_text is not None
                else asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        except OSError as exc:  # missing, not executable, argument list too long, …
            raise SpawnError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from None
    _live_groups.add(process.pid)
    if on_start is not None:
        on_start(process.pid)
    # The prompt is fed beside the wait, so an agent that never reads its stdin cannot
    # hold us past the timeout once the prompt outgrows the pipe buffer.
    feeder = asyncio.create_task(_feed(process, stdin_text))
    try:
        try:
            code = await asyncio.wait_for(asyncio.shield(process.wait()), timeout)
        except TimeoutError:
            await stop_group(process, grace)
            return ProcessExit(process.returncode, timed_out=True)
    except asyncio.CancelledError:
        await stop_group(process, grace)
        raise
    finally:
        feeder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feeder
    if _group_alive(process.pid):
        await stop_group(process, grace)
    _live_groups.discard(process.pid)
    return ProcessExit(code)


def kill_all_groups() -> None:
    """Last resort at our own exit: KILL every group we started that is still there."""
    for pgid in list(_live_groups):
        _signal_group(pgid, signal.SIGKILL)
        _live_groups.discard(pgid)


def live_groups() -> frozenset[int]:
    return frozenset(_live_groups)
