"""Whole commands beside a busy core, and a model's `--stack auto` measurement kept: side by side.

Every row is a fresh process in an empty folder with its own SQLite study, the built-in data already in
its cache folder; the rows are taken in turn (row 1, 2, ..., row 1, 2, ...) for `--rounds` rounds and
each row's median is printed with its ratio to its `--stack 1` row (beside the same load).

Part 1, a busy core: `lrsearch optimize --trials 50 --no-certify` (stack auto) and `--stack 1`, each on the
machine as it is and beside `python -c "while True: pass"` pinned to one core (started before the
command, ended after it).

Part 2 (`--own`), a model of one's own (benchmarks/models.py:digits_layernorm), `--trials 30 --epochs 10
--pruner none --no-certify` (`--own-trials` sets the trials): stack auto with nothing kept (the first
command on a machine), stack auto with its measurement kept (every later command), `--stack 1`.

With `--tree PATH` each row is also run on the code of another checkout (say, the one before a change),
beside this one's. A run longer than `--timeout` seconds is stopped and counts as that long (shown ">").
The machine's load (1-minute average, /proc/loadavg) is printed at each round: other people's work on a
shared machine is load too.

    python benchmarks/busy.py [--rounds 3] [--own] [--tree /path/to/other/checkout] [--timeout 300]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from models import DIGITS_LAYERNORM  # noqa: E402  (a sibling file, not a package)

BUSY = [sys.executable, "-c", "while True: pass"]


@dataclass(frozen=True)
class Row:
    label: str
    arguments: list[str]  # after `python -m lrsearch optimize`
    busy: bool = False  # beside a busy core
    cache: str = "data"  # the cache folder it starts with: "data" (built-in data only) or "own" (stack kept)
    baseline: str | None = None  # the label of the row its ratio is to


def rows(own: bool, own_trials: int = 30) -> list[Row]:
    default = ["--trials", "50", "--no-certify"]
    found = [
        Row("default (stack auto), machine as it is", default, baseline="--stack 1, machine as it is"),
        Row("--stack 1, machine as it is", [*default, "--stack", "1"]),
        Row("default (stack auto), beside a busy core", default, busy=True, baseline="--stack 1, beside a busy core"),
        Row("--stack 1, beside a busy core", [*default, "--stack", "1"], busy=True),
    ]
    if own:
        task = ["--task", DIGITS_LAYERNORM, "--trials", str(own_trials), "--epochs", "10", "--pruner", "none"]
        task.append("--no-certify")
        found += [
            Row("own model, stack auto, first command (measures)", task, baseline="own model, --stack 1"),
            Row("own model, stack auto, speeds kept", task, cache="own", baseline="own model, --stack 1"),
            Row("own model, --stack 1", [*task, "--stack", "1"]),
        ]
    return found


def run_once(row: Row, tree: Path, caches: dict[str, Path], timeout: float) -> float:
    """Seconds of one run of `row` on the code at `tree` (`timeout` if it was stopped there)."""
    with tempfile.TemporaryDirectory(prefix="lrsearch-busy-") as folder:
        cache = Path(folder) / "cache"
        shutil.copytree(caches[row.cache], cache)
        env = os.environ | {"PYTHONPATH": str(tree), "XDG_CACHE_HOME": str(cache)}
        storage = ["--storage", f"sqlite:///{folder}/study.db"]
        load = _busy_core() if row.busy else None
        try:
            started = time.perf_counter()
            try:
                subprocess.run(
                    [sys.executable, "-m", "lrsearch", "optimize", *row.arguments, *storage],
                    cwd=folder,
                    env=env,
                    check=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    timeout=timeout,
                )
            except subprocess.TimeoutExpired:
                return timeout
            return time.perf_counter() - started
        finally:
            if load is not None:
                load.kill()
                load.wait()


def _busy_core() -> subprocess.Popen:
    """A process that holds one core (the last this one may use) until it is killed."""
    core = max(os.sched_getaffinity(0))
    process = subprocess.Popen(BUSY, preexec_fn=lambda: os.sched_setaffinity(0, {core}))
    time.sleep(0.2)  # spinning before the command starts
    return process


def fill_caches(root: Path, tree: Path, own: bool) -> dict[str, Path]:
    """The cache folders rows start with: the built-in data made, and (with `own`) the own model's stack
    measured too."""
    data, kept = root / "data", root / "own"
    env = os.environ | {"PYTHONPATH": str(tree), "XDG_CACHE_HOME": str(data)}
    code = "from lrsearch.problem.config import load_config; from lrsearch.problem.data import load_data; "
    code += "config = load_config(None); load_data(config.data, config.study.seed)"
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    shutil.copytree(data, kept)
    env["XDG_CACHE_HOME"] = str(kept)
    for _ in range(3 if own else 0):  # a measurement beside other work is not kept: try again
        with tempfile.TemporaryDirectory() as folder:
            arguments = ["--task", DIGITS_LAYERNORM, "--trials", "30", "--epochs", "1", "--no-certify"]
            subprocess.run(
                [sys.executable, "-m", "lrsearch", "optimize", *arguments, "--storage", f"sqlite:///{folder}/s.db"],
                cwd=folder,
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        if list(kept.glob("lrsearch/stack/*.json")):
            break
    else:
        if own:
            print(f"warning: {tree} kept no stack measurement (a busy machine, or code without the cache)")
    return {"data": data, "own": kept}


def load_average() -> str:
    return Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of every row, taken in turn (the median)")
    parser.add_argument("--own", action="store_true", help="also a model of one's own: its measurement kept")
    parser.add_argument("--own-trials", type=int, default=30, help="the own model's --trials (issue 23: 100)")
    parser.add_argument("--tree", type=Path, help="also run every row on this checkout's code")
    parser.add_argument("--timeout", type=float, default=300, help="seconds after which a run is stopped")
    parser.add_argument("--only", default="", help="comma-separated row numbers (1-based) to run")
    args = parser.parse_args()

    trees = {"this": REPO} | ({"other": args.tree.resolve()} if args.tree else {})
    chosen = rows(args.own, args.own_trials)
    if args.only:
        chosen = [chosen[int(i) - 1] for i in args.only.split(",")]
    seconds: dict[tuple[str, str], list[float]] = {(name, row.label): [] for name in trees for row in chosen}
    print(f"cores: {len(os.sched_getaffinity(0))}, 1-minute load before: {load_average()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="lrsearch-busy-caches-") as root:
        caches = {name: fill_caches(Path(root) / name, tree, args.own) for name, tree in trees.items()}
        for round_ in range(args.rounds):
            for row in chosen:
                for name, tree in trees.items():
                    took = run_once(row, tree, caches[name], args.timeout)
                    seconds[name, row.label].append(took)
                    line = f"round {round_ + 1} {name:5} {took:7.1f}s  load {load_average():>5}  {row.label}"
                    print(line, flush=True)
    print(f"\nmedians of {args.rounds} rounds (1-minute load after: {load_average()})")
    for name in trees:
        print(f"\n{name}: {trees[name]}")
        print(f"{'seconds':>9} {'ratio':>6}  row (ratio: to its --stack 1 row)")
        for row in chosen:
            median = statistics.median(seconds[name, row.label])
            stopped = ">" if max(seconds[name, row.label]) >= args.timeout else " "
            base = seconds.get((name, row.baseline or ""), [])
            ratio = f"{median / statistics.median(base):6.2f}" if base else "      "
            print(f"{stopped}{median:8.1f} {ratio}  {row.label}")


if __name__ == "__main__":
    main()
