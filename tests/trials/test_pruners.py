"""The percentile pruners of a stacked search (the default quartile, the median): a stack's first trials judged
against the trials beside them."""

from __future__ import annotations

from typing import get_args, get_type_hints

import optuna
from conftest import TINY
from optuna.trial import TrialState

import lrsearch
from lrsearch import cli
from lrsearch.problem.config import PrunerName, SearchConfig
from lrsearch.trials.pruners import PRUNERS, first_pruning_epoch, make_pruner

EPOCHS = 20


def _stack(study: optuna.Study, curves: list[float]) -> list[optuna.Trial]:
    """Trials running together, each reporting its flat val loss up to the first epoch that may prune."""
    trials = [study.ask() for _ in curves]
    for epoch in range(1, first_pruning_epoch("median", EPOCHS) + 1):
        for trial, value in zip(trials, curves, strict=True):
            trial.report(value, epoch)
    return trials


def _pruned(trials: list[optuna.Trial]) -> list[int]:
    return [index for index, trial in enumerate(trials) if trial.should_prune()]


def test_a_stack_s_first_trials_are_judged_against_the_trials_beside_them():
    study = optuna.create_study(pruner=make_pruner("median", EPOCHS))
    # Ten trials at once, none completed: three learn nothing (chance level, ln 3 for 3 classes).
    trials = _stack(study, [0.30, 0.31, 0.32, 0.33, 0.34, 0.35, 0.36, 1.10, 1.10, 1.10])
    assert _pruned(trials) == [5, 6, 7, 8, 9]  # worse than the median of the other nine
    # Optuna's median pruner waits for 5 completed trials: the whole first stack trains to its end.
    alone = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=first_pruning_epoch("median", EPOCHS))
    assert not any(alone.prune(study, study.trials[index]) for index in range(10))


def test_the_default_quartile_lets_only_a_stack_s_best_quarter_go_on():
    assert SearchConfig().study.pruner == "quartile"
    study = optuna.create_study(pruner=make_pruner("quartile", EPOCHS))
    trials = _stack(study, [0.30, 0.31, 0.32, 0.33, 0.34, 0.35, 0.36, 0.37, 0.38, 0.39])
    # Each against the 25th percentile of the other nine: 0.33 for the first three, 0.32 for the rest.
    assert _pruned(trials) == [3, 4, 5, 6, 7, 8, 9]


def test_once_five_trials_completed_the_quartile_judges_as_optuna_s_percentile_pruner_does():
    study = optuna.create_study(pruner=make_pruner("quartile", EPOCHS))
    for trial, value in zip(_stack(study, [0.5, 0.6, 0.7, 0.8, 0.9]), [0.5, 0.6, 0.7, 0.8, 0.9], strict=True):
        study.tell(trial, value)
    # The completed trials' 25th percentile at its epoch is 0.6: beside them, 0.65 ends, 0.55 goes on,
    # whatever the trials running beside it.
    assert _pruned(_stack(study, [0.55, 0.65, 0.1, 0.1, 0.1, 0.1])) == [1]


def test_every_pruner_name_the_config_allows_makes_a_pruner_and_the_help_lists_it():
    assert get_args(PrunerName) == PRUNERS
    assert all(isinstance(make_pruner(name, EPOCHS), optuna.pruners.BasePruner) for name in PRUNERS)
    option = get_args(get_type_hints(cli.optimize, include_extras=True)["pruner"])[1]
    default = SearchConfig().study.pruner
    assert option.help == f"{', '.join(PRUNERS[:-1])} or {PRUNERS[-1]} [default: {default}]."


def test_fewer_than_five_peers_judge_no_one():
    study = optuna.create_study(pruner=make_pruner("median", EPOCHS))
    assert _pruned(_stack(study, [0.30, 0.31, 0.32, 0.33, 1.10])) == []


def test_once_five_trials_completed_they_judge_as_optuna_s_median_pruner_does():
    study = optuna.create_study(pruner=make_pruner("median", EPOCHS))
    for trial in _stack(study, [1.0] * 5):
        study.tell(trial, 1.0)
    # Beside good peers, 0.9 is worse than their median; against the completed trials' 1.0 it is not.
    trials = _stack(study, [0.30, 0.31, 0.32, 0.33, 0.34, 0.90])
    assert _pruned(trials) == []
    assert _pruned(_stack(study, [1.5])) == [0]


def test_a_stacked_search_prunes_its_first_trials_before_any_has_completed(tmp_path):
    # The whole trial loop on a SQLite file: the pruner judges from the epoch's one read of the study,
    # where the trials beside a trial are running, with this epoch's val loss already reported.
    settings = {"storage": f"sqlite:///{tmp_path}/p.db", "trials": 10, "stack": 10, "pruner": "median"}
    config = SearchConfig.model_validate(
        TINY
        | {"train": {"epochs": 8, "batch_size": 32}, "search": {"control_trials": 0}}
        | {"study": settings | {"certify": False, "figures": False}}
    )
    trials = lrsearch.search(config).study.get_trials(deepcopy=False)
    pruned = [trial for trial in trials if trial.state == TrialState.PRUNED]
    assert pruned  # all 10 started together: none had completed when these were pruned
    first_end = min(trial.datetime_complete for trial in trials if trial.state == TrialState.COMPLETE)
    assert all(trial.datetime_complete <= first_end for trial in pruned)
    assert all(len(trial.intermediate_values) < 8 for trial in pruned)
