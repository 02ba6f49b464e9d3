"""Workspace snapshots against hashing every file, side by side in one run.

A snapshot takes clean tracked files' ids from git's index and reads only the files
`git status` reports as changed or new. The naive way reads and hashes every file.
Both are taken of the same real repository, at several sizes, with a few changed files.

    python bench/workspace_snapshot.py           # 500, 2,000 and 8,000 files
    python bench/workspace_snapshot.py --quick   # a fast smoke run
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from phase_golem.workspace.snapshot import take_snapshot

FILE_BYTES = 4096


def make_repo(root: Path, files: int) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    for index in range(files):
        folder = root / f"pkg{index % 50}"
        folder.mkdir(exist_ok=True)
        (folder / f"mod{index}.py").write_bytes(bytes([index % 251]) * FILE_BYTES)
    git = ["git", "-C", str(root), "-c", "user.email=b@b", "-c", "user.name=b"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "files"], check=True)
    for index in range(5):  # a run's worth of edits
        (root / "pkg0" / f"mod{index * 50}.py").write_text(f"changed {index}\n")
    (root / "new_file.py").write_text("new\n")


def naive_snapshot(root: Path) -> str:
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    digests = {}
    for path in sorted({p for p in listed.split("\0") if p}):
        target = root / path
        if target.is_file():
            digests[path] = hashlib.sha256(target.read_bytes()).hexdigest()
    return hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()


def best_of(fn: Callable[[Path], object], root: Path, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(root)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sizes = (200,) if args.quick else (500, 2000, 8000)
    repeat = 2 if args.quick else 5
    print("files ours_ms naive_ms naive/ours")
    for files in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "repo"
            make_repo(root, files)
            ours = best_of(take_snapshot, root, repeat)
            naive = best_of(naive_snapshot, root, repeat)
            print(f"{files} {ours * 1000:.1f} {naive * 1000:.1f} {naive / ours:.1f}x")


if __name__ == "__main__":
    main()
