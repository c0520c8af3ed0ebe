from __future__ import annotations

import math

import optuna
import pytest
import torch
from optuna.trial import TrialState

from lrsearch.base.errors import Interrupted
from lrsearch.engines.lone import train
from lrsearch.problem.config import SearchConfig
from lrsearch.problem.spec import RunSpec
from lrsearch.searching.workers import run_here
from lrsearch.store.records import PRUNED_REASON, RUN_SPEC
from lrsearch.trials.objective import Objective
from lrsearch.trials.pruners import PRUNERS
from tests.conftest import TINY


def _objective(tiny_data, **search) -> Objective:
    config = SearchConfig.model_validate(TINY | {"search": search})
    return Objective(config, tiny_data, torch.device("cpu"))


def test_completed_trial_records_spec_curves_and_device(tiny_data):
    study = optuna.create_study()
    run_here(study, _objective(tiny_data, schedules=["StepLR"]), 1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE
    assert trial.user_attrs["device"] == "cpu"
    assert len(trial.user_attrs["lr"]) == len(trial.user_attrs["val_loss"]) == 4
    assert trial.value == trial.user_attrs["val_loss"][-1]
    assert trial.intermediate_values == dict(enumerate(trial.user_attrs["val_loss"], start=1))
    # The stored spec replays to the same value: the export is the trial.
    spec = RunSpec.model_validate(trial.user_attrs[RUN_SPEC])
    assert train(spec, tiny_data).final.val_loss == trial.value


def test_pruner_stops_a_trial_and_says_why(tiny_data):
    study = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(upper=0.0))  # prunes at the first report
    run_here(study, _objective(tiny_data), 2)
    for trial in study.trials:
        assert trial.state == TrialState.PRUNED
        assert trial.user_attrs[PRUNED_REASON].startswith("pruned at epoch 1 with val loss")
        assert len(trial.user_attrs["val_loss"]) == 1


def test_diverging_trial_is_pruned_with_its_reason_and_the_study_goes_on(tiny_data):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    # A constant LR this large blows the weights up; a decaying schedule might rescue the run.
    objective = _objective(tiny_data, schedules=["none"], lr={"low": 1e4, "high": 1e5})
    run_here(study, objective, 1)
    diverged = study.trials[0]
    assert diverged.state == TrialState.PRUNED
    assert diverged.user_attrs[PRUNED_REASON].startswith("diverged:")
    run_here(study, _objective(tiny_data, schedules=["none"], lr={"low": 0.01, "high": 0.05}), 1)
    assert study.trials[1].state == TrialState.COMPLETE


@pytest.mark.parametrize("pruner", PRUNERS)
def test_every_pruner_judges_reported_curves(pruner):
    # Driven through ask/report/should_prune, without training: a clearly worse curve is pruned by the
    # pruners that compare trials, never by "none", and never before the epoch the objective starts
    # asking at (it skips the storage round trips before).
    from lrsearch.trials.pruners import first_pruning_epoch, make_pruner

    # A fixed name: Hyperband puts trials in brackets by a hash of the study name (a random one flakes).
    study = optuna.create_study(study_name="pruners", pruner=make_pruner(pruner, epochs=20))
    for index in range(8):
        trial = study.ask()
        for step in range(1, 21):
            trial.report(1.0 / step + 0.01 * math.sin(3 * index + step), step)
            trial.should_prune()  # as the objective does: rung-based pruners record here
        study.tell(trial, 1.0 / 20)
    worse = study.ask()
    pruned_at = None
    for step in range(1, 21):
        worse.report(5.0 + step, step)  # worse than every other trial, and getting worse
        if worse.should_prune():
            pruned_at = step
            break
    if pruner == "none":
        assert pruned_at is None and first_pruning_epoch(pruner, 20) == 21
    else:
        assert pruned_at is not None and first_pruning_epoch(pruner, 20) <= pruned_at <= 20


def test_a_stop_request_ends_the_trial_at_the_next_epoch(tiny_data):
    objective = _objective(tiny_data)
    study = optuna.create_study()
    trial = study.ask()
    objective.stop.set()
    with pytest.raises(Interrupted, match="stopped before training"):
        objective.begin(trial)
