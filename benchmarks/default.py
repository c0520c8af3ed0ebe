"""The default command against a hand-written search, side by side: where `lrsearch optimize`'s time goes.

Every row is a whole process, started fresh in an empty folder (start-up, data and the study file
included; lrsearch's data cache is a folder of the benchmark's own, filled before the first row), the
rows taken in turn (row 1, 2, ..., row 1, 2, ...) for `--rounds` rounds; each row's median is printed
with its ratio to the hand-written search:

- the search alone, `lrsearch optimize --trials 50 --no-certify` (SQLite file, pictures on, stack auto),
  then the default command itself, certified, then the search alone as the first command on a machine:
  its data not yet in the user's cache;
- the same with pictures off (`study.figures: false`), then on a journal file, then in memory;
- `--stack 1`;
- (a) a hand-written search in the style of Optuna's PyTorch example (benchmarks/throughput.py's loop:
  a DataLoader, `trial.report` then `should_prune` each epoch, Optuna's TPE, the median pruner, in memory,
  1 thread), on lrsearch's search space, data and epochs (the data made with scikit-learn in every run,
  as such a script makes it); its pruner is lrsearch's median, which judges no trial before a quarter of
  its epochs, as lrsearch's pruners do;
- (b) the same with the pruner a script gets when it names none, Optuna's `MedianPruner()`: it judges
  every trial from its first epoch once 5 trials completed, so it stops more of them (warmup schedules
  among them, which look bad early on purpose) and takes less time; the ratios stay to (a);
- with `--big`: `--trials 200 --stack 50` on the SQLite file and in memory (pictures off both).

Then the default command (certified) once under cProfile, its main thread's time split into buckets
(where it is spent): start-up (all but the trial loop and certification: imports, data, study set-up, the
summary), training (the engines' epochs in the trial loop), the sampler (its storage reads included),
storage (Optuna's storage and SQLAlchemy, wherever called), pictures (drawing and attaching each trial's),
certification (its runs' training included). cProfile slows Python more than torch's kernels, so the
buckets are shares of a slower run; the study figures' thread is not profiled (its time is in the wall).

    python benchmarks/default.py [--rounds 2] [--trials 50] [--big] [--skip-profile]
"""

from __future__ import annotations

import argparse
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NO_FIGURES = "study: {figures: false}\n"
# The hand-written loop certifies nothing; certification's own cost is benchmarks/quality.py's. (A tree from
# before certification existed has no such flag: copied into one, this script times that code as it was.)
NO_CERTIFY = ["--no-certify"] if "--no-certify" in (REPO / "lrsearch" / "cli.py").read_text() else []


COLD = "same, first run on this machine (no data cache yet)"


def command_rows(trials: int, big: bool) -> dict[str, tuple[list[str], str | None]]:
    """Row label -> (arguments after `python`, config file text or None)."""
    optimize = ["-m", "lrsearch", "optimize", "--trials", str(trials), *NO_CERTIFY]
    rows: dict[str, tuple[list[str], str | None]] = {
        f"lrsearch optimize --trials {trials} --no-certify (SQLite file, pictures on, stack auto)": (optimize, None),
        f"lrsearch optimize --trials {trials} (certified: the default command)": (
            [arg for arg in optimize if arg != "--no-certify"],
            None,
        ),
        COLD: (optimize, None),
        "same, pictures off": (optimize, NO_FIGURES),
        "journal file, pictures off": ([*optimize, "--storage", "studies/search.log"], NO_FIGURES),
        "in-memory storage, pictures off": ([*optimize, "--storage", "sqlite:///:memory:"], NO_FIGURES),
        "--stack 1": ([*optimize, "--stack", "1"], None),
        "(a) hand-written, Optuna's PyTorch example style": (
            [str(Path(__file__).resolve()), "--hand-written", str(trials)],
            None,
        ),
        "(b) the same, Optuna's default MedianPruner() (from epoch 1)": (
            [str(Path(__file__).resolve()), "--hand-written", str(trials), "--optuna-default-pruner"],
            None,
        ),
    }
    if big:
        big_run = ["-m", "lrsearch", "optimize", "--trials", "200", "--stack", "50", *NO_CERTIFY]
        rows["--trials 200 --stack 50, SQLite file, pictures off"] = (big_run, NO_FIGURES)
        rows["--trials 200 --stack 50, in memory, pictures off"] = (
            [*big_run, "--storage", "sqlite:///:memory:"],
            NO_FIGURES,
        )
    return rows


def run_once(arguments: list[str], config: str | None, cache: Path | None, prefix: list[str] = ()) -> float:
    """Seconds of one fresh run of `python arguments` in an empty folder, with `cache` as the user's cache
    folder (None: an empty one)."""
    with tempfile.TemporaryDirectory(prefix="lrsearch-bench-") as folder:
        extra = []
        if config is not None and "lrsearch" in arguments:
            (Path(folder) / "bench.yaml").write_text(config)
            extra = ["--config", "bench.yaml"]
        env = os.environ | {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "XDG_CACHE_HOME": str(cache or Path(folder) / "cache"),
        }
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, *prefix, *arguments, *extra],
            cwd=folder,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        return time.perf_counter() - started


def fill_data_cache(cache: Path) -> None:
    """Put the default config's data in `cache`, as the first command on a machine does."""
    code = "from lrsearch.problem.config import load_config; from lrsearch.problem.data import load_data; "
    code += "config = load_config(None); load_data(config.data, config.study.seed)"
    env = os.environ | {"PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(cache)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def hand_written(trials: int, *, optuna_default: bool = False) -> None:
    """(a): the search as one writes it by hand after Optuna's PyTorch example (run in its own process).

    With `optuna_default`, (b): the same with Optuna's default pruner, judging from the first epoch.
    """
    sys.path.insert(0, str(Path(__file__).parent))
    import optuna
    import torch
    from throughput import example_search

    from lrsearch.base.logs import quiet_optuna
    from lrsearch.problem.config import SearchConfig
    from lrsearch.problem.data import load_data
    from lrsearch.trials.pruners import make_pruner

    quiet_optuna()
    torch.set_num_threads(1)
    config = SearchConfig.model_validate({})
    data = load_data(config.data, config.study.seed)
    pruner = optuna.pruners.MedianPruner() if optuna_default else make_pruner("median", config.train.epochs)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=config.study.seed), pruner=pruner)
    example_search(study, config, data, trials=trials, prune_from=1 if optuna_default else None)


TRIAL_LOOP = "lrsearch/trials/loop.py"
CERTIFY = "lrsearch/certification/certify.py"
# Each bucket: which calls count, as (callee file, callee name, caller file) -> bool; a call counts with
# everything it calls, so storage reads inside the sampler count in both. The engine the trial loop holds
# may be a wrapper (`engines.threads`): its calls from the loop count, whichever engine file answers.
BUCKETS = {
    "training (the engines' epochs)": lambda file, name, caller: (
        "lrsearch/engines/" in file and name in {"train_epoch", "add", "remove"} and caller.endswith(TRIAL_LOOP)
    ),
    "sampler (its storage reads included)": lambda file, name, caller: (
        "optuna/samplers" in file and "optuna/samplers" not in caller
    ),
    "storage (Optuna's storage, SQLAlchemy)": lambda file, name, caller: (
        "optuna/storages" in file and "optuna/storages" not in caller and "sqlalchemy" not in caller
    ),
    "pictures (each trial's, drawn and attached)": lambda file, name, caller: (
        file.endswith("lrsearch/views/dashboard.py") and name == "__call__"
    ),
    "certification (its runs' training included)": lambda file, name, caller: (
        file.endswith(CERTIFY) and name == "certify" and not caller.endswith(CERTIFY)
    ),
}


def profile_buckets(stats_file: Path) -> tuple[float, dict[str, float]]:
    """Total profiled seconds, the start-up (and the summary after the search: all but the trial loop and
    certification), and each bucket's seconds."""
    stats = pstats.Stats(str(stats_file)).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    total = max(entry[3] for entry in stats.values())

    def spent(path: str, function: str) -> float:
        return sum(
            ct for (file, _, name), (_, _, _, ct, _) in stats.items() if name == function and file.endswith(path)
        )

    seconds = {
        "start-up, data, study set-up, summary": total - spent(TRIAL_LOOP, "run_trials") - spent(CERTIFY, "certify")
    }
    for bucket, test in BUCKETS.items():
        seconds[bucket] = sum(
            ct
            for (file, _, name), (_, _, _, _, callers) in stats.items()
            for (caller, _, _), (_, _, _, ct) in callers.items()
            if test(file, name, caller)
        )
    return total, seconds


def profile_default(trials: int, cache: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="lrsearch-profile-") as folder:
        stats_file = Path(folder) / "default.prof"
        optimize = ["-m", "lrsearch", "optimize", "--trials", str(trials)]  # certified, as typed
        wall = run_once(optimize, None, cache, prefix=["-m", "cProfile", "-o", str(stats_file)])
        total, seconds = profile_buckets(stats_file)
    print(f"\nprofile of the default command (main thread; {total:.1f} s profiled, {wall:.1f} s wall under cProfile)")
    print(f"  {'bucket':44s} {'seconds':>8s} {'share':>6s}")
    for bucket, value in seconds.items():
        print(f"  {bucket:44s} {value:8.2f} {value / total:6.0%}")
    print("  (storage is counted wherever it is called: inside the sampler and the pictures too)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="runs of every row, taken in turn (the median)")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--big", action="store_true", help="also --trials 200 --stack 50, SQLite file vs in memory")
    parser.add_argument("--skip-profile", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated row numbers (1-based) to run")
    parser.add_argument("--hand-written", type=int, metavar="TRIALS", help=argparse.SUPPRESS)
    parser.add_argument("--optuna-default-pruner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hand_written is not None:
        hand_written(args.hand_written, optuna_default=args.optuna_default_pruner)
        return
    rows = command_rows(args.trials, args.big)
    if args.only:
        keep = {int(i) - 1 for i in args.only.split(",")}
        rows = {label: row for i, (label, row) in enumerate(rows.items()) if i in keep or label.startswith("(a)")}
    times: dict[str, list[float]] = {label: [] for label in rows}
    cache_folder = tempfile.TemporaryDirectory(prefix="lrsearch-bench-cache-")
    cache = Path(cache_folder.name)
    fill_data_cache(cache)
    for _ in range(args.rounds):
        for label, (arguments, config) in rows.items():
            cold = label == COLD or label.startswith(("(a)", "(b)"))
            times[label].append(run_once(arguments, config, None if cold else cache))
    medians = {label: statistics.median(values) for label, values in times.items()}
    reference = next(value for label, value in medians.items() if label.startswith("(a)"))
    cores = len(os.sched_getaffinity(0))
    print(f"the default search, {cores} CPU cores, whole processes, median of {args.rounds} rounds taken in turn")
    print(f"| {'run':66s} | {'wall':>7s} | {'(a) / run':>9s} | min..max |")
    for label, value in medians.items():
        spread = f"{min(times[label]):.1f}..{max(times[label]):.1f}"
        print(f"| {label:66s} | {value:5.1f} s | {reference / value:8.2f}x | {spread} |")
    optuna_default = next((value for label, value in medians.items() if label.startswith("(b)")), None)
    certified = next((value for label, value in medians.items() if "(certified" in label), None)
    if optuna_default is not None and certified is not None:
        print(f"(b) / the certified default command: {optuna_default / certified:.2f}x")
    if not args.skip_profile:
        profile_default(args.trials, cache)
    cache_folder.cleanup()


if __name__ == "__main__":
    main()
