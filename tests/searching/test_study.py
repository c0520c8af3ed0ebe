from __future__ import annotations

import dataclasses

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState

from lrsearch.base.errors import ConfigError
from lrsearch.problem.config import load_config
from lrsearch.problem.data import load_data
from lrsearch.problem.model import make_mlp
from lrsearch.searching.study import load_existing_study, open_study
from lrsearch.searching.workers import run_here
from lrsearch.store.records import FAIL_REASON
from lrsearch.trials.objective import Objective
from lrsearch.trials.samplers import make_sampler


def _search(config, trials, objective=None):
    study = open_study(config)
    if objective is None:
        objective = Objective(config, load_data(config.data, config.study.seed), torch.device("cpu"))
    run_here(study, objective, trials)
    return study


def test_rerun_with_the_same_name_adds_trials(tiny_config_file):
    config = load_config(tiny_config_file, {"study.trials": 3})
    _search(config, 3)
    study = _search(config, 2)
    assert len(study.trials) == 5
    assert [t.number for t in study.trials] == list(range(5))
    # The stored study opens with Optuna's own API.
    reopened = optuna.load_study(study_name="default", storage=config.study.storage)
    assert len(reopened.trials) == 5 and reopened.best_value == study.best_value


def test_a_study_refuses_trials_of_another_problem(tiny_config_file):
    _search(load_config(tiny_config_file), 1)
    with pytest.raises(ConfigError, match=r"study 'default' was made with train.epochs=4, not 3") as raised:
        open_study(load_config(tiny_config_file, {"train.epochs": 3}))
    # Said to a command line and to Python alike: each finds its own way to name another study.
    assert "use another study name (--study-name, or study_name= in Python)" in str(raised.value)
    other = load_config(tiny_config_file, {"train.epochs": 3, "study.name": "short"})
    assert len(_search(other, 1).trials) == 1


@pytest.mark.parametrize("sampler", ["tpe", "random", "gp", "qmc"])
def test_every_sampler_searches_the_conditional_space(tiny_config_file, sampler):
    config = load_config(tiny_config_file, {"study.sampler": sampler, "study.pruner": "none"})
    study = _search(config, 4)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    assert isinstance(study.sampler, type(make_sampler(sampler, 0)))


def test_a_failing_trial_is_recorded_and_the_study_goes_on(tiny_config_file):
    config = load_config(tiny_config_file)
    data = load_data(config.data, 0)
    built = []

    def broken(*_: object) -> None:
        raise IndexError("CUDA error: an illegal memory access")

    def models_the_first_breaks() -> torch.nn.Module:  # as a user's model might, on its first run only
        model = make_mlp(data.n_features, config.model.hidden, data.n_outputs)
        built.append(model)
        if len(built) == 1:
            model.register_forward_hook(broken)
        return model

    user_like = dataclasses.replace(data, model_factory=models_the_first_breaks, loss_fn=data.loss)
    study = _search(config, 2, Objective(config, user_like, torch.device("cpu")))
    states = [t.state for t in study.trials]
    assert states[0] == TrialState.FAIL and states[1] in (TrialState.COMPLETE, TrialState.PRUNED)
    assert study.trials[0].user_attrs[FAIL_REASON] == "IndexError: CUDA error: an illegal memory access"


def test_exporting_a_missing_study_lists_the_stored_ones(tiny_config_file, tmp_path):
    config = load_config(tiny_config_file)
    _search(config, 1)
    with pytest.raises(ConfigError, match="no study 'nope' in .*; stored studies: default"):
        load_existing_study("nope", config.study.storage)
    missing_file = f"sqlite:///{tmp_path}/missing.db"
    with pytest.raises(ConfigError, match="no study file at"):
        load_existing_study("default", missing_file)
    assert not (tmp_path / "missing.db").exists()


def test_fixed_parameters_are_pinned_in_every_trial(tiny_config_file):
    raw = yaml.safe_load(tiny_config_file.read_text())
    raw["search"] = {"schedules": ["StepLR", "ExponentialLR"], "fixed": {"schedule": "StepLR", "StepLR.gamma": 0.5}}
    tiny_config_file.write_text(yaml.safe_dump(raw))
    study = _search(load_config(tiny_config_file), 3)
    assert [(t.params["schedule"], t.params["StepLR.gamma"]) for t in study.trials] == [("StepLR", 0.5)] * 3
    assert len({t.params["lr"] for t in study.trials}) == 3  # the rest is still searched


def test_an_old_config_s_device_field_still_reads(tiny_config_file):
    raw = yaml.safe_load(tiny_config_file.read_text())
    raw["study"]["device"] = "cpu"
    tiny_config_file.write_text(yaml.safe_dump(raw))
    assert load_config(tiny_config_file).study.devices == "cpu"


def test_a_model_that_fails_to_build_fails_its_trial_and_the_study_goes_on(tiny_config_file):
    config = load_config(tiny_config_file)
    data = load_data(config.data, 0)
    built = []

    def first_one_breaks() -> torch.nn.Module:  # raised where the engine builds the trial's model
        built.append(True)
        if len(built) == 1:
            raise KeyError("no such layer")
        return make_mlp(data.n_features, config.model.hidden, data.n_outputs)

    user_like = dataclasses.replace(data, model_factory=first_one_breaks, loss_fn=data.loss)
    study = _search(config, 2, Objective(config, user_like, torch.device("cpu")))
    assert [t.state for t in study.trials][0] == TrialState.FAIL  # not left RUNNING
    assert study.trials[0].user_attrs[FAIL_REASON] == "KeyError: 'no such layer'"
    assert study.trials[1].state in (TrialState.COMPLETE, TrialState.PRUNED)
