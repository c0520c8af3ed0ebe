"""The few places lrsearch reaches into Optuna's private attributes, each with why, so that an Optuna
upgrade that moves them breaks here and nowhere else. optuna-dashboard is used through its public API
only (`save_note`, `get_artifact_path`, `wsgi`...); a private use of it would belong here too."""

from __future__ import annotations

import copy
import warnings

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat  # the storages that record heartbeats (no public name)
from optuna.trial import TrialState

from lrsearch.records import FAIL_REASON, WORKER_ATTR


def storage_of(study: optuna.Study) -> BaseStorage:
    """The study's storage: Optuna has no public handle on it, and ask-and-tell workers must send their
    trials' heartbeats themselves (Optuna sends them only inside `study.optimize`); a FrozenTrial's
    artifacts are listed from it too (a FrozenTrial knows no storage)."""
    return study._storage


def trial_id(trial: optuna.Trial) -> int:
    """The storage's id of a trial (its number is per study; heartbeats are recorded by id)."""
    return trial._trial_id


def fail_stale_trials(study: optuna.Study) -> None:
    """Optuna's `fail_stale_trials`, but each trial it fails says why in `fail_reason`.

    Optuna fails a trial whose worker stopped sending heartbeats without a word, and a finished trial's
    attributes can no longer be written; so the reason is written first, while the trial still runs.
    Its stale-trial callback (the retry) runs as Optuna runs it.
    """
    storage = storage_of(study)
    if not isinstance(storage, BaseHeartbeat) or storage.get_heartbeat_interval() is None:
        return
    failed = []
    for stale in storage._get_stale_trial_ids(study._study_id):  # no public way to list them
        try:
            worker = storage.get_trial(stale).user_attrs.get(WORKER_ATTR, "unknown")
            reason = f"worker {worker} stopped sending heartbeats: it died, or lost the storage"
            storage.set_trial_user_attr(stale, FAIL_REASON, reason)
            if storage.set_trial_state_values(stale, state=TrialState.FAIL):
                failed.append(stale)
        except UpdateFinishedTrialError:  # another worker failed it first
            pass
    callback = storage.get_heartbeat_stale_trial_callback()
    if callback is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            for stale in failed:
                frozen = copy.deepcopy(storage.get_trial(stale))
                # The retry copies the trial's attributes: not the reason its predecessor failed.
                frozen.user_attrs = {k: v for k, v in frozen.user_attrs.items() if k != FAIL_REASON}
                callback(study, frozen)
