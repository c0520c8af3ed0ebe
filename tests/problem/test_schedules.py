from __future__ import annotations

import math

import optuna
import pytest
import torch
from torch.optim import lr_scheduler as L

from lrsearch.base.errors import ConfigError
from lrsearch.problem.schedules import SCHEDULES, Budget, get_schedule, searched_ranges

BUDGET = Budget(epochs=12, steps_per_epoch=5)
LR = 0.1


def _optimizer(lr: float = LR) -> torch.optim.SGD:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=0.9)


def _lr_sequence(scheduler: L.LRScheduler, optimizer, steps: int, metrics=None) -> list[float]:
    lrs = []
    for step in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if metrics is None:
            scheduler.step()
        else:
            scheduler.step(metrics[step])
    return lrs


def _sampled_params(name: str, budget: Budget, seed: int) -> dict:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return SCHEDULES[name].suggest(study.ask(), budget)


@pytest.mark.parametrize("name", list(SCHEDULES))
@pytest.mark.parametrize("budget", [Budget(1, 1), Budget(3, 2), Budget(12, 5)], ids=["1ep", "3ep", "12ep"])
def test_every_sampled_schedule_builds_and_keeps_lr_positive(name, budget):
    schedule = SCHEDULES[name]
    for seed in range(5):
        optimizer = _optimizer()
        scheduler = schedule.build(optimizer, _sampled_params(name, budget, seed), budget)
        steps = budget.total_steps if schedule.step_on == "batch" else budget.epochs
        metrics = [1.0] * steps if schedule.step_on == "metric" else None
        lrs = _lr_sequence(scheduler, optimizer, steps, metrics)
        assert all(math.isfinite(lr) and 0 <= lr <= LR * (1 + 1e-9) for lr in lrs), lrs


# Registry entry + params -> the same scheduler written directly against torch (what a user would write).
DIRECT = {
    "none": ({}, lambda o: L.LambdaLR(o, lambda e: 1.0)),
    "StepLR": ({"step_size": 3, "gamma": 0.5}, lambda o: L.StepLR(o, 3, 0.5)),
    "MultiStepLR": ({"milestones": [4, 9], "gamma": 0.2}, lambda o: L.MultiStepLR(o, [4, 9], 0.2)),
    "ExponentialLR": ({"gamma": 0.8}, lambda o: L.ExponentialLR(o, 0.8)),
    "CosineAnnealingLR": ({"T_max": 10}, lambda o: L.CosineAnnealingLR(o, 10)),
    "CosineAnnealingWarmRestarts": ({"T_0": 3, "T_mult": 2}, lambda o: L.CosineAnnealingWarmRestarts(o, 3, 2)),
    "OneCycleLR": (
        {"pct_start": 0.3, "div_factor": 10.0, "final_div_factor": 100.0, "anneal_strategy": "cos"},
        lambda o: L.OneCycleLR(o, max_lr=LR, total_steps=60, pct_start=0.3, div_factor=10.0, final_div_factor=100.0),
    ),
    "CyclicLR": (
        {"div_factor": 10.0, "half_cycle_epochs": 1.4, "mode": "triangular2"},
        lambda o: L.CyclicLR(o, LR / 10, LR, step_size_up=7, mode="triangular2", cycle_momentum=False),
    ),
    "LinearLR": ({"start_factor": 0.5, "end_factor": 0.1, "total_iters": 6}, lambda o: L.LinearLR(o, 0.5, 0.1, 6)),
    "PolynomialLR": ({"total_iters": 8, "power": 2.0}, lambda o: L.PolynomialLR(o, 8, 2.0)),
    "ConstantLR": ({"factor": 0.3, "total_iters": 4}, lambda o: L.ConstantLR(o, 0.3, 4)),
    "ReduceLROnPlateau": (
        {"factor": 0.5, "patience": 1, "threshold": 1e-3},
        lambda o: L.ReduceLROnPlateau(o, factor=0.5, patience=1, threshold=1e-3),
    ),
}


def _warmup_then(epoch: int, warmup: int, start: float, after) -> float:
    if epoch < warmup:
        return LR * (start + (1 - start) * epoch / warmup)
    return after(epoch - warmup)


# The composites against the formula each claims: linear warmup, then the decay.
FORMULAS = {
    "WarmupDecay/cosine": (
        {"warmup_epochs": 2, "warmup_start_factor": 0.1, "decay": "cosine", "final_factor": 0.01},
        lambda e: _warmup_then(e, 2, 0.1, lambda d: LR * (0.01 + 0.99 * (1 + math.cos(math.pi * d / 10)) / 2)),
    ),
    "WarmupDecay/linear": (
        {"warmup_epochs": 3, "warmup_start_factor": 0.2, "decay": "linear", "final_factor": 0.1},
        lambda e: _warmup_then(e, 3, 0.2, lambda d: LR * (1 - 0.9 * min(d, 9) / 9)),
    ),
    "WarmupDecay/exponential": (
        {"warmup_epochs": 2, "warmup_start_factor": 0.1, "decay": "exponential", "final_factor": 0.01},
        lambda e: _warmup_then(e, 2, 0.1, lambda d: LR * 0.01 ** (d / 10)),
    ),
    "WarmupStableDecay": (
        {"warmup_epochs": 2, "warmup_start_factor": 0.1, "decay_epochs": 4, "final_factor": 0.05},
        lambda e: _warmup_then(e, 2, 0.1, lambda d: LR * (1 - 0.95 * max(0, min(4, d + 2 - 8)) / 4)),
    ),
}


def test_every_registry_entry_has_an_lr_check():
    checked = set(DIRECT) | {key.split("/")[0] for key in FORMULAS}
    assert checked == set(SCHEDULES)


@pytest.mark.parametrize("name", list(DIRECT))
def test_lr_sequence_equals_the_torch_scheduler_written_by_hand(name):
    params, direct = DIRECT[name]
    schedule = SCHEDULES[name]
    steps = BUDGET.total_steps if schedule.step_on == "batch" else BUDGET.epochs
    metrics = [1.0, 0.9, 0.95, 0.96, 0.97, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1] if schedule.step_on == "metric" else None
    ours = _optimizer()
    theirs = _optimizer()
    expected = _lr_sequence(direct(theirs), theirs, steps, metrics)
    got = _lr_sequence(schedule.build(ours, params, BUDGET), ours, steps, metrics)
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert len(set(expected)) > 1 or name == "none"  # the check would notice a schedule that does nothing


@pytest.mark.parametrize("key", list(FORMULAS))
def test_warmup_composites_follow_their_formula(key):
    params, formula = FORMULAS[key]
    optimizer = _optimizer()
    scheduler = SCHEDULES[key.split("/")[0]].build(optimizer, params, BUDGET)
    got = _lr_sequence(scheduler, optimizer, BUDGET.epochs)
    assert got == pytest.approx([formula(e) for e in range(BUDGET.epochs)], rel=1e-9)


@pytest.mark.parametrize(
    ("name", "step_on"),
    [("OneCycleLR", "batch"), ("CyclicLR", "batch"), ("ReduceLROnPlateau", "metric"), ("StepLR", "epoch")],
)
def test_step_granularity(name, step_on):
    assert SCHEDULES[name].step_on == step_on
    others = {s.step_on for n, s in SCHEDULES.items() if n not in ("OneCycleLR", "CyclicLR", "ReduceLROnPlateau")}
    assert others == {"epoch"}


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown schedule 'Cosine'; choose from none, StepLR"):
        get_schedule("Cosine")


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_ranges_follow_the_budget(name):
    # Every integer parameter counted in epochs stays within the run, for short and long runs.
    for epochs in (2, 20, 200):
        for searched in searched_ranges(SCHEDULES[name], Budget(epochs, 10)):
            if isinstance(searched.low, int) and not searched.choices:
                assert 0 <= searched.low <= searched.high <= epochs, (epochs, searched)


def test_ranges_are_what_suggest_asks_for():
    ranges = {str(r) for r in searched_ranges(SCHEDULES["StepLR"], Budget(20, 1))}
    assert ranges == {"step_size in [1, 20]", "gamma in [0.05, 0.9]"}
    exponential = searched_ranges(SCHEDULES["ExponentialLR"], Budget(10, 1))[0]
    assert exponential.low**10 == pytest.approx(0.01)  # the strongest decay leaves 1% at the end
