"""The controls tuned in the search: which trials tune them, what they pin, and how certification uses them."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import TINY
from optuna.trial import TrialState

import lrsearch
from lrsearch.certification.certify import certify, top_distinct
from lrsearch.certification.controls import next_lr
from lrsearch.problem.config import SearchConfig
from lrsearch.problem.controls import CONTROLS, controls_for, schedule_params
from lrsearch.problem.space import control_trial_params
from lrsearch.store.records import TrialRecord
from lrsearch.trials.control_trials import STARTUP

TRIALS = 30  # room for every control's 2 trials: every other trial after the start-up


def _config(tmp_path, search=None, **study) -> SearchConfig:
    settings = {"storage": f"sqlite:///{tmp_path}/c.db", "trials": TRIALS, "certify": False, "figures": False}
    return SearchConfig.model_validate(TINY | {"search": search or {}, "study": settings | study})


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    config = _config(tmp_path_factory.mktemp("controls"), {"control_trials": 2})
    result = lrsearch.search(config)
    return result.study, config


def test_control_trials_pin_their_control_s_shape_and_take_turns_after_the_sampler_s_start_up(searched):
    study, config = searched
    trials = study.get_trials(deepcopy=False)
    records = [TrialRecord.of(t) for t in trials]
    tuning = [r for r in records if r.control is not None]
    expected = controls_for(config.train.epochs)  # 4 epochs: no StepLR(10, 0.1)
    assert sorted(r.control for r in tuning) == sorted(name for name in expected for _ in range(2))
    for record in tuning:
        assert record.spec.schedule == expected[record.control](config.train.epochs)
        assert record.number >= STARTUP  # none among the sampler's first guesses
        finished_before = [t for t in trials[: record.number] if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        assert finished_before  # asked after trials had finished
    # The LR is the sampler's: two trials of one control try two LRs.
    for name in expected:
        assert len({r.spec.lr for r in tuning if r.control == name}) == 2
    # Every other trial after the start-up, at most: the search keeps its share.
    assert len(tuning) <= (TRIALS - STARTUP + 1) // 2 + 1


def test_a_control_trial_is_never_certified_as_a_searched_candidate(searched):
    study, _ = searched
    chosen = {number for number, _ in top_distinct(study, 50)}
    controls = {t.number for t in study.get_trials() if TrialRecord.of(t) and TrialRecord.of(t).control}
    assert controls and not chosen & controls


def test_certification_starts_each_control_from_its_trials_in_the_search(searched):
    study, config = searched
    certificate = certify(study, config, device=torch.device("cpu"), seeds=3, top=1)
    for control in certificate.controls:
        losses = dict(zip(control.lrs, control.val_losses, strict=True))
        for trial in study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)):
            record = TrialRecord.of(trial)
            if record.control != control.name:
                continue
            assert record.spec.lr in losses  # tried in the search, not trained again
            if trial.state == TrialState.COMPLETE:
                assert losses[record.spec.lr] == pytest.approx(trial.value)
            else:
                assert losses[record.spec.lr] is None  # pruned: worse than any that finished
        finite = {lr: loss for lr, loss in losses.items() if loss is not None}
        assert control.chosen == min(finite, key=finite.get)


def test_no_control_trials_when_turned_off_or_out_of_the_space(tmp_path):
    config = _config(tmp_path, {"control_trials": 0}, trials=14)
    study = lrsearch.search(config).study
    assert not any(TrialRecord.of(t).control for t in study.get_trials())
    narrow = _config(tmp_path, {"schedules": ["none", "StepLR", "OneCycleLR"]})
    assert list(control_trial_params(narrow, 10)) == ["constant"]  # StepLR(10, 0.1) does not fit in 4 epochs
    long = SearchConfig.model_validate({"train": {"epochs": 20}})
    assert set(control_trial_params(long, 10)) == set(CONTROLS)
    assert control_trial_params(long, 10)["StepLR(10, 0.1)"] == schedule_params(CONTROLS["StepLR(10, 0.1)"](20))


def test_next_lr_widens_at_an_edge_and_bisects_a_gap_wider_than_a_step():
    assert next_lr([0.01, 0.02, 0.04], 0.01, 1e-4, 1.0) == pytest.approx(0.005)
    assert next_lr([0.01, 0.02, 0.04], 0.04, 1e-4, 1.0) == pytest.approx(0.08)
    assert next_lr([0.01, 0.02, 0.04], 0.02, 1e-4, 1.0) is None  # surrounded within a step
    # The sampler's picks: 0.003, 0.05, 0.3 — the best's farther neighbour is 16.7x away, halfway is 0.0122.
    assert next_lr([0.003, 0.05, 0.3], 0.05, 1e-4, 1.0) == pytest.approx(math.sqrt(0.003 * 0.05))
    assert next_lr([1e-4, 2e-4], 1e-4, 1e-4, 1.0) is None  # the range's edge
