"""A study's trial budget: how many trials it should hold, kept in the study so that every worker, on
this machine or another, stops at the same count, and which trials a run of the search counts as its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from lrsearch.base.errors import ConfigError

BUDGET_ATTR = "lrsearch_budget"  # study attribute: {"target": trials to hold or None, "first": trial number}
Move = Literal["run", "wait", "done"]


def counted_trials(trials: Sequence[FrozenTrial]) -> int:
    """Trials that count against the budget: all, except those a retry replaced (the retry counts)."""
    return len(trials) - len(_replaced(trials))


def _replaced(trials: Sequence[FrozenTrial]) -> set[int]:
    return {number for trial in trials for number in RetryHeartbeatStaleTrialCallback.retry_history(trial)}


def trials_of_run(trials: Sequence[FrozenTrial], first: int) -> list[FrozenTrial]:
    """The trials a run that began when the study held `first` trials added to its budget: those asked
    since, less the ones a retry replaced (their retry counts instead) and retries of older trials."""
    replaced = _replaced(trials)
    return [
        trial
        for trial in trials[first:]
        if trial.number not in replaced
        and all(number >= first for number in RetryHeartbeatStaleTrialCallback.retry_history(trial))
    ]


def add_to_budget(study: optuna.Study, trials: int | None) -> int | None:
    """Let the study hold `trials` more trials than it counts now (None: no limit); returns the target."""
    stored = study.get_trials(deepcopy=False)
    target = None if trials is None else counted_trials(stored) + trials
    study.set_user_attr(BUDGET_ATTR, {"target": target, "first": len(stored)})
    return target


def _stored_budget(study: optuna.Study) -> dict[str, int | None]:
    """The budget the study holds, checked: it is stored data, which anyone with the storage can write."""
    budget = study.user_attrs.get(BUDGET_ATTR, {"target": None, "first": 0})
    target, first = (budget.get("target"), budget.get("first")) if isinstance(budget, dict) else (None, None)
    if not (target is None or type(target) is int) or type(first) is not int or first < 0:
        raise ConfigError(
            f"--study-name: study {study.study_name!r} holds an unreadable trial budget ({BUDGET_ATTR}); "
            "run `lrsearch optimize` on it to set a new one"
        )
    return {"target": target, "first": first}


def next_move(study: optuna.Study, wait_for_running: bool) -> Move:
    """Run a trial, wait for running ones (whose worker may die, and whose retry someone must run), or stop."""
    return admit(study, 1, wait_for_running).move


class Admission(NamedTuple):
    """What the budget lets a worker do now: its move, how many new trials may start, and how many the
    budget has left in all (None: no limit)."""

    move: Move
    room: int
    left: int | None


def admit(study: optuna.Study, wanted: int, wait_for_running: bool) -> Admission:
    """How many of `wanted` new trials may start now: ("run", n), or ("wait" or "done", 0)."""
    budget = _stored_budget(study)
    trials = study.get_trials(deepcopy=False)
    waiting = sum(trial.state == TrialState.WAITING for trial in trials)  # queued retries: they already count
    left = None if budget["target"] is None else max(0, budget["target"] - counted_trials(trials)) + waiting
    room = wanted if left is None else min(wanted, left)
    if room > 0:
        return Admission("run", room, left)
    if wait_for_running and any(
        trial.state == TrialState.RUNNING and trial.number >= budget["first"] for trial in trials
    ):
        return Admission("wait", 0, left)
    return Admission("done", 0, left)
