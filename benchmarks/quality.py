"""Search quality you can trust: how close the default search comes to a large random search.

Per task and seed, three searches run on the same data (in memory, one process):
- default: what `lrsearch optimize` does (TPE, median pruner), 50 trials;
- random: random sampling with the same pruner, 50 trials;
- reference: random sampling without pruning, 500 trials (every trial trained to the end).
Each search's best trial (lowest val loss) is replayed one at a time, as `lrsearch train` replays it, and
measured on the test split, which no search looked at. A trial trained in a stack at the edge of
stability can diverge on its replay (the batched matmul rounds differently in the last bit, and a chaotic
run amplifies it); then the next best trial is taken and the figure marked `*`. The table prints each
search's test loss and its gap to the reference's (negative: better than the reference), then the default
winner beside the constant-LR and StepLR baselines `lrsearch train` compares with ("div": diverged).

    python benchmarks/quality.py [--tasks classification,moons,digits,regression] [--seeds 0,1,2]
        [--trials 50] [--reference-trials 500] [--device cpu]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import dataclass

import torch
from optuna.trial import TrialState

import lrsearch
from lrsearch.baselines import baseline_specs
from lrsearch.data import load_data
from lrsearch.device import pin_threads
from lrsearch.records import RUN_SPEC
from lrsearch.spec import RunSpec
from lrsearch.train import Diverged, train


@dataclass
class Found:
    spec: RunSpec
    test_loss: float
    seconds: float
    rank: int  # 1: the best trial; more: the better ones diverged on their replay

    @property
    def text(self) -> str:
        return f"{self.test_loss:.4f}" + ("*" if self.rank > 1 else " ")


def best_of(task: str, seed: int, trials: int, sampler: str, pruner: str, device: str) -> Found:
    started = time.perf_counter()
    config = {"study": {"storage": "sqlite:///:memory:", "figures": False, "devices": device}}
    name = f"{task}-{seed}-{sampler}-{pruner}-{trials}"  # one in-memory storage per process: a study each
    result = lrsearch.search(
        config, task=task, seed=seed, trials=trials, sampler=sampler, pruner=pruner, study_name=name
    )
    seconds = time.perf_counter() - started
    completed = sorted(result.study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: t.value)
    for rank, trial in enumerate(completed, start=1):
        spec = RunSpec.model_validate(trial.user_attrs[RUN_SPEC])
        loss = test_loss(spec, device)
        if math.isfinite(loss):
            return Found(spec, loss, seconds, rank)
    raise SystemExit(f"{name}: every completed trial diverged on its replay")


def test_loss(spec: RunSpec, device: str) -> float:
    data = load_data(spec.data, spec.seed, device)
    try:
        return train(spec, data, device, evaluate_test=True).test_loss
    except Diverged:
        return float("inf")


def _loss(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else "div"


def _mean(values: list[float]) -> str:
    finite = [value for value in values if math.isfinite(value)]
    diverged = len(values) - len(finite)
    text = f"{statistics.mean(finite):+.4f}" if finite else "-"
    return text + (f" ({diverged} div)" if diverged else "")


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

    header = f"{'task':<15}{'seed':>5}{'reference':>11}{'default':>9}{'gap':>9}{'random':>9}{'gap':>9}"
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
            row = gaps.setdefault(task, {"default": [], "random": [], "const": [], "step": []})
            row["default"].append(default.test_loss - reference.test_loss)
            row["random"].append(random.test_loss - reference.test_loss)
            row["const"].append(baselines[0] - default.test_loss)
            row["step"].append(baselines[1] - default.test_loss)
            print(
                f"{task:<15}{seed:>5}{reference.text:>11}{default.text:>9}{row['default'][-1]:>+9.4f}"
                f"{random.text:>9}{row['random'][-1]:>+9.4f}{_loss(baselines[0]):>10}{_loss(baselines[1]):>9}"
                f"   {reference.seconds:.0f}/{default.seconds:.0f}/{random.seconds:.0f}",
                flush=True,
            )
    print("\nmean over seeds: gap to the reference (lower is better); baselines' test loss minus the default winner's")
    print(f"{'task':<15}{'default gap':>14}{'random gap':>14}{'const LR worse by':>20}{'StepLR worse by':>18}")
    for task, values in gaps.items():
        print(
            f"{task:<15}{_mean(values['default']):>14}{_mean(values['random']):>14}"
            f"{_mean(values['const']):>20}{_mean(values['step']):>18}"
        )


if __name__ == "__main__":
    main()
