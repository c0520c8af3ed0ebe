"""What one certification round costs, and whether another way of training it is faster.

After the default search, certification is one round: the race's first 3 fresh seeds of its 6 candidates
and the walks' open steps, about 20 runs of the built-in MLP, 20 epochs each, trained side by side. Its
time is that round's epochs. Here an epoch of such a stack is timed, on the default problem, three ways:

- one stack of K runs on 1 and on 2 torch threads, for K from a search's tail (3) to the round (20);
- two stacks of 10 in two Python threads, one torch thread each (the round split in two), against one
  stack of 20 on 2 threads (what certification does).

The ways are taken in turn for `--rounds` rounds and each one's median is printed: ms an epoch, and ms a
run-epoch (the epoch over K).

    python benchmarks/certify_round.py [--rounds 3] [--epochs 5]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable

import torch

from lrsearch.engines.stacked_mlp import StackedTrainer
from lrsearch.problem.config import SearchConfig
from lrsearch.problem.data import Data, load_data
from lrsearch.problem.spec import RunSpec, ScheduleSpec

SIZES = (3, 6, 10, 13, 20)


def stack_of(data: Data, runs: int, first_seed: int) -> StackedTrainer:
    """A stack of `runs` runs of the default problem (StepLR, as most certified answers), one epoch trained."""
    spec = RunSpec(lr=0.03, schedule=ScheduleSpec(name="StepLR", params={"step_size": 10, "gamma": 0.1}))
    stack = StackedTrainer(data, spec, torch.device("cpu"))
    for row in range(runs):
        stack.add(row, spec.model_copy(update={"seed": first_seed + row, "lr": 0.01 * (1 + row % 5)}))
    stack.train_epoch()  # the first epoch builds what the stack keeps: not timed
    return stack


def one_stack(data: Data, runs: int, threads: int, epochs: int) -> float:
    """Seconds an epoch of one stack of `runs` runs on `threads` torch threads."""
    torch.set_num_threads(threads)
    stack = stack_of(data, runs, 100)
    started = time.perf_counter()
    for _ in range(epochs):
        stack.train_epoch()
    return (time.perf_counter() - started) / epochs


def two_stacks_in_threads(data: Data, runs: int, epochs: int) -> float:
    """Seconds an epoch of two stacks of `runs` runs, each in its own Python thread on one torch thread."""
    torch.set_num_threads(1)
    stacks = [stack_of(data, runs, 100), stack_of(data, runs, 200)]

    def train(stack: StackedTrainer) -> None:
        for _ in range(epochs):
            stack.train_epoch()

    workers = [threading.Thread(target=train, args=(stack,)) for stack in stacks]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return (time.perf_counter() - started) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="each way this many times, taken in turn (median)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs timed per way and round")
    args = parser.parse_args()
    config = SearchConfig()
    data = load_data(config.data, config.study.seed)
    ways: dict[str, tuple[int, Callable[[], float]]] = {}
    for runs in SIZES:
        for threads in (1, 2):
            ways[f"one stack of {runs}, {threads} thread{'s' * (threads > 1)}"] = (
                runs,
                lambda runs=runs, threads=threads: one_stack(data, runs, threads, args.epochs),
            )
    ways["two stacks of 10, two Python threads"] = (20, lambda: two_stacks_in_threads(data, 10, args.epochs))
    seconds: dict[str, list[float]] = {label: [] for label in ways}
    for _ in range(args.rounds):
        for label, (_, way) in ways.items():
            seconds[label].append(way())
    medians = {label: statistics.median(values) for label, values in seconds.items()}
    steps = data.steps_per_epoch(config.train.batch_size)
    print(f"an epoch of the default problem ({steps} steps), median of {args.rounds} rounds taken in turn")
    print(f"{'way':<40}{'ms an epoch':>12}{'ms a run-epoch':>16}")
    for label, (runs, _) in ways.items():
        print(f"{label:<40}{medians[label] * 1000:>12.1f}{medians[label] * 1000 / runs:>16.2f}")
    split = medians["two stacks of 10, two Python threads"] / medians["one stack of 20, 2 threads"]
    print(f"two stacks of 10 in two Python threads / one stack of 20 on 2 threads: {split:.2f}x the time")


if __name__ == "__main__":
    main()
