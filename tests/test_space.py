from __future__ import annotations

import optuna
import pytest
from optuna.trial import FixedTrial

from lrsearch.config import SearchConfig
from lrsearch.schedules import SCHEDULES, Budget, searched_ranges
from lrsearch.space import sample_run_spec


def _config(**search) -> SearchConfig:
    return SearchConfig.model_validate({"train": {"epochs": 7}, "search": search})


def test_fixed_trial_gives_the_torch_kwargs_the_export_writes():
    trial = FixedTrial(
        {"lr": 0.05, "optimizer": "sgd", "schedule": "StepLR", "StepLR.step_size": 3, "StepLR.gamma": 0.5}
    )
    spec = sample_run_spec(trial, _config(), steps_per_epoch=10)
    assert spec.lr == 0.05
    assert spec.schedule.name == "StepLR"
    assert spec.schedule.params == {"step_size": 3, "gamma": 0.5}
    assert (spec.epochs, spec.optimizer.name, spec.optimizer.momentum) == (7, "sgd", 0.9)


def test_multistep_milestones_come_from_fractions_of_the_run():
    trial = FixedTrial(
        {
            "lr": 0.1,
            "optimizer": "sgd",
            "schedule": "MultiStepLR",
            "MultiStepLR.first_milestone": 0.3,
            "MultiStepLR.second_milestone": 0.9,
            "MultiStepLR.gamma": 0.1,
        }
    )
    assert sample_run_spec(trial, _config(), 10).schedule.params == {"milestones": [2, 6], "gamma": 0.1}


def test_parameters_are_sampled_only_for_the_chosen_schedule():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    config = _config()
    for _ in range(40):
        trial = study.ask()
        spec = sample_run_spec(trial, config, steps_per_epoch=10)
        prefixes = {name.split(".")[0] for name in trial.params if "." in name}
        assert prefixes <= {spec.schedule.name}
        expected = {
            f"{spec.schedule.name}.{r.name}" for r in searched_ranges(SCHEDULES[spec.schedule.name], Budget(7, 10))
        }
        assert {name for name in trial.params if "." in name} == expected
        study.tell(trial, 1.0)


def test_config_narrows_the_space_and_opens_optimizer_settings():
    config = _config(
        schedules=["OneCycleLR", "CosineAnnealingLR"],
        optimizers=["adam", "adamw"],
        momentum={"low": 0.5, "high": 0.95},
        weight_decay={"low": 1e-6, "high": 1e-2, "log": True},
        lr={"low": 1e-3, "high": 1e-2},
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(30):
        spec = sample_run_spec(study.ask(), config, steps_per_epoch=10)
        seen.add((spec.schedule.name, spec.optimizer.name))
        assert 1e-3 <= spec.lr <= 1e-2
        assert 0.5 <= spec.optimizer.momentum <= 0.95
        assert 1e-6 <= spec.optimizer.weight_decay <= 1e-2
    assert {name for name, _ in seen} == {"OneCycleLR", "CosineAnnealingLR"}
    assert {opt for _, opt in seen} == {"adam", "adamw"}


def test_step_size_stays_within_the_epoch_count():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    config = _config(schedules=["StepLR"])
    sizes = {sample_run_spec(study.ask(), config, 10).schedule.params["step_size"] for _ in range(60)}
    assert sizes <= set(range(1, 8)) and len(sizes) > 3


@pytest.mark.parametrize("bad", [{"lr": "x"}, {"optimizer": "lamb"}])
def test_fixed_trial_outside_the_space_is_refused(bad):
    params = {"lr": 0.1, "optimizer": "sgd", "schedule": "none"} | bad
    with pytest.raises(ValueError):
        sample_run_spec(FixedTrial(params), _config(), 10)
