"""What `--stack auto` means for the built-in MLP and for a model of one's own."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from lrsearch.engines.autostack import (
    AUTO_STACK_CPU,
    AUTO_STACK_GPU,
    StackChoice,
    choose_stack,
    largest_stack,
    pick_size,
    problem_spec,
)
from lrsearch.engines.factory import engine_for
from lrsearch.problem.config import SearchConfig
from tests.conftest import TINY

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _empty_cache(tmp_path, monkeypatch):
    """Each test measures afresh: no speeds kept by another test of the same model."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


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
    assert choose_stack(_config(trials=12), CPU, None).size == 10  # the sampler's random start: no loss
    assert choose_stack(_config(trials=6), CPU, None).size == 6  # never more than the budget
    assert choose_stack(_config(stack=7), CPU, None).size == 7
    gpu = torch.device("cuda")  # chosen, not used: no GPU needed
    assert choose_stack(_config(trials=200), gpu, None).size == 50  # four generations past the random start
    assert choose_stack(_config(trials=2000), gpu, None).size == AUTO_STACK_GPU


@pytest.mark.parametrize(("trials", "largest"), [(1, 1), (6, 6), (12, 10), (30, 10), (50, 13), (200, 50), (None, None)])
def test_the_largest_stack_keeps_four_generations_past_the_samplers_random_start(trials, largest):
    assert largest_stack(trials) == largest


def test_the_size_is_the_fastest_search_of_the_budget_each_larger_one_taken_at_1_3x():
    speeds = {1: 10.0, 10: 40.0, 50: 60.0}  # trial-epochs a second
    assert pick_size(speeds, 12) == 10  # a quarter of 12 would be 3: ruled out though 10 is 3.3x as fast
    assert pick_size(speeds, 30) == 10
    # 50 trials: 13 (its speed interpolated between 10's and 50's) searches only 1.03x as fast as 10
    assert pick_size(speeds, 50) == 10
    assert pick_size(speeds, 200) == 50  # four generations of 50, 1.5x as fast as twenty of 10
    assert pick_size(speeds, None) == 50
    assert pick_size({1: 10.0, 10: 12.0}, 30) == 1  # 1.2x: not worth the sampler's later look
    assert pick_size({1: 10.0, 10: 40.0, 50: 44.0}, 200) == 10  # 50 gains only 1.1x over 10


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


TRANSFORMER_TASK = """
import torch
from torch import nn
from torch.nn import functional as F

import lrsearch


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(3, 8)
        self.layer = nn.TransformerEncoderLayer(d_model=8, nhead=2, dim_feedforward=16, dropout=0.0, batch_first=True)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.layer(self.embed(x)).mean(1))


def build():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(96, 4, 3, generator=generator)
    y = (x[:, :, 0].sum(1) > 0).long()
    return lrsearch.Task(model=Tiny, train=(x[:64], y[:64]), val=(x[64:80], y[64:80]), loss=F.cross_entropy)
"""


def test_a_transformer_stacked_by_torch_func_says_its_missing_batching_rules_once(tmp_path):
    # vmap runs the fused attention of a Transformer one trial at a time, and torch warns at every call
    # site each time the warning registries reset: a search (its stacking check, its measurement, its
    # trials in two worker processes, its certification) says so in one line, and stacks only if the
    # measurement found it pays.
    (tmp_path / "tiny_transformer.py").write_text(TRANSFORMER_TASK)
    args = ("optimize", "--task", "tiny_transformer:build", "--trials", 16, "--epochs", 2, "--jobs", 2)
    run = subprocess.run(
        [sys.executable, "-m", "lrsearch", *map(str, args)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    assert "performance drop" not in run.stderr
    said = [line for line in run.stderr.splitlines() if "torch has no batched rule for aten::" in line]
    assert len(said) == 1 and said[0].endswith("`--stack 1` trains one at a time")
    assert "compute-bound" not in run.stdout  # 64 rows of 4 tokens: a stack that did not pay says what it measured
    measured = r"tiny_transformer:build(?: trains one trial at a time: stacking measured|: \d+ trials at once)"
    assert re.search(measured, run.stdout), run.stdout
