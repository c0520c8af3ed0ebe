"""What `--stack auto` means for the built-in MLP and for a model of one's own."""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.nn import functional as F

from lrsearch.engines.autostack import AUTO_STACK_CPU, StackChoice, choose_stack, problem_spec
from lrsearch.engines.factory import engine_for
from lrsearch.problem.config import SearchConfig
from tests.conftest import TINY

CPU = torch.device("cpu")


def _config(stack: int | str = "auto", trials: int = 50) -> SearchConfig:
    return SearchConfig.model_validate(TINY | {"study": {"stack": stack, "trials": trials}})


class _Branchy(nn.Module):
    """Data-dependent control flow: a batched computation cannot follow it."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer(x)
        return out if out.sum() > 0 else -out


def _own_model(tiny_data, factory):
    return dataclasses.replace(tiny_data, model_factory=factory, loss_fn=F.cross_entropy)


def test_the_built_in_mlp_stacks_at_the_cpu_size_capped_by_the_budget():
    assert choose_stack(_config(), CPU, None).size == AUTO_STACK_CPU
    assert choose_stack(_config(trials=12), CPU, None).size == 3  # four generations of finished trials
    assert choose_stack(_config(stack=7), CPU, None).size == 7


def test_a_model_that_cannot_be_stacked_trains_one_at_a_time_and_says_why(tiny_data):
    choice = choose_stack(_config(stack=10), CPU, _own_model(tiny_data, _Branchy))
    assert choice.size == 1
    assert choice.why is not None and "can't be stacked" in choice.why


def test_a_model_of_ones_own_is_measured_and_its_choice_said(tiny_data):
    data = _own_model(tiny_data, lambda: nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 3)))
    choice = choose_stack(_config(trials=40), CPU, data)
    assert choice.size in (1, 10) and choice.why is not None
    assert ("one trial at a time" in choice.why) == (choice.size == 1)
    assert choose_stack(_config(stack=4), CPU, data).size == 4  # a size given is taken as it is


def test_each_stack_gets_its_engine(tiny_data):
    from lrsearch.engines.lone import LoneEngine
    from lrsearch.engines.stacked_func import FuncStackedTrainer
    from lrsearch.engines.stacked_mlp import StackedTrainer

    problem = problem_spec(_config())  # any RunSpec of the problem will do for the engines
    own = _own_model(tiny_data, lambda: nn.Linear(8, 3))
    assert isinstance(engine_for(tiny_data, CPU, 1)(problem), LoneEngine)  # a stack of one trains as it replays
    assert isinstance(engine_for(tiny_data, CPU, 4)(problem), StackedTrainer)
    assert isinstance(engine_for(own, CPU, 4)(problem), FuncStackedTrainer)


def test_a_model_whose_factory_fails_once_measured_trains_one_at_a_time_and_says_why(tiny_data):
    from lrsearch.engines.stacked_func import stackable

    calls = []

    def factory() -> nn.Module:
        calls.append(1)
        if len(calls) > allowed:
            raise RuntimeError("out of models")
        return nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 3))

    allowed = 10**6
    data = _own_model(tiny_data, factory)
    assert stackable(data, problem_spec(_config()), CPU) is None
    allowed = len(calls)  # the stacking check passes again; the measurement's lone trial then fails
    calls.clear()
    choice = choose_stack(_config(trials=40), CPU, data)
    assert len(calls) > allowed  # it did fail there, and was not left as `max() arg is an empty sequence`
    assert choice == StackChoice(
        1, "task classification trains one trial at a time: one trial alone raised RuntimeError: out of models"
    )
