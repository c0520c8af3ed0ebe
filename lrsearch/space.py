"""Trial -> RunSpec: the search space over optimizer settings, base LR and schedule."""

from __future__ import annotations

from typing import Any

from lrsearch.config import Range, SearchConfig
from lrsearch.schedules import SCHEDULES, Budget, TrialLike
from lrsearch.spec import OptimizerSpec, RunSpec, ScheduleSpec


class _Namespaced:
    """Prefixes a schedule's parameter names (`StepLR.gamma`), so two schedules never share a name in
    the study while each `suggest` function uses the plain torch names."""

    def __init__(self, trial: TrialLike, prefix: str) -> None:
        self._trial, self._prefix = trial, prefix

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float:
        return self._trial.suggest_float(f"{self._prefix}.{name}", low, high, log=log)

    def suggest_int(self, name: str, low: int, high: int) -> int:
        return self._trial.suggest_int(f"{self._prefix}.{name}", low, high)

    def suggest_categorical(self, name: str, choices: Any) -> Any:
        return self._trial.suggest_categorical(f"{self._prefix}.{name}", choices)


def _value_or_search(trial: TrialLike, name: str, setting: float | Range) -> float:
    if isinstance(setting, Range):
        return trial.suggest_float(name, setting.low, setting.high, log=setting.log)
    return setting


def sample_run_spec(trial: TrialLike, config: SearchConfig, steps_per_epoch: int) -> RunSpec:
    """Sample one RunSpec; a schedule's parameters are sampled only when that schedule is chosen.

    Args:
        trial: an Optuna trial (or `optuna.trial.FixedTrial` in tests).
        config: the search configuration (data, model, budget and space).
        steps_per_epoch: optimizer steps per epoch, for the per-batch schedules' ranges.
    """
    space = config.search
    lr = trial.suggest_float("lr", space.lr.low, space.lr.high, log=True)
    optimizer = OptimizerSpec(
        name=trial.suggest_categorical("optimizer", space.optimizers),
        momentum=_value_or_search(trial, "momentum", space.momentum),
        weight_decay=_value_or_search(trial, "weight_decay", space.weight_decay),
    )
    name = trial.suggest_categorical("schedule", space.schedules)
    budget = Budget(config.train.epochs, steps_per_epoch)
    params = SCHEDULES[name].suggest(_Namespaced(trial, name), budget)
    return RunSpec(
        data=config.data,
        model=config.model,
        optimizer=optimizer,
        lr=lr,
        schedule=ScheduleSpec(name=name, params=params),
        epochs=config.train.epochs,
        batch_size=config.train.batch_size,
        seed=config.study.seed,
    )
