"""How many trials a worker trains at once: what `--stack auto` means, per device and model.

The built-in MLP: a fixed size per device, measured once (below). A model of your own: stacked only if
the stacked engine can train it (`stacked_func.stackable` tries it), and then at the size a short
measurement on this device finds fastest for the trial budget; one trial at a time when stacking does
not pay. The measurement is kept in the user's cache folder (`stack_cache`): the next command on the same
model, device and machine starts at once.

The largest size `auto` picks (`largest_stack`) keeps generations of finished trials for the sampler to
learn from, but only beyond its random start: Optuna's TPE and GP sample their first 10 trials at random
whatever they have seen, so a first generation of 10 costs them nothing; past that, a stack is at most a
quarter of the budget (four generations). Within that bound the size is the one whose whole search of
`--trials` trials is estimated fastest from the measured speeds (a last, partial generation included),
a larger size taken over a smaller only when it makes the search 1.3x as fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from lrsearch.engines.stack_cache import Speeds
from lrsearch.engines.stack_speeds import LoneTrialRaised, measured_speeds
from lrsearch.problem.config import SearchConfig
from lrsearch.problem.data import Data
from lrsearch.problem.spec import RunSpec

# benchmarks/throughput.py on a 2-core CPU: stacks of 10, 25 and 50 train 5.8x, 8.8x and 10.7x faster
# than an Optuna-example loop, but searches of a fixed time found their best schedules with K=10 (mean
# best val loss over 3 seeds: K=10 0.2487, K=16 0.2572, K=25 0.2537, one at a time 0.2535): the
# sampler learns only when a generation of trials ends.
AUTO_STACK_CPU = 10
# On an H100 throughput keeps growing with K (K=50 49x, 100 89x, 200 153x, 400 212x an Optuna-example
# loop); 128 is fast there while the sampler still sees generations on budgets of 500 trials or more.
AUTO_STACK_GPU = 128
# A model of your own is stacked when the measurement finds a stack makes the search at least this much
# faster: below it, the sampler's later look at finished trials costs more than the time saved.
WORTH_STACKING = 1.3
# Trials Optuna's TPE and GP sample at random before they use what they have seen (n_startup_trials).
SAMPLER_START = 10
GENERATIONS = 4  # past the sampler's random start, a stack is at most 1/GENERATIONS of the budget
LADDER = (1, 10, 50)  # the sizes measured (up to a search's largest); a size between two is interpolated


@dataclass(frozen=True)
class StackChoice:
    size: int
    why: str | None = None  # what the command says about it (a user's model), or None


def choose_stack(config: SearchConfig, device: torch.device, data: Data | None, threads: int = 1) -> StackChoice:
    """The stack size a worker on `device` uses.

    Args:
        data: the task's data on `device`, for a model of the user's own (None for the built-in MLP).
        threads: torch threads a stacked worker on the CPU gets (one trial at a time gets one).
    """
    setting, trials = config.study.stack, config.study.trials
    largest = largest_stack(trials)
    if data is None or data.stackable:
        if setting != "auto":
            return StackChoice(int(setting))
        fixed = AUTO_STACK_GPU if device.type == "cuda" else AUTO_STACK_CPU
        return StackChoice(fixed if largest is None else min(fixed, largest))
    from lrsearch.engines.stacked_func import stackable

    task = config.data.task
    if setting == 1:
        return StackChoice(1)  # what was asked for: nothing to try
    spec = problem_spec(config)
    reason = stackable(data, spec, device)
    if reason is not None:
        return StackChoice(1, f"task {task} trains one trial at a time: its model can't be stacked ({reason})")
    if setting != "auto":
        return StackChoice(int(setting))
    if largest == 1:
        return StackChoice(1)
    try:
        speeds, ended = measured_speeds(data, spec, device, threads, _sizes_for(largest))
    except LoneTrialRaised as error:  # the user's model or data: each trial will fail with this reason
        return StackChoice(1, f"task {task} trains one trial at a time: one trial alone raised {error}")
    if len(speeds) == 1 and ended:
        return StackChoice(1, f"task {task} trains one trial at a time: its epochs are compute-bound on {device}")
    best = pick_size(speeds, trials)
    if best == 1:
        gain = max((_gain(speeds, size, trials) for size in _candidates(speeds, largest) if size > 1), default=1.0)
        return StackChoice(1, f"task {task} trains one trial at a time: stacking measured {gain:.2f}x as fast")
    gain = _gain(speeds, best, trials)
    return StackChoice(best, f"task {task}: {best} trials at once (measured {gain:.1f}x as fast as one at a time)")


def largest_stack(trials: int | None) -> int | None:
    """The largest size `auto` picks for a budget of `trials` (None: no budget, no bound): the sampler's
    random start, or a quarter of the budget where that is more; never more than the budget."""
    if trials is None:
        return None
    return max(1, min(trials, max(SAMPLER_START, math.ceil(trials / GENERATIONS))))


def pick_size(speeds: Speeds, trials: int | None) -> int:
    """The stack size that searches `trials` trials fastest by the measured `speeds` (trial-epochs a
    second per size), within `largest_stack`, each larger size taken only when it makes the search
    `WORTH_STACKING` times as fast as the size taken before it."""
    best = 1
    for size in _candidates(speeds, largest_stack(trials)):
        if search_seconds(speeds, best, trials) >= WORTH_STACKING * search_seconds(speeds, size, trials):
            best = size
    return best


def search_seconds(speeds: Speeds, size: int, trials: int | None) -> float:
    """Seconds an epoch of every trial of the search takes at `size` (per trial without a budget): full
    generations of `size` trials, then one of the rest."""
    if trials is None:
        return 1 / _speed_at(speeds, size)
    full, rest = divmod(trials, size)
    return full * size / _speed_at(speeds, size) + (rest / _speed_at(speeds, rest) if rest else 0.0)


def _gain(speeds: Speeds, size: int, trials: int | None) -> float:
    return search_seconds(speeds, 1, trials) / search_seconds(speeds, size, trials)


def _candidates(speeds: Speeds, largest: int | None) -> list[int]:
    """The measured sizes within `largest`, and `largest` itself where it lies between two measured ones."""
    measured = sorted(speeds)
    sizes = [size for size in measured if largest is None or size <= largest]
    if largest is not None and measured[0] < largest < measured[-1] and largest not in sizes:
        sizes.append(largest)
    return sizes


def _speed_at(speeds: Speeds, size: int) -> float:
    """The measured speed at `size`, or one interpolated between the measured sizes beside it (the
    largest measured one's beyond them)."""
    if size in speeds:
        return speeds[size]
    below = max((s for s in speeds if s < size), default=min(speeds))
    above = min((s for s in speeds if s > size), default=None)
    if above is None or below > size:
        return speeds[below]
    share = (size - below) / (above - below)
    return speeds[below] + share * (speeds[above] - speeds[below])


def _sizes_for(largest: int | None) -> list[int]:
    """The sizes a search bounded by `largest` measures: the ladder's below it, and `largest` itself
    (at most the ladder's top)."""
    top = LADDER[-1] if largest is None else min(largest, LADDER[-1])
    return sorted({size for size in LADDER if size < top} | {top})


def problem_spec(config: SearchConfig) -> RunSpec:
    """A RunSpec of the config's problem (the search's own choices at their defaults)."""
    return RunSpec(
        data=config.data,
        model=config.model,
        epochs=max(2, config.train.epochs),
        batch_size=config.train.batch_size,
        seed=config.study.seed,
    )
