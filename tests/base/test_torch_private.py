from __future__ import annotations

import subprocess
import sys
import warnings

import optuna
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from lrsearch.problem.build import LoadedSchedule, build_optimizer
from lrsearch.problem.config import load_config
from lrsearch.problem.schedules import SCHEDULES
from lrsearch.problem.space import sample_run_spec


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_a_schedule_s_shadow_gives_the_lrs_of_a_real_optimizer_and_no_warning(name):
    config = load_config(None, {"search.schedules": [name]})
    spec = sample_run_spec(optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask(), config, 10)
    lrs = {"real": [], "shadow": []}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "lr_scheduler.step() before optimizer.step()" among them
        for label in lrs:
            schedule = LoadedSchedule(spec)
            if label == "real":
                optimizer = build_optimizer(spec, [torch.nn.Parameter(torch.zeros(1))])
                scheduler = schedule.build(optimizer, 10)
            else:
                optimizer, scheduler = schedule.shadow(10)
            for epoch in range(spec.epochs):
                for _ in range(10):
                    lrs[label].append(optimizer.param_groups[0]["lr"])
                    if label == "real":
                        optimizer.step()
                    schedule.after_batch(scheduler)
                schedule.after_epoch(scheduler, 1.0 / (epoch + 1))
    assert lrs["shadow"] == lrs["real"]


def test_a_command_s_search_process_never_imports_torch_dynamo():
    # A stack of trials trained, as `lrsearch optimize` trains them; torch._dynamo costs a second to import.
    script = """
import sys
from lrsearch.base.torch_private import skip_dynamo_on_optimizer_setup
skip_dynamo_on_optimizer_setup()
import optuna
from lrsearch.problem.config import load_config
from lrsearch.problem.data import load_data
from lrsearch.problem.space import sample_run_spec
from lrsearch.engines.stacked_mlp import StackedTrainer
config = load_config(None, {"data.n_samples": 200, "train.epochs": 2})
data = load_data(config.data, 0)
study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
specs = [sample_run_spec(study.ask(), config, data.steps_per_epoch(32)) for _ in range(4)]
engine = StackedTrainer(data, specs[0])
for key, spec in enumerate(specs):
    engine.add(key, spec)
assert len(engine.train_epoch()) == 4
print("torch._dynamo" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("version", "on"),
    [("2.13.0+cpu", True), ("2.13.2", True), ("2.14.0", False), ("2.12.1+cu121", False), ("3.0.0", False)],
)
def test_torch_s_private_names_are_used_only_on_the_releases_tested(version, on):
    from lrsearch.base.torch_private import private_names_on

    assert private_names_on(version) is on


def test_the_installed_torch_is_one_tested():
    from lrsearch.base.torch_private import private_names_on

    assert private_names_on()


def _shadow_lrs(spec, steps_per_epoch: int = 4) -> list[float]:
    schedule, lrs = LoadedSchedule(spec), []
    optimizer, scheduler = schedule.shadow(steps_per_epoch)
    for epoch in range(spec.epochs):
        for _ in range(steps_per_epoch):
            lrs.append(optimizer.param_groups[0]["lr"])
            schedule.after_batch(scheduler)
        schedule.after_epoch(scheduler, 1.0 / (epoch + 1))
    assert optimizer.param_groups[0]["params"][0].tolist() == [0.0]  # a step without a gradient changed nothing
    return lrs


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_on_a_torch_release_not_tested_the_shadow_steps_once_with_one_line_and_the_same_lrs(monkeypatch, caplog, name):
    from lrsearch.base import torch_private

    config = load_config(None, {"search.schedules": [name]})
    spec = sample_run_spec(optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask(), config, 4)
    tested = _shadow_lrs(spec)
    monkeypatch.setattr(torch_private, "torch_version", lambda: "9.0.0")
    monkeypatch.setattr(torch_private._private_names, "said", False, raising=False)
    steps = []
    hook = register_optimizer_step_post_hook(lambda optimizer, *_: steps.append(optimizer))
    try:
        with caplog.at_level("WARNING", logger="lrsearch"), warnings.catch_warnings():
            warnings.simplefilter("error")  # "lr_scheduler.step() before optimizer.step()" among them
            assert _shadow_lrs(spec) == tested
            assert _shadow_lrs(spec) == tested
    finally:
        hook.remove()
    assert len(steps) == 2  # each shadow stepped for real, once
    lines = [r.getMessage() for r in caplog.records if "not one lrsearch was tested with" in r.getMessage()]
    assert len(lines) == 1 and "torch 9.0.0" in lines[0]


def test_on_a_torch_release_not_tested_optimizers_are_set_up_as_torch_sets_them_up():
    script = """
import sys
from lrsearch.base import torch_private
torch_private.torch_version = lambda: "9.0.0"
torch_private.skip_dynamo_on_optimizer_setup()
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook
torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
print("torch._dynamo" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"  # torch's own wrapper imported it
    assert "torch 9.0.0 is not one lrsearch was tested with" in done.stderr


# (runs, batch, classes, dtype): an odd batch (1/31 rounds), one run, one row, one class, double precision.
LOSS_SHAPES = [
    (5, 31, 2, torch.float32),
    (5, 31, 10, torch.float32),
    (1, 1, 1, torch.float32),
    (3, 7, 4, torch.float64),
]


@pytest.mark.parametrize("private", [True, False])
@pytest.mark.parametrize("shape", LOSS_SHAPES, ids=str)
def test_the_stacked_loss_s_gradient_is_autograd_s_to_the_bit(monkeypatch, private, shape):
    from torch.nn import functional as F

    from lrsearch.base import torch_private

    monkeypatch.setattr(torch_private, "_private_names", lambda: private)
    runs, batch, classes, dtype = shape
    generator = torch.Generator().manual_seed(classes)
    logits = (torch.randn(runs, batch, classes, generator=generator) * 4).to(dtype)
    targets = torch.randint(0, classes, (runs, batch), generator=generator)
    leaf = logits.clone().requires_grad_(True)
    expected = F.cross_entropy(leaf.flatten(0, 1), targets.flatten(), reduction="none").view(runs, -1).mean(1)
    (expected_gradient,) = torch.autograd.grad(expected.sum(), leaf)

    with torch.no_grad():  # as the stacked engine calls it
        losses, gradient = torch_private.cross_entropy_with_gradient(logits, targets)
    assert torch.equal(losses, expected.detach())
    assert torch.equal(gradient, expected_gradient)


@pytest.mark.parametrize("shape", LOSS_SHAPES, ids=str)
def test_the_stacked_regression_loss_s_gradient_is_autograd_s_to_the_bit(shape):
    from lrsearch.engines.stacked_mlp import squared_error_with_gradient

    runs, batch, _, dtype = shape
    generator = torch.Generator().manual_seed(batch)
    outputs = (torch.randn(runs, batch, 1, generator=generator) * 3).to(dtype)
    targets = torch.randn(runs, batch, generator=generator).to(dtype)
    leaf = outputs.clone().requires_grad_(True)
    expected = ((leaf.squeeze(-1) - targets) ** 2).mean(dim=1)
    (expected_gradient,) = torch.autograd.grad(expected.sum(), leaf)

    with torch.no_grad():
        losses, gradient = squared_error_with_gradient(outputs, targets)
    assert torch.equal(losses, expected.detach())
    assert torch.equal(gradient, expected_gradient)
