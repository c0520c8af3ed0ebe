from __future__ import annotations

import math

import optuna
import pytest
import torch

from lrsearch.engines.lone import Diverged, train
from lrsearch.problem.build import build_optimizer, build_scheduler, step_on
from lrsearch.problem.schedules import SCHEDULES, Budget
from lrsearch.problem.spec import ModelSpec, OptimizerSpec, RunSpec, ScheduleSpec


def _spec(tiny_data_spec, name="none", params=None, **fields) -> RunSpec:
    return RunSpec(
        data=tiny_data_spec,
        model=ModelSpec(hidden=16),
        schedule=ScheduleSpec(name=name, params=params or {}),
        epochs=fields.pop("epochs", 4),
        **fields,
    )


def _expected_epoch_lrs(spec: RunSpec, steps_per_epoch: int, val_losses: list[float]) -> list[float]:
    """The LR at each epoch's start if the scheduler steps at its own granularity."""
    optimizer = build_optimizer(spec, [torch.nn.Parameter(torch.zeros(1))])
    scheduler = build_scheduler(spec, optimizer, steps_per_epoch)
    lrs = []
    for epoch in range(spec.epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        for _ in range(steps_per_epoch if step_on(spec) == "batch" else 1):
            optimizer.step()
            scheduler.step(val_losses[epoch]) if step_on(spec) == "metric" else scheduler.step()
    return lrs


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_loop_steps_each_schedule_at_its_granularity(name, tiny_data_spec, tiny_data):
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3)).ask()
    steps = tiny_data.steps_per_epoch(32)
    params = SCHEDULES[name].suggest(trial, Budget(4, steps))
    spec = _spec(tiny_data_spec, name, params, lr=0.05)
    history = train(spec, tiny_data)
    got = [record.lr for record in history.epochs]
    assert got == pytest.approx(_expected_epoch_lrs(spec, steps, [r.val_loss for r in history.epochs]), rel=1e-12)


def test_one_cycle_moves_within_an_epoch(tiny_data_spec, tiny_data):
    # Stepped per epoch instead of per batch, OneCycleLR would still be warming up after 4 epochs.
    params = {"pct_start": 0.25, "div_factor": 10.0, "final_div_factor": 100.0, "anneal_strategy": "linear"}
    history = train(_spec(tiny_data_spec, "OneCycleLR", params, lr=0.2), tiny_data)
    assert history.epochs[0].lr == pytest.approx(0.02)
    assert history.epochs[1].lr == pytest.approx(0.2, rel=0.05)  # the peak, reached after a quarter of all steps


def test_same_spec_same_history(tiny_data_spec, tiny_data):
    spec = _spec(tiny_data_spec, "StepLR", {"step_size": 2, "gamma": 0.5}, lr=0.1)
    first, second = train(spec, tiny_data), train(spec, tiny_data)
    assert first.epochs == second.epochs
    other_seed = train(spec.model_copy(update={"seed": 1}), tiny_data)
    assert other_seed.final.val_loss != first.final.val_loss


def test_training_learns(tiny_data_spec, tiny_data):
    # 20 epochs: at 10, the val accuracy on these 80 rows is 0.65 to 0.74 depending on the seed.
    history = train(_spec(tiny_data_spec, lr=0.05, epochs=20), tiny_data, evaluate_test=True)
    assert history.final.val_score > 0.7
    assert history.final.train_loss < history.epochs[0].train_loss
    assert history.test_loss is not None and 0 <= history.test_score <= 1


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_every_optimizer_trains(tiny_data_spec, tiny_data, optimizer):
    spec = _spec(tiny_data_spec, lr=0.01, optimizer=OptimizerSpec(name=optimizer, weight_decay=1e-4))
    assert train(spec, tiny_data).final.val_loss < math.log(3)  # better than guessing


def test_divergence_raises_with_the_epochs_before_it(tiny_data_spec, tiny_data):
    with pytest.raises(Diverged, match=r"became (nan|inf) at epoch") as raised:
        train(_spec(tiny_data_spec, lr=1e6), tiny_data)
    assert len(raised.value.history.epochs) < 4


def test_on_epoch_sees_every_epoch_and_can_stop_the_run(tiny_data_spec, tiny_data):
    seen = []

    class Stop(Exception):
        pass

    def hook(record):
        seen.append(record.epoch)
        if record.epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        train(_spec(tiny_data_spec), tiny_data, on_epoch=hook)
    assert seen == [1, 2]


@pytest.mark.parametrize("own_generator", [True, False], ids=["loader-generator", "global-generator"])
def test_lone_runs_side_by_side_each_equal_the_run_alone(tiny_data_spec, tiny_data, own_generator):
    import dataclasses

    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    from lrsearch.engines.lone import LoneEngine
    from lrsearch.problem.model import make_mlp

    loader = DataLoader(
        TensorDataset(tiny_data.train.x, tiny_data.train.y),
        batch_size=32,
        shuffle=True,
        generator=torch.Generator() if own_generator else None,
    )
    data = dataclasses.replace(
        tiny_data, train=loader, model_factory=lambda: make_mlp(8, 16, 3), loss_fn=F.cross_entropy
    )
    specs = {seed: _spec(tiny_data_spec, lr=0.05).model_copy(update={"seed": seed}) for seed in (0, 1)}
    engine = LoneEngine(data, "cpu")
    for seed, spec in specs.items():
        engine.add(seed, spec)
    side_by_side: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(specs[0].epochs):
        for outcome in engine.train_epoch():  # the two runs' epochs interleaved
            side_by_side[outcome.key].append(outcome.record.val_loss)
    for seed, spec in specs.items():
        assert side_by_side[seed] == [r.val_loss for r in train(spec, data).epochs]
    assert side_by_side[0] != side_by_side[1]
