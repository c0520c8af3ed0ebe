from __future__ import annotations

import pytest
import torch

import lrsearch
from lrsearch.errors import ConfigError
from lrsearch.spec import OptimizerSpec, RunSpec, ScheduleSpec


def test_users_own_loop_gets_the_exported_schedule(tmp_path):
    path = tmp_path / "best.yaml"
    RunSpec(
        lr=0.3,
        optimizer=OptimizerSpec(name="adam", momentum=0.8),
        schedule=ScheduleSpec(
            name="CyclicLR", params={"div_factor": 4.0, "half_cycle_epochs": 1.0, "mode": "triangular"}
        ),
        epochs=3,
    ).save(path)

    spec = lrsearch.load_run_spec(path)
    model = torch.nn.Linear(4, 2)
    optimizer = lrsearch.build_optimizer(spec, model.parameters())
    scheduler = lrsearch.build_scheduler(spec, optimizer, steps_per_epoch=10)
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["betas"] == (0.8, 0.999)
    assert lrsearch.step_on(spec) == "batch"
    lrs = []
    for _ in range(20):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    # The user's own 10 steps per epoch: one half cycle up from 0.3/4 to 0.3, one down.
    assert lrs[0] == pytest.approx(0.075) and lrs[10] == pytest.approx(0.3) and lrs[19] == pytest.approx(0.0975)


def test_params_that_do_not_fit_the_schedule_are_a_config_error():
    spec = RunSpec(schedule=ScheduleSpec(name="StepLR", params={"step": 3}))
    optimizer = lrsearch.build_optimizer(spec, torch.nn.Linear(2, 2).parameters())
    with pytest.raises(ConfigError, match="schedule.params: not valid for StepLR"):
        lrsearch.build_scheduler(spec, optimizer, steps_per_epoch=5)
