"""Trial-epochs per second: `lrsearch.train` one trial at a time, the torch.func stacked engine (any model) and
the built-in MLP's specialised stacked engine, on the built-in MLP and on the conv net of studies/my_task.py.

Every way trains the same sampled trials (random optimizers and schedules, a seed each) on one thread; the
ways run alternately, `--repeats` times, and the median is printed.

    python benchmarks/func_stacked_speed.py [--stacks 10,50] [--epochs 2] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import optuna
import torch

from lrsearch.config import SearchConfig
from lrsearch.data import Data, Split, load_data
from lrsearch.func_stacked import FuncStackedTrainer
from lrsearch.logs import quiet_optuna
from lrsearch.space import sample_run_spec
from lrsearch.spec import DataSpec, RunSpec
from lrsearch.stacked import StackedTrainer
from lrsearch.train import train


def specs_for(data: Data, data_spec: DataSpec, batch_size: int, epochs: int, count: int) -> list[RunSpec]:
    config = SearchConfig.model_validate({"train": {"epochs": epochs, "batch_size": batch_size}})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    steps = data.steps_per_epoch(batch_size)
    return [
        sample_run_spec(study.ask(), config, steps).model_copy(update={"data": data_spec, "seed": seed})
        for seed in range(count)
    ]


def lone(data: Data, specs: list[RunSpec]) -> float:
    start = time.perf_counter()
    for spec in specs:
        train(spec, data)
    return sum(s.epochs for s in specs) / (time.perf_counter() - start)


def stacked(engine: type, data: Data, specs: list[RunSpec]) -> float:
    start = time.perf_counter()
    trainer = engine(data, specs[0])
    for index, spec in enumerate(specs):
        trainer.add(index, spec)
    for _ in range(specs[0].epochs):
        trainer.train_epoch()
    return sum(s.epochs for s in specs) / (time.perf_counter() - start)


def conv_data(loader: bool) -> tuple[Data, DataSpec]:
    """studies/my_task.py's conv net, trained from its own DataLoader or from the same rows as tensors."""
    from studies.my_task import build

    task = build()
    train_split = task.train if loader else Split(*task.train.dataset.tensors)
    data = Data(train_split, Split(*task.val), None, None, task.score, model_factory=task.model, loss_fn=task.loss)
    return data, DataSpec(task="studies.my_task:build")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", default="10,50")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--lone-trials", type=int, default=10, help="trials timed one at a time")
    args = parser.parse_args()
    quiet_optuna()
    torch.set_num_threads(args.threads)
    stacks = [int(k) for k in args.stacks.split(",")]
    mlp_spec = DataSpec()  # the default task: 5000 rows, 3 classes, 20 features; hidden 64, batch 32
    problems = {
        "built-in MLP (5000 rows, batch 32)": (load_data(mlp_spec, seed=0), mlp_spec, 32, True),
        "conv net on tensors (digits, batch 64)": (*conv_data(loader=False), 64, False),
        "conv net on its DataLoader (batch 64)": (*conv_data(loader=True), 64, False),
    }
    for title, (data, data_spec, batch_size, mlp) in problems.items():
        specs = specs_for(data, data_spec, batch_size, args.epochs, max(stacks + [args.lone_trials]))
        ways: dict[str, Callable[[], float]] = {"lone train()": lambda d=data, s=specs: lone(d, s[: args.lone_trials])}
        for k in stacks:
            ways[f"func stacked K={k}"] = lambda d=data, s=specs[:k]: stacked(FuncStackedTrainer, d, s)
            if mlp:
                ways[f"StackedTrainer K={k}"] = lambda d=data, s=specs[:k]: stacked(StackedTrainer, d, s)
        lone(data, specs[:1])  # the first run in a process pays for torch's warm-up
        stacked(FuncStackedTrainer, data, specs[:2])
        rates: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.repeats):
            for name, way in ways.items():
                rates[name].append(way())
        base = statistics.median(rates["lone train()"])
        print(f"\n{title}: trial-epochs/s, median of {args.repeats}, {args.threads} thread(s)")
        for name, values in rates.items():
            rate = statistics.median(values)
            print(f"  {name:<22} {rate:9.1f}   x{rate / base:5.2f} of lone")


if __name__ == "__main__":
    main()
