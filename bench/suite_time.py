"""`./dev test` wall time of two commits, side by side on this machine, and their ratio.

Each commit is cloned fresh into a folder whose parent has no `shared/` (as a user's clone),
installed first (not timed), then `./dev test -q` is timed, old then new, optionally with CPU
burners (`python3 -c 'while True: pass'`) running beside both. The ratio is only fair when the
machine's other load is the same for both runs: compare the load averages printed with them.

    .venv/bin/python bench/suite_time.py --old da6b017 --new HEAD --burners 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def clone(commit: str, into: Path) -> Path:
    target = into / commit / "phase-golem"
    target.parent.mkdir(parents=True)
    subprocess.run(["git", "clone", "-q", str(REPO), str(target)], check=True)
    subprocess.run(["git", "-C", str(target), "checkout", "-q", commit], check=True)
    # Install (a fresh venv, the dev extra) before the clock starts.
    subprocess.run(["./dev", "test", "--co", "-q"], cwd=target, check=False, capture_output=True)
    return target


def timed_suite(checkout: Path, log: Path) -> tuple[float, int, str]:
    load = os.getloadavg()
    started = time.monotonic()
    with log.open("wb") as out:
        code = subprocess.run(
            ["./dev", "test", "-q"],
            cwd=checkout,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode
    seconds = time.monotonic() - started
    return seconds, code, f"load before {load[0]:.1f}, after {os.getloadavg()[0]:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="the commit to compare against")
    parser.add_argument("--new", default="HEAD")
    parser.add_argument("--burners", type=int, default=0, help="CPU burners beside both runs")
    parser.add_argument(
        "--logs", type=Path, default=Path("bench/suite-time-logs"), help="where the logs are kept"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="suite-time-") as scratch:
        root = Path(scratch)
        commits = {"old": args.old, "new": args.new}
        checkouts = {name: clone(commit, root) for name, commit in commits.items()}
        burners = [
            subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(args.burners)
        ]
        try:
            results = {
                name: timed_suite(path, root / f"{name}.log") for name, path in checkouts.items()
            }
        finally:
            for burner in burners:
                burner.kill()
                burner.wait()
        args.logs.mkdir(parents=True, exist_ok=True)
        for name, (seconds, code, load) in results.items():
            commit = commits[name]
            text = (root / f"{name}.log").read_text(errors="replace")
            (args.logs / f"{name}.log").write_text(text)
            lines = text.strip().splitlines()
            failed = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
            print(f"{name} {commit}: {seconds:.0f} s, exit {code} ({load}); {' '.join(lines[-1:])}")
            for line in failed:
                print(f"    {line}")
        ratio = results["new"][0] / results["old"][0]
        print(f"new/old wall time: {ratio:.2f} (with {args.burners} CPU burner(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
