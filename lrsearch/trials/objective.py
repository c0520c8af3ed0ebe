"""A trial's own steps, as the trial loop takes them: sample its RunSpec, judge each reported epoch (stop
request, pruner), and store its curves and picture when it ends. Training is the engines' job."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import optuna
import torch
from optuna.trial import TrialState

from lrsearch.base.errors import Interrupted
from lrsearch.base.stopping import StopSignal
from lrsearch.problem.config import SearchConfig
from lrsearch.problem.data import Data
from lrsearch.problem.space import sample_run_spec
from lrsearch.problem.spec import RunSpec
from lrsearch.store.optuna_private import set_user_attrs
from lrsearch.store.records import DIVERGED, PRUNED_REASON, EpochRecord, curve_attrs, run_attrs
from lrsearch.trials.pruners import first_pruning_epoch


class Pictures(Protocol):
    def __call__(
        self, trial: optuna.Trial, spec: RunSpec, records: list[EpochRecord], state: TrialState, steps_per_epoch: int
    ) -> None: ...


class Objective:
    """The steps of every trial of a study, on data loaded once for the whole study."""

    def __init__(self, config: SearchConfig, data: Data, device: torch.device, stop: StopSignal | None = None) -> None:
        self.config = config
        self.data = data
        self.device = device
        self.stop = stop or StopSignal()  # set from outside to end the running trial after its epoch
        self.steps_per_epoch = data.steps_per_epoch(config.train.batch_size)
        self.first_pruning_epoch = first_pruning_epoch(config.study.pruner, config.train.epochs)
        self.pictures: Pictures | None = None  # attaches a finished trial's picture (while it can be written)

    def begin(self, trial: optuna.Trial) -> RunSpec:
        """Sample the trial's RunSpec and record it (and the device) in the trial."""
        if self.stop.is_set():
            raise Interrupted("stopped before training")
        spec = sample_run_spec(trial, self.config, self.steps_per_epoch)
        set_user_attrs(trial.study, trial, run_attrs(spec, str(self.device)))
        return spec

    def judge(self, trial: optuna.Trial, record: EpochRecord, should_prune: Callable[[], bool]) -> None:
        """After a reported epoch: raise `Interrupted` on a stop request, or `optuna.TrialPruned` (its
        reason recorded) when the pruner may act at this epoch and `should_prune()` says so."""
        if self.stop.is_set():
            raise Interrupted(f"stopped after epoch {record.epoch}")
        if record.epoch >= self.first_pruning_epoch and should_prune():
            reason = f"pruned at epoch {record.epoch} with val loss {record.val_loss:.4g}"
            trial.set_user_attr(PRUNED_REASON, reason)
            raise optuna.TrialPruned(reason)

    def diverged(self, trial: optuna.Trial, what: str) -> None:
        """Record why a diverged trial ends pruned."""
        trial.set_user_attr(PRUNED_REASON, f"{DIVERGED}{what}")

    def record_curves(self, trial: optuna.Trial, spec: RunSpec, records: list[EpochRecord], state: TrialState) -> None:
        """Before the trial ends as `state`: store its per-epoch curves, and attach its picture."""
        # One write for all curves at the end, not one per epoch: each storage write costs milliseconds.
        attrs = curve_attrs(records, self.data.score, self.steps_per_epoch, direction=self.data.hooks.direction)
        set_user_attrs(trial.study, trial, attrs)
        if self.pictures is not None and records:
            self.pictures(trial, spec, records, state, self.steps_per_epoch)
