"""What one certification round costs, and whether another way of training it is faster.

After the default search, certification is one round: the race's first 3 fresh seeds of its 6 candidates
and the walks' open steps, about 20 runs of the built-in MLP, 20 epochs each, trained side by side. Its
time is that round's epochs. Here an epoch of such a stack is timed on the default problem, the runs
taking the control schedules in turn (the candidates of most certificates; every one steps per epoch):

- one stack of K runs on 1 torch thread and on one a core, for K from a search's tail (3) to the round (20);
- two stacks of 10 in two Python threads, one torch thread each (the round split in two), against one
  stack of 20 on the faster of 1 thread and one a core: what certification's engine trains each epoch
  on (`engines.threads`), on a machine whose cores are free.

The ways are taken in turn for `--rounds` rounds and each one's median is printed: ms an epoch, and ms a
run-epoch (the epoch over K).

    python benchmarks/certify_round.py [--rounds 3] [--epochs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

from lrsearch.engines.stacked_mlp import StackedTrainer
from lrsearch.problem.config import SearchConfig
from lrsearch.problem.controls import controls_for
from lrsearch.problem.data import Data, load_data
from lrsearch.problem.spec import RunSpec

SIZES = (3, 6, 10, 13, 20)
ROUND = 20  # the runs of the default command's certification round
HALF = ROUND // 2


def stack_of(data: Data, runs: int, first_seed: int, length: int) -> StackedTrainer:
    """A stack of `runs` runs of `length` epochs of the default problem, the control schedules in turn, one
    epoch trained."""
    schedules = [make(length) for make in controls_for(length).values()]
    first = RunSpec(lr=0.03, schedule=schedules[0], epochs=length)
    stack = StackedTrainer(data, first, torch.device("cpu"))
    for row in range(runs):
        update = {"seed": first_seed + row, "lr": 0.01 * (1 + row % 5), "schedule": schedules[row % len(schedules)]}
        stack.add(row, first.model_copy(update=update))
    stack.train_epoch()  # the first epoch builds what the stack keeps: not timed
    return stack


def run_length(epochs: int) -> int:
    """The runs' length: the default search's, or longer where more epochs are timed (and one untimed)."""
    return max(SearchConfig().train.epochs, epochs + 1)


def one_stack(data: Data, runs: int, threads: int, epochs: int) -> float:
    """Seconds an epoch of one stack of `runs` runs on `threads` torch threads."""
    torch.set_num_threads(threads)
    stack = stack_of(data, runs, 100, run_length(epochs))
    started = time.perf_counter()
    for _ in range(epochs):
        stack.train_epoch()
    return (time.perf_counter() - started) / epochs


def two_stacks_in_threads(data: Data, runs: int, epochs: int) -> float:
    """Seconds an epoch of two stacks of `runs` runs, each in its own Python thread on one torch thread
    (torch's thread count is the process's: set here, it holds in both)."""
    torch.set_num_threads(1)
    stacks = [stack_of(data, runs, 100, run_length(epochs)), stack_of(data, runs, 200, run_length(epochs))]

    def train(stack: StackedTrainer) -> None:
        for _ in range(epochs):
            stack.train_epoch()

    with ThreadPoolExecutor(max_workers=len(stacks)) as pool:
        started = time.perf_counter()
        for done in [pool.submit(train, stack) for stack in stacks]:
            done.result()  # what a thread raised is raised here, not timed as a fast epoch
        return (time.perf_counter() - started) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="each way this many times, taken in turn (median)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs timed per way and round")
    args = parser.parse_args()
    config = SearchConfig()
    data = load_data(config.data, config.study.seed)
    cores = len(os.sched_getaffinity(0))
    counts = sorted({1, cores})
    ways: dict[tuple[int, int], tuple[str, Callable[[], float]]] = {}  # (runs, threads; 0: the split)
    for runs in sorted({*SIZES, ROUND}):
        for threads in counts:
            label = f"one stack of {runs}, {threads} thread{'s' * (threads > 1)}"
            ways[runs, threads] = label, lambda runs=runs, threads=threads: one_stack(data, runs, threads, args.epochs)
    ways[ROUND, 0] = (
        f"two stacks of {HALF}, two Python threads",
        lambda: two_stacks_in_threads(data, HALF, args.epochs),
    )
    seconds: dict[tuple[int, int], list[float]] = {key: [] for key in ways}
    for _ in range(args.rounds):
        for key, (_, way) in ways.items():
            seconds[key].append(way())
    medians = {key: statistics.median(values) for key, values in seconds.items()}
    steps = data.steps_per_epoch(config.train.batch_size)
    print(
        f"an epoch of the default problem ({steps} steps), {cores} cores, median of {args.rounds} rounds taken in turn"
    )
    print(f"{'way':<40}{'ms an epoch':>12}{'ms a run-epoch':>16}")
    for key, (label, _) in ways.items():
        print(f"{label:<40}{medians[key] * 1000:>12.1f}{medians[key] * 1000 / key[0]:>16.2f}")
    threads, whole = min(((t, medians[ROUND, t]) for t in counts), key=lambda item: item[1])
    split = medians[ROUND, 0] / whole
    print(
        f"two stacks of {HALF} in two Python threads / one stack of {ROUND} on {threads} thread"
        f"{'s' * (threads > 1)} (the faster): {split:.2f}x the time"
    )


if __name__ == "__main__":
    main()
