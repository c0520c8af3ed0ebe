"""The summary ranks trials by val loss (what the search minimises) and, beside it, names the trial with the
best final score the score's own way: the highest F1 when it is maximised, the lowest error when minimised."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from lrsearch.problem.spec import RunSpec
from lrsearch.store.records import SCORE_ATTR, EpochRecord, TrialRecord, curve_attrs, run_attrs
from lrsearch.views.summary import best_score_line, summarize

# (final val loss, final score): the lowest val loss is not the best score either way.
TRIALS = [(0.30, 0.70), (0.20, 0.60), (0.40, 0.90), (0.50, 0.40)]


def _study(score: str | None, direction: str) -> optuna.Study:
    study = optuna.create_study()
    for val_loss, final in TRIALS:
        records = [EpochRecord(1, 0.1, 1.0, val_loss + 0.1, final - 0.1), EpochRecord(2, 0.1, 0.8, val_loss, final)]
        attrs = run_attrs(RunSpec(), "cpu") | curve_attrs(records, score, 3, direction=direction)
        study.add_trial(optuna.trial.create_trial(state=TrialState.COMPLETE, value=val_loss, user_attrs=attrs))
    return study


@pytest.mark.parametrize(
    ("direction", "number", "line"),
    [("maximize", 2, "highest val f1: 0.9000, trial #2"), ("minimize", 3, "lowest val f1: 0.4000, trial #3")],
)
def test_a_user_score_is_ranked_its_own_way(direction, number, line):
    summary = summarize(_study("f1", direction))
    assert [row.number for row in summary.top] == [1, 0, 2, 3]  # the search's ranking: val loss, lowest first
    assert summary.best_by_score.number == number and summary.best_by_score.score_direction == direction
    assert best_score_line(summary) == line
    assert summary.best.score_label == "f1" and summary.best.val_score == pytest.approx(0.6)


def test_a_built_in_score_is_maximised_and_stores_no_direction():
    study = _study("accuracy", "maximize")
    assert SCORE_ATTR not in study.trials[0].user_attrs  # as a built-in task's trials always stored it
    record = TrialRecord.of(study.trials[0])
    assert (record.score, record.score_direction) == ("accuracy", "maximize")
    assert best_score_line(summarize(study)) == "highest val accuracy: 0.9000, trial #2"


def test_no_score_no_line():
    summary = summarize(_study(None, "maximize"))
    assert summary.best_by_score is None and best_score_line(summary) is None
