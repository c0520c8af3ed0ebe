from __future__ import annotations

import optuna
import pytest
from optuna.trial import FixedTrial

from lrsearch.base.errors import ConfigError
from lrsearch.problem.config import SearchConfig
from lrsearch.problem.schedules import SCHEDULES, Budget, Schedule, searched_ranges
from lrsearch.problem.space import check_fixed, sample_run_spec


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


FIXED_ACCEPTED = {
    "schedule among the searched": {"schedule": "StepLR"},
    "pinned schedule with its own parameter": {"schedule": "StepLR", "StepLR.gamma": 0.5},
    "range ends are inside": {"StepLR.step_size": 7, "StepLR.gamma": 0.05, "lr": 1.0},
    "a choice inside a schedule": {"WarmupDecay.decay": "linear", "WarmupDecay.final_factor": 0.01},
    "an int where a float is searched": {"CosineAnnealingWarmRestarts.T_mult": 2, "LinearLR.start_factor": 1},
}


@pytest.mark.parametrize("fixed", FIXED_ACCEPTED.values(), ids=FIXED_ACCEPTED)
def test_fixed_values_the_search_could_sample_pass(fixed):
    check_fixed(_config(fixed=fixed), steps_per_epoch=10)


FIXED_REFUSED = {
    "unknown schedule": ({"schedule": "Nope"}, "search.fixed: schedule='Nope' is not one of search.schedules (none,"),
    "schedule not searched": (
        {"schedule": "OneCycleLR"},
        "search.fixed: schedule='OneCycleLR' is not one of search.schedules (StepLR)",
    ),
    "optimizer not searched": ({"optimizer": "adam"}, "search.fixed: optimizer='adam' is not one of search.optimizers"),
    "float above its range": ({"StepLR.gamma": 5.0}, "search.fixed: StepLR.gamma=5.0 is outside its searched range"),
    "nan": ({"StepLR.gamma": float("nan")}, "search.fixed: StepLR.gamma=nan is outside its searched range"),
    "lr below its range": ({"lr": 1e-6}, "search.fixed: lr=1e-06 is outside its searched range [0.0001, 1]"),
    "int past the budget": (
        {"StepLR.step_size": 8},
        "search.fixed: StepLR.step_size=8 is outside its searched range [1, 7]",
    ),
    "float for an int": ({"StepLR.step_size": 2.5}, "search.fixed: StepLR.step_size=2.5 must be an integer in [1, 7]"),
    "bool for an int": ({"StepLR.step_size": True}, "search.fixed: StepLR.step_size=True must be an integer"),
    "string for a float": ({"StepLR.gamma": "0.5"}, "search.fixed: StepLR.gamma='0.5' must be a number"),
    "choice inside a schedule": (
        {"WarmupDecay.decay": "sine"},
        "search.fixed: WarmupDecay.decay='sine' is not one of its choices (cosine, linear, exponential)",
    ),
    "momentum that is not searched": (
        {"momentum": 0.5},
        "search.fixed: momentum is not searched (search.momentum is 0.9); set search.momentum instead",
    ),
    "another schedule's parameter": (
        {"schedule": "CosineAnnealingLR", "StepLR.gamma": 0.5},
        "search.fixed: StepLR.gamma is never sampled with these settings (schedules tried: CosineAnnealingLR)",
    ),
}


@pytest.mark.parametrize(("fixed", "message"), FIXED_REFUSED.values(), ids=FIXED_REFUSED)
def test_fixed_values_the_search_would_not_sample_are_refused(fixed, message):
    schedules = ["StepLR"] if fixed.get("schedule") == "OneCycleLR" else list(SCHEDULES)
    with pytest.raises(ConfigError) as raised:
        check_fixed(_config(fixed=fixed, schedules=schedules), steps_per_epoch=10)
    assert str(raised.value).startswith(message)


def test_fixed_momentum_is_checked_against_its_searched_range():
    config = _config(momentum={"low": 0.5, "high": 0.95}, fixed={"momentum": 0.99})
    with pytest.raises(ConfigError, match=r"momentum=0.99 is outside its searched range \[0.5, 0.95\]"):
        check_fixed(config, steps_per_epoch=10)
    check_fixed(_config(momentum={"low": 0.5, "high": 0.95}, fixed={"momentum": 0.9}), steps_per_epoch=10)


def _branchy(trial, budget):
    # A parameter that only one choice's branch samples.
    kind = trial.suggest_categorical("kind", ["a", "b"])
    return {"kind": kind} | ({"depth": trial.suggest_int("depth", 1, budget.epochs)} if kind == "b" else {})


def test_fixed_check_walks_every_branch_of_a_schedules_choices(monkeypatch):
    schedule = Schedule("Branchy", "epoch", _branchy, SCHEDULES["none"].build, "test only")
    monkeypatch.setitem(SCHEDULES, "Branchy", schedule)
    config = _config(schedules=["StepLR", "Branchy"])

    def pinned(fixed):  # past the config's own name check, which sees the first branch only
        return config.model_copy(update={"search": config.search.model_copy(update={"fixed": fixed})})

    check_fixed(pinned({"Branchy.depth": 7}), steps_per_epoch=10)
    with pytest.raises(ConfigError, match=r"Branchy.depth=8 is outside its searched range \[1, 7\]"):
        check_fixed(pinned({"Branchy.depth": 8}), steps_per_epoch=10)
    with pytest.raises(ConfigError, match="Branchy.depth is never sampled"):
        check_fixed(pinned({"Branchy.depth": 3, "Branchy.kind": "a"}), steps_per_epoch=10)
