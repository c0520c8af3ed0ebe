"""Trials per minute with one worker process and with two, on a fixed budget, as a user runs them.

Each run is `lrsearch optimize` on the default search with pruning off (so every trial trains all its
epochs and the budget is the same work), from the same seed, in a fresh study. "search" is the time the
command reports for its trials; "command" adds starting Python, loading torch and the final report.

    python benchmarks/workers.py [--trials 40]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LRSEARCH = Path(sys.executable).parent / "lrsearch"


def timed_command(jobs: int, storage: str, trials: int, folder: str) -> tuple[float, float]:
    command = [LRSEARCH, "optimize", "--trials", str(trials), "--jobs", str(jobs), "--pruner", "none"]
    command += ["--devices", "cpu", "--storage", storage, "--study-name", f"jobs{jobs}"]
    started = time.perf_counter()
    run = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    search = float(re.search(r"finished after ([\d.]+) s", run.stdout).group(1))
    return search, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    trials = parser.parse_args().trials
    with tempfile.TemporaryDirectory() as folder:
        runs = {
            "--jobs 1, SQLite": timed_command(1, f"sqlite:///{folder}/a.db", trials, folder),
            "--jobs 2, SQLite": timed_command(2, f"sqlite:///{folder}/b.db", trials, folder),
            "--jobs 2, journal file": timed_command(2, f"{folder}/c.log", trials, folder),
        }
    base = runs["--jobs 1, SQLite"][0]
    print(f"{trials} trials of the default search, pruning off, on this machine's CPU cores")
    print(f"{'workers, storage':24s} {'search':>8s} {'trials/min':>10s} {'speed-up':>8s} {'command':>8s}")
    for name, (search, wall) in runs.items():
        print(f"{name:24s} {search:6.1f} s {trials / search * 60:10.0f} {base / search:7.2f}x {wall:6.1f} s")


if __name__ == "__main__":
    main()
