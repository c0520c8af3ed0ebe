"""What a study's storage costs a search: the same seeded search, in one process, on each storage.

Each storage runs the default search (TPE, median pruner, 20 epochs a trial, 1 CPU thread) from the
same seed; the difference to the in-memory run, divided by the trials, is the storage's cost per trial
(ask, parameters, one report a epoch, the pruner's reads, curves, tell). "SQLite, Optuna's set-up" is
the file as `optuna.create_study(storage="sqlite:///...")` opens it; "SQLite, lrsearch" is the same
file as lrsearch opens it (WAL, immediate transactions) with the objective skipping pruner calls that
can only say no. PostgreSQL is a throwaway local server (Debian's binaries), skipped when absent.

    python benchmarks/storage.py [--trials 50]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import optuna
import torch

from lrsearch.base.logs import quiet_optuna
from lrsearch.problem.config import SearchConfig
from lrsearch.problem.data import Data, load_data
from lrsearch.searching.workers import run_here
from lrsearch.store.storage import open_storage
from lrsearch.trials.objective import Objective
from lrsearch.trials.pruners import make_pruner
from lrsearch.trials.samplers import make_sampler

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from postgres_server import new_database, throwaway_postgres  # noqa: E402


class _AlwaysAsking(Objective):
    """The objective as it was before it skipped pruner calls that can only say no."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.first_pruning_epoch = 1


def timed_search(
    config: SearchConfig, storage: optuna.storages.BaseStorage | None, data: Data, objective: Callable = Objective
) -> tuple[float, float]:
    study = optuna.create_study(
        storage=storage,
        sampler=make_sampler(config.study.sampler, config.study.seed),
        pruner=make_pruner(config.study.pruner, config.train.epochs),
    )
    started = time.perf_counter()
    run_here(study, objective(config, data, torch.device("cpu")), config.study.trials)
    return time.perf_counter() - started, study.best_value


@contextlib.contextmanager
def postgres() -> Iterator[str | None]:
    try:
        with throwaway_postgres() as server:
            yield new_database(server)
    except FileNotFoundError:
        yield None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    trials = parser.parse_args().trials
    quiet_optuna()
    torch.set_num_threads(1)
    config = SearchConfig.model_validate({"study": {"trials": trials}})
    data = load_data(config.data, config.study.seed)
    with tempfile.TemporaryDirectory() as folder, postgres() as postgres_url:
        runs = {
            "in-memory": lambda: timed_search(config, None, data),
            "SQLite, Optuna's set-up": lambda: timed_search(
                config, optuna.storages.RDBStorage(f"sqlite:///{folder}/optuna.db"), data, _AlwaysAsking
            ),
            "SQLite, lrsearch": lambda: timed_search(config, open_storage(f"sqlite:///{folder}/lrsearch.db"), data),
            "journal file": lambda: timed_search(config, open_storage(f"{folder}/journal.log"), data),
        }
        if postgres_url is not None:
            runs["PostgreSQL (local)"] = lambda: timed_search(config, open_storage(postgres_url), data)
        results = {name: run() for name, run in runs.items()}
    base, _ = results["in-memory"]
    print(f"{trials} trials, default config, TPE + median pruner, 1 CPU thread, same seed on every storage")
    print(f"{'storage':26s} {'search':>9s} {'ratio':>6s} {'per trial':>10s}  best val loss")
    for name, (seconds, best) in results.items():
        per_trial = (seconds - base) / trials * 1000
        print(f"{name:26s} {seconds:7.2f} s {seconds / base:5.2f}x {per_trial:7.0f} ms  {best:.6f}")
    if postgres_url is None:
        print("PostgreSQL: not installed here, skipped (apt-get install postgresql)")
    print(f"training alone: {base / trials * 1000:.0f} ms a trial on average (pruned trials are shorter)")


if __name__ == "__main__":
    main()
