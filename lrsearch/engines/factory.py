"""Which engine trains a group of trials: the one choice the search and certification both make."""

from __future__ import annotations

from collections.abc import Callable

import torch

from lrsearch.engines.interface import Engine
from lrsearch.engines.lone import LoneEngine
from lrsearch.engines.seeds import SeedsEngine
from lrsearch.engines.stacked_func import FuncStackedTrainer
from lrsearch.engines.stacked_mlp import StackedTrainer
from lrsearch.engines.threads import ThreadChooser, ThreadsByLoad
from lrsearch.problem.data import Data
from lrsearch.problem.spec import RunSpec

NewEngine = Callable[[RunSpec], Engine]  # an engine for a group of trials, given the first one's RunSpec

# The chooser of every engine the process makes, by the threads it is given. torch's threads are the
# process's, and so is what a chooser learns of the cores: it carries over from one engine to the next. A
# fresh one trains on one thread until it has watched the cores for half a second: certification after the
# default search (one round of 20 runs) took 1.6-1.7 s that way, 1.5 s with the search's chooser.
_CHOOSERS: dict[int, ThreadChooser] = {}


def engine_for(data: Data, device: torch.device, stack: int, seeds: int = 1) -> NewEngine:
    """The engine of a worker's trials: a stack of one is trained by the lone engine (real `torch.optim`
    on a real module), so that it trains as it replays; a stack of the built-in MLP on tensors by its
    specialised engine (1.9x as fast as the general one at K=10, 1.4x at K=50: benchmarks/throughput.py); any
    other model by the general stacked engine (`torch.func`), which `choose_stack` found it can train.
    With `seeds` > 1 each trial is `seeds` runs of that engine, and its epoch their mean (`SeedsEngine`).
    A stack on the CPU given more than one torch thread (`pinned_threads`) trains each epoch on as many as
    fit beside other processes' work (`ThreadsByLoad`), by the one chooser of every engine of the process."""

    def new(spec: RunSpec) -> Engine:
        if stack == 1:
            return LoneEngine(data, device)
        if data.stackable:
            return StackedTrainer(data, spec, device)
        return FuncStackedTrainer(data, spec, device)

    with_seeds = new if seeds == 1 else lambda spec: SeedsEngine(new(spec), seeds)
    if stack == 1 or device.type != "cpu" or torch.get_num_threads() == 1:
        return with_seeds
    ceiling = torch.get_num_threads()
    if ceiling not in _CHOOSERS:
        _CHOOSERS[ceiling] = ThreadChooser(ceiling)
    chooser = _CHOOSERS[ceiling]
    chooser.check_again()  # these engines' stacks may be faster on other threads than the last ones'
    return lambda spec: ThreadsByLoad(with_seeds(spec), chooser)


def spare_trials(stack: int, data: Data) -> int:
    """The trials a stack of `stack` may take beyond its size for a while (the controls' first LRs, at
    once: `trials.control_trials`): half as many again of the built-in MLP, a few kilobytes a trial; none
    of a model of one's own, whose stack may be as large as the device's memory let it be measured
    (`stack_speeds`), nor beside a stack of one, which the lone engine trains one trial at a time."""
    return stack // 2 if stack > 1 and data.stackable else 0
