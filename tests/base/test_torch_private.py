from __future__ import annotations

import subprocess
import sys
import warnings

import optuna
import pytest
import torch

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
