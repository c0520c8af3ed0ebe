"""Search quality you can trust: how close the default search comes to a large random search.

Per task and seed, three searches run on the same data (in memory, one process):
- default: what `lrsearch optimize` does (TPE, median pruner), 50 trials;
- random: random sampling with the same pruner, 50 trials;
- reference: random sampling without pruning, 500 trials (every trial trained to the end).
Each search's best trial (lowest val loss) is replayed and measured on the test split, which no search
looked at. The table prints each one's test loss and its gap to the reference's (negative: better than
the reference), then the default winner beside the constant-LR and StepLR baselines `lrsearch train`
compares with.

    python benchmarks/quality.py [--tasks classification,moons,digits,regression] [--seeds 0,1,2]
        [--trials 50] [--reference-trials 500] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import torch

import lrsearch
from lrsearch.baselines import baseline_specs
from lrsearch.data import load_data
from lrsearch.device import pin_threads
from lrsearch.spec import RunSpec
from lrsearch.train import Diverged, train


@dataclass
class Found:
    spec: RunSpec
    val_loss: float
    test_loss: float
    seconds: float


def best_of(task: str, seed: int, trials: int, sampler: str, pruner: str, device: str) -> Found:
    started = time.perf_counter()
    config = {"study": {"storage": "sqlite:///:memory:", "figures": False, "devices": device}}
    name = f"{task}-{seed}-{sampler}-{pruner}-{trials}"  # one in-memory storage per process: a study each
    result = lrsearch.search(
        config, task=task, seed=seed, trials=trials, sampler=sampler, pruner=pruner, study_name=name
    )
    seconds = time.perf_counter() - started
    return Found(result.best, result.best_value, test_loss(result.best, device), seconds)


def test_loss(spec: RunSpec, device: str) -> float:
    data = load_data(spec.data, spec.seed, device)
    try:
        return train(spec, data, device, evaluate_test=True).test_loss
    except Diverged:
        return float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="classification,moons,digits,regression")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--reference-trials", type=int, default=500)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    pin_threads(torch.device(args.device))  # the replays; each search sets its own workers
    seeds = [int(seed) for seed in args.seeds.split(",")]

    header = f"{'task':<15}{'seed':>5}{'reference':>11}{'default':>9}{'gap':>8}{'random':>9}{'gap':>8}"
    header += f"{'const LR':>10}{'StepLR':>9}   seconds (ref/default/random)"
    print(
        f"test loss of each search's best trial ({args.trials} trials; reference: {args.reference_trials} "
        "random trials, unpruned)"
    )
    print(header)
    gaps: dict[str, dict[str, list[float]]] = {}
    for task in args.tasks.split(","):
        for seed in seeds:
            reference = best_of(task, seed, args.reference_trials, "random", "none", args.device)
            default = best_of(task, seed, args.trials, "tpe", "median", args.device)
            random = best_of(task, seed, args.trials, "random", "median", args.device)
            baselines = [test_loss(spec, args.device) for spec in baseline_specs(default.spec).values()]
            gap_default, gap_random = default.test_loss - reference.test_loss, random.test_loss - reference.test_loss
            gaps.setdefault(task, {"default": [], "random": [], "const": [], "step": []})
            gaps[task]["default"].append(gap_default)
            gaps[task]["random"].append(gap_random)
            gaps[task]["const"].append(baselines[0] - default.test_loss)
            gaps[task]["step"].append(baselines[1] - default.test_loss)
            print(
                f"{task:<15}{seed:>5}{reference.test_loss:>11.4f}{default.test_loss:>9.4f}{gap_default:>+8.4f}"
                f"{random.test_loss:>9.4f}{gap_random:>+8.4f}{baselines[0]:>10.4f}{baselines[1]:>9.4f}"
                f"   {reference.seconds:.0f}/{default.seconds:.0f}/{random.seconds:.0f}",
                flush=True,
            )
    print("\nmean over seeds: gap to the reference (lower is better); baselines' test loss minus the default winner's")
    print(f"{'task':<15}{'default gap':>12}{'random gap':>12}{'const LR worse by':>19}{'StepLR worse by':>17}")
    for task, values in gaps.items():
        print(
            f"{task:<15}{statistics.mean(values['default']):>+12.4f}{statistics.mean(values['random']):>+12.4f}"
            f"{statistics.mean(values['const']):>+19.4f}{statistics.mean(values['step']):>+17.4f}"
        )


if __name__ == "__main__":
    main()
