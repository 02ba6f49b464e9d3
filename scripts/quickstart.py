"""What `./dev demo` runs until `phase-golem demo` lands: a tour in a throwaway git repo.

It drives the real `phase-golem` command, exactly as a user would type it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

EXE = Path(sys.executable).with_name("phase-golem")


def step(root: Path, *args: str) -> None:
    print(f"\n$ phase-golem {' '.join(args)}", flush=True)
    completed = subprocess.run([str(EXE), *args], cwd=root, check=False)
    if completed.returncode != 0:
        sys.exit(completed.returncode)


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="phase-golem-tour-"))
    try:
        subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
        step(root, "init", "--prefix", "WRK")
        step(root, "add", "Add user authentication", "--size", "m", "--risk", "l", "--impact", "h")
        step(root, "add", "Rate-limit the public API", "--size", "s", "--impact", "m",
             "--dep", "WRK-001", "--tag", "api")
        step(root, "add", "Fix typo in README", "--pipeline", "simple", "--size", "s")
        step(root, "edit", "WRK-002", "--risk", "medium", "--add-tag", "security")
        step(root, "close", "WRK-003", "--reason", "Fixed by hand")
        step(root, "status", "--all")
        step(root, "show", "WRK-002")
        step(root, "export")
        step(root, "log")
        print(f"\nThe tour ran in {root} (removed now).")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
