"""Trial -> RunSpec: the search space over optimizer settings, base LR and schedule."""

from __future__ import annotations

from typing import Any

from lrsearch.base.errors import ConfigError
from lrsearch.problem.config import Range, SearchConfig
from lrsearch.problem.controls import controls_for, schedule_params
from lrsearch.problem.probe import Probe
from lrsearch.problem.schedules import SCHEDULES, Budget, TrialLike
from lrsearch.problem.spec import OptimizerSpec, RunSpec, ScheduleSpec


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


def control_trial_params(config: SearchConfig, steps_per_epoch: int) -> dict[str, dict[str, Any]]:
    """The controls that are points of this search space, as the trial parameters that pin their shape
    (control name -> parameters; the LR and the optimizer's settings stay the sampler's). A control whose
    schedule the space leaves out, or whose shape lies outside its ranges (StepLR(10, 0.1) in a run of 8
    epochs), is not among them: certification tunes it alone."""
    epochs = config.train.epochs
    chosen = {}
    for name, make in controls_for(epochs).items():
        schedule = make(epochs)
        if schedule.name not in config.search.schedules:
            continue
        params = schedule_params(schedule)
        try:
            spec = sample_run_spec(Probe(params), config, steps_per_epoch)
        except ConfigError:  # outside a range of the space
            continue
        if spec.schedule == schedule:
            chosen[name] = params
    return chosen


def check_fixed(config: SearchConfig, steps_per_epoch: int) -> None:
    """Check every value `search.fixed` pins against the distribution the search samples it from.

    Optuna's `PartialFixedSampler` uses a pinned value as it is, out of range or not, and ignores a
    pinned name no trial samples; so the space is walked here with the real `sample_run_spec`, through
    every branch (each optimizer, each schedule, each choice a schedule's `suggest` makes), no training.

    Args:
        steps_per_epoch: optimizer steps an epoch, for ranges expressed against the budget.

    Raises:
        ConfigError: a pinned value outside its range or choices, or a pinned name never sampled.
    """
    fixed = config.search.fixed
    if not fixed:
        return
    sampled: set[str] = set()
    schedules: list[str] = []
    paths: list[tuple[int, ...]] = [()]
    while paths:
        probe = Probe(fixed, paths.pop())
        spec = sample_run_spec(probe, config, steps_per_epoch)
        sampled |= probe.sampled
        schedules += [spec.schedule.name] if spec.schedule.name not in schedules else []
        paths += probe.branches()
    for name in fixed:
        if name not in sampled:
            raise ConfigError(_never_sampled(config, name, schedules))


def _never_sampled(config: SearchConfig, name: str, schedules: list[str]) -> str:
    setting = getattr(config.search, name, None)
    if name in ("momentum", "weight_decay") and not isinstance(setting, Range):
        return f"search.fixed: {name} is not searched (search.{name} is {setting}); set search.{name} instead"
    return f"search.fixed: {name} is never sampled with these settings (schedules tried: {', '.join(schedules)})"
