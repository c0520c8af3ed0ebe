"""How many trials a worker trains at once: what `--stack auto` means, per device and model.

The built-in MLP: a fixed size per device, measured once (below). A model of your own: stacked only if
the stacked engine can train it (`func_stacked.stackable` tries it), and then at the size a short
measurement on this device finds fastest; one trial at a time when stacking does not pay. A size `auto`
picks is capped so that the sampler sees at least four generations of finished trials within the budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from lrsearch.engines.interface import Engine
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
# A model of your own is stacked when the measurement finds a stack at least this much faster per trial:
# below it, the sampler's later look at finished trials costs more than the time saved.
WORTH_STACKING = 1.3
# A lone epoch slower than this is compute-bound: stacking would not pay, and measuring would take long.
MEASURE_AT_MOST_S = 2.0


class _LoneTrialRaised(Exception):
    """A lone trial raised while it was measured: the task's code, which the trials will meet too."""


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
    if data is None or data.stackable:
        return StackChoice(_capped(AUTO_STACK_GPU if device.type == "cuda" else AUTO_STACK_CPU, trials, setting))
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
    sizes = sorted({1, *(_capped(size, trials, "auto") for size in (10, 50))})
    if sizes == [1]:
        return StackChoice(1)
    try:
        speeds, slower = _trial_epochs_per_second(data, spec, device, sizes, threads)
    except _LoneTrialRaised as error:  # the user's model or data: each trial will fail with this reason
        return StackChoice(1, f"task {task} trains one trial at a time: one trial alone raised {error}")
    if len(speeds) == 1 and slower is None:
        return StackChoice(1, f"task {task} trains one trial at a time: its epochs are compute-bound on {device}")
    best = max(speeds, key=lambda size: speeds[size])
    gain = speeds[best] / speeds[1] if best > 1 else slower / speeds[1]
    if gain < WORTH_STACKING:
        return StackChoice(1, f"task {task} trains one trial at a time: stacking measured {gain:.2f}x as fast")
    return StackChoice(best, f"task {task}: {best} trials at once (measured {gain:.1f}x as fast as one at a time)")


def _capped(fastest: int, trials: int | None, setting: int | str) -> int:
    if setting != "auto":
        return int(setting)
    return fastest if trials is None else max(1, min(fastest, -(-trials // 4)))


def problem_spec(config: SearchConfig) -> RunSpec:
    """A RunSpec of the config's problem (the search's own choices at their defaults)."""
    return RunSpec(
        data=config.data,
        model=config.model,
        epochs=max(2, config.train.epochs),
        batch_size=config.train.batch_size,
        seed=config.study.seed,
    )


def _trial_epochs_per_second(
    data: Data, spec: RunSpec, device: torch.device, sizes: list[int], threads: int
) -> tuple[dict[int, float], float | None]:
    """Each stack size's speed on this device, on the threads its worker would have: its second epoch
    timed (the first warms up), growing sizes only while each gained 1.3x on the best before it (one that
    did not is left out); a compute-bound lone epoch stops the measurement at once.

    Returns:
        The sizes' speeds (trial-epochs a second), and the speed of the size left out (None if none was).
    """

    speeds: dict[int, float] = {}
    slower = None
    outside_threads = torch.get_num_threads()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for size in sizes:
                torch.set_num_threads(1 if size == 1 else threads)
                try:
                    seconds = _second_epoch_seconds(data, spec, device, size)
                except Exception as error:  # noqa: BLE001 - out of memory at this size, say: the sizes before it stand
                    if size == 1:  # no size before it: the task's own code failed
                        lines = str(error).strip().splitlines()
                        raise _LoneTrialRaised(f"{type(error).__name__}: {lines[0] if lines else ''}") from error
                    break
                best_before = max(speeds.values(), default=0.0)
                if size > 1 and size / seconds < WORTH_STACKING * best_before:
                    slower = size / seconds
                    break  # did not pay: not a candidate, and larger sizes will not pay either
                speeds[size] = size / seconds
                if size == 1 and seconds > MEASURE_AT_MOST_S:
                    break
    finally:
        torch.set_num_threads(outside_threads)
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the workers train on this device next
    return speeds, slower


def _second_epoch_seconds(data: Data, spec: RunSpec, device: torch.device, size: int) -> float:
    from lrsearch.engines.lone import LoneEngine
    from lrsearch.engines.stacked_func import FuncStackedTrainer

    engine: Engine = LoneEngine(data, device) if size == 1 else FuncStackedTrainer(data, spec, device)
    for key in range(size):
        engine.add(key, spec.model_copy(update={"seed": (spec.seed + key) % 2**31}))
    engine.train_epoch()  # the first warms up
    started = time.perf_counter()
    engine.train_epoch()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - started
