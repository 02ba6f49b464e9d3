"""`phase-golem watch` in a real terminal (a pty) beside a real `run` in another process."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import signal
import struct
import termios
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import EXE, Repo
from tests.e2e import add_items, start_run, wait_for_agents, write_project
from tests.waiting import DEADLINE_SECONDS, never, state_db, wait_until

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


@dataclass
class Terminal:
    """A process on the slave side of a pty; everything it draws is kept, escapes removed."""

    pid: int
    fd: int
    raw: bytearray = field(default_factory=bytearray)
    lock: threading.Lock = field(default_factory=threading.Lock)
    status: int | None = None

    def text(self) -> str:
        with self.lock:
            return ANSI.sub("", self.raw.decode("utf-8", "replace"))

    def pump(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.fd], [], [], 0.2)
                if ready:
                    chunk = os.read(self.fd, 65536)
                    if not chunk:
                        return
                    with self.lock:
                        self.raw += chunk
            except OSError:  # the child closed the terminal (EIO on Linux)
                return

    def exited(self) -> int | None:
        if self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
        return self.status


@contextlib.contextmanager
def in_terminal(repo: Repo, *args: str, columns: int = 160) -> Iterator[Terminal]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PHASE_GOLEM") and k not in ("COLUMNS", "LINES", "NO_COLOR")
    }
    env["TERM"] = "xterm-256color"
    pid, fd = pty.fork()
    if pid == 0:  # the child: a session of its own, the pty its controlling terminal
        try:
            os.chdir(repo.root)
            winsize = struct.pack("HHHH", 50, columns, 0, 0)
            fcntl.ioctl(0, termios.TIOCSWINSZ, winsize)
            os.execve(str(EXE), [str(EXE), *args], env)
        finally:
            os._exit(127)
    terminal = Terminal(pid, fd)
    reader = threading.Thread(target=terminal.pump, daemon=True)
    reader.start()
    try:
        yield terminal
    finally:
        if terminal.exited() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
        reader.join(timeout=60)


def test_watch_shows_the_agents_of_a_run_in_another_process_and_ctrl_c_ends_it_with_0(
    git_repo: Repo, tmp_path: Path
) -> None:
    repo = write_project(
        git_repo,
        f"  - match: {{phase: plan}}\n    wait_for: {never(tmp_path)!r}\n",
        execution="max_wip = 2\nmax_concurrent = 2",
    )
    add_items(repo, "Slow one", "Slow two")
    run = start_run(repo)
    try:
        agents = wait_for_agents(repo, "plan", 2, process=run)
        repo.ok("pause", "--reason", "lunch")
        with in_terminal(repo, "watch") as terminal:
            # The panel's boxes, both live runs with their items and phase, and the totals.
            def shows_everything() -> bool:
                text = terminal.text()
                return (
                    "agents now" in text
                    and "latest events" in text
                    and all(a["id"] in text and a["item_id"] in text for a in agents)
                    and "plan" in text
                    and "in_progress 2" in text
                    and "Scheduler paused" in text
                    and "lunch" in text
                )

            wait_until(shows_everything, "watch shows the run's agents", process=None)
            assert terminal.exited() is None
            os.write(terminal.fd, b"\x03")  # Ctrl-C, through the terminal's line discipline
            code = wait_until(lambda: terminal.exited() is not None, "watch exited")
            assert code and terminal.status == 0, terminal.text()
            assert "Traceback" not in terminal.text()
        # Read-only: the run it watched goes on as it was.
        assert run.poll() is None
    finally:
        run.send_signal(signal.SIGINT)
        run.communicate(timeout=DEADLINE_SECONDS)


def test_watch_stops_with_one_line_when_the_project_is_closed_or_missing(
    git_repo: Repo, tmp_path: Path
) -> None:
    missing = Repo(tmp_path)
    result = missing.pg("watch", "--plain")
    assert result.code == 3 and len(result.err.strip().splitlines()) == 1, result.err
    assert "not a phase-golem project" in result.err

    repo = write_project(git_repo)
    add_items(repo, "Watched")
    with in_terminal(repo, "watch") as terminal:
        wait_until(lambda: "item.added" in terminal.text() or "WRK-001" in terminal.text(), "drawn")
        for path in state_db(repo.root).parent.glob("state.db*"):
            path.unlink()
        wait_until(lambda: terminal.exited() is not None, "watch noticed the project closed")
        assert terminal.status == 3
        text = terminal.text()
        assert "watch stopped" in text and "the project is closed" in text
        assert "Traceback" not in text
