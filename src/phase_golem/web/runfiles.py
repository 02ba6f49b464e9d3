"""A run's own files and its commit's diff, shown as text (DESIGN §13: files only from
inside that run's own directory).

Only the four names the agent contract defines are served, from `.phase-golem/runs/<run>/`
of a run the store knows; the run directory and the file are opened without following
links (an agent may have planted one), a FIFO or device is refused, and at most
`SHOWN_BYTES` are read. What is shown is redacted like every other page.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from phase_golem.engine.context import run_directory
from phase_golem.safe_files import FileRefused, open_regular
from phase_golem.web.context import web_of
from phase_golem.web.pages import refuse
from phase_golem.workspace.git import GitError, run_git

RUN_FILES = ("prompt.md", "stdout.log", "stderr.log", "result.json")
SHOWN_BYTES = 1 << 20
_COMMIT = re.compile(r"[0-9a-f]{7,64}")


def _read_head(path: Path, what: str) -> tuple[str, bool]:
    """The first SHOWN_BYTES of a run file (as text), and whether there was more."""
    fd = open_regular(path, follow_symlinks=False, what=what)
    try:
        data = os.read(fd, SHOWN_BYTES + 1)
    finally:
        os.close(fd)
    return data[:SHOWN_BYTES].decode("utf-8", "replace"), len(data) > SHOWN_BYTES


def _own_directory(root: Path, run_id: str) -> Path | None:
    run_dir = run_directory(root, run_id)
    try:
        info = os.lstat(run_dir)
    except FileNotFoundError:
        return None
    return run_dir if stat.S_ISDIR(info.st_mode) else None


def run_file(request: Request) -> Response:
    web = web_of(request)
    run_id, name = request.path_params["run_id"], request.path_params["name"]
    if name not in RUN_FILES:
        return refuse(request, f"{name}: not a file of a run ({', '.join(RUN_FILES)})", 404)
    with web.store.reader() as tx:
        run = tx.get_run(run_id)
    if run is None:
        return refuse(request, f"no run {run_id}", 404)
    run_dir = _own_directory(web.project.root, run.id)
    if run_dir is None:
        return refuse(request, f"{run.id} has no run directory", 404)
    try:
        text, cut = _read_head(run_dir / name, f"{run.id}/{name}")
    except FileNotFoundError:
        return refuse(request, f"{run.id} has no {name}", 404)
    except FileRefused as exc:
        return refuse(request, str(exc), 403)
    return web.page("file.html", title=f"{run.id} {name}", run=run, name=name, text=text, cut=cut)


def run_diff(request: Request) -> Response:
    web = web_of(request)
    run_id = request.path_params["run_id"]
    with web.store.reader() as tx:
        run = tx.get_run(run_id)
        receipt = tx.get_receipt(run_id) if run is not None else None
    if run is None:
        return refuse(request, f"no run {run_id}", 404)
    commit = receipt.commit if receipt is not None else None
    if commit is None or not _COMMIT.fullmatch(commit):
        return refuse(request, f"{run.id} has no commit", 404)
    try:
        shown = run_git(
            web.project.root, "show", "--no-color", "--no-ext-diff", "--stat", "--patch", commit
        ).stdout
    except GitError as exc:
        return refuse(request, str(exc), 404)
    cut = len(shown) > SHOWN_BYTES
    return web.page(
        "file.html",
        title=f"{run.id} diff",
        run=run,
        name=f"commit {commit[:12]}",
        text=shown[:SHOWN_BYTES],
        cut=cut,
    )
