"""A trial record reads back what the search stores, and treats a stored attribute that does not parse as
absent (named in `unreadable`) instead of failing the view that reads it."""

from __future__ import annotations

from dataclasses import replace

import optuna
import pytest
from optuna.trial import TrialState

from lrsearch.problem.spec import RunSpec, ScheduleSpec
from lrsearch.store.records import (
    FAIL_REASON,
    RUN_SPEC,
    STEPS_PER_EPOCH,
    WORKER_ATTR,
    EpochRecord,
    TrialCurves,
    TrialRecord,
    curve_attrs,
    run_attrs,
    score_key,
)

SPEC = RunSpec(schedule=ScheduleSpec(name="StepLR"))
EPOCHS = [EpochRecord(epoch, 0.1 / epoch, 1.0 / epoch, 0.9 / epoch, 0.5 + epoch / 10) for epoch in (1, 2, 3)]


def _stored(attrs: dict, state: TrialState = TrialState.COMPLETE) -> optuna.trial.FrozenTrial:
    value = 0.3 if state == TrialState.COMPLETE else None
    return optuna.trial.create_trial(state=state, value=value, user_attrs=attrs)


def test_what_a_trial_stores_reads_back():
    attrs = run_attrs(SPEC, "cpu") | curve_attrs(EPOCHS, "accuracy", 4) | {WORKER_ATTR: "host:1"}
    record = TrialRecord.of(_stored(attrs))
    assert record is not None and record.unreadable == frozenset()
    assert (record.spec, record.device, record.worker) == (SPEC, "cpu", "host:1")
    assert record.value == 0.3 and record.pruned_reason is None and record.fail_reason is None
    curves = record.curves  # the same curves a trial ending now has from its epochs, read back
    ending = TrialCurves.of_run(record.number, SPEC, EPOCHS, TrialState.COMPLETE, 4)
    assert curves == replace(ending, value=0.3, score="accuracy", val_score=[0.6, 0.7, 0.8], recorded_step_lrs=None)
    assert curves.score_label == "accuracy" and curves.epochs == [1, 2, 3]


def test_a_task_without_a_score_stores_no_score_curve():
    attrs = curve_attrs(EPOCHS, None, 4)
    assert not any(key.startswith("val_") and key != "val_loss" for key in attrs)
    curves = TrialRecord.of(_stored(run_attrs(SPEC, "cpu") | attrs)).curves
    assert curves is not None and (curves.score, curves.score_label, curves.val_score) == (None, None, None)


@pytest.mark.parametrize("run_spec", [None, "<script>", {"epochs": "many"}, [1, 2]], ids=repr)
def test_no_record_without_a_readable_run_spec(run_spec):
    assert TrialRecord.of(_stored({"val_loss": [0.5]})) is None
    assert TrialRecord.of(_stored({RUN_SPEC: run_spec, "val_loss": [0.5]})) is None


def test_a_malformed_attribute_is_none_and_named():
    hostile = {"lr": {"a": 1}, "val_loss": "<img>", STEPS_PER_EPOCH: 0, WORKER_ATTR: 7, FAIL_REASON: ["x"]}
    hostile |= {score_key("accuracy"): "high", score_key("r2"): [0.25]}
    record = TrialRecord.of(_stored(run_attrs(SPEC, "cpu") | hostile, TrialState.FAIL))
    assert record is not None
    assert (record.curves, record.worker, record.fail_reason) == (None,) * 3
    assert "train_loss" not in record.unreadable  # absent is not unreadable
    assert record.unreadable == {"lr", "val_loss", STEPS_PER_EPOCH, WORKER_ATTR, FAIL_REASON, "val_accuracy"}


def test_the_score_curve_is_the_first_readable_one():
    attrs = run_attrs(SPEC, "cpu") | curve_attrs(EPOCHS, None, 4)
    attrs |= {score_key("accuracy"): "high", score_key("r2"): [0.25, 0.5, 0.75]}
    curves = TrialRecord.of(_stored(attrs)).curves
    assert (curves.score, curves.score_label, curves.val_score) == ("r2", "R²", [0.25, 0.5, 0.75])


@pytest.mark.parametrize(
    "broken",
    [{"lr": [0.1]}, {"train_loss": None}, {"val_loss": []}, {STEPS_PER_EPOCH: "many"}],
    ids=["shorter lr", "unreadable train loss", "no epoch", "unreadable steps"],
)
def test_curves_that_do_not_line_up_are_none(broken):
    attrs = run_attrs(SPEC, "cpu") | curve_attrs(EPOCHS, "accuracy", 4) | broken
    assert TrialRecord.of(_stored(attrs)).curves is None
