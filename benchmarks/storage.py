"""How much of a search's time goes to the study's storage: the same seeded search, in one process, on
Optuna's in-memory storage and on the default SQLite file. Prints seconds and the ratio.

    python benchmarks/storage.py [--trials 50]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings

import optuna
import torch

from lrsearch.config import SearchConfig
from lrsearch.data import load_data
from lrsearch.objective import Objective
from lrsearch.study import make_pruner, make_sampler, open_storage, run_trials


def timed_search(config: SearchConfig, storage: optuna.storages.BaseStorage | None, data) -> tuple[float, float]:
    study = optuna.create_study(
        storage=storage,
        sampler=make_sampler(config.study.sampler, config.study.seed),
        pruner=make_pruner(config.study.pruner, config.train.epochs),
    )
    started = time.perf_counter()
    run_trials(study, Objective(config, data, torch.device("cpu")), config.study.trials, None)
    return time.perf_counter() - started, study.best_value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    trials = parser.parse_args().trials
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    torch.set_num_threads(1)
    config = SearchConfig.model_validate({"study": {"trials": trials}})
    data = load_data(config.data, config.study.seed)
    with tempfile.TemporaryDirectory() as folder:
        results = {
            "in-memory": timed_search(config, None, data),
            "sqlite file": timed_search(config, open_storage(f"sqlite:///{folder}/bench.db"), data),
        }
    base = results["in-memory"][0]
    print(f"{trials} trials, default config, TPE + median pruner, 1 CPU thread")
    for name, (seconds, best) in results.items():
        print(f"{name:12s} {seconds:7.2f} s  {seconds / base:5.2f}x  best val loss {best:.6f}")
    print(f"storage cost per trial on SQLite: {(results['sqlite file'][0] - base) / trials * 1000:.0f} ms")


if __name__ == "__main__":
    main()
