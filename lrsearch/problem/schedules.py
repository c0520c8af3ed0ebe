"""The schedule registry: the only place that knows torch's LR scheduler types.

Each entry says how to sample its parameters (against the run's budget), how to build the real
`torch.optim.lr_scheduler` object from them, and when the training loop must call `step()`.
Adding a schedule is one `Schedule(...)` record in `SCHEDULES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from torch.optim import Optimizer
from torch.optim import lr_scheduler as torch_schedulers

from lrsearch.base.errors import ConfigError
from lrsearch.problem.probe import ParamRange, Probe

StepOn = Literal["batch", "epoch", "metric"]
# When each kind steps, in words ("metric": once an epoch, told the val loss, as ReduceLROnPlateau needs).
STEPS = {"batch": "steps every batch", "epoch": "steps every epoch", "metric": "steps every epoch on the val loss"}
Params = dict[str, Any]


@dataclass(frozen=True)
class Budget:
    """How long one run trains: the ranges of most schedules are expressed against it."""

    epochs: int
    steps_per_epoch: int

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


class TrialLike(Protocol):
    """The part of `optuna.Trial` a search space uses (also met by `optuna.trial.FixedTrial`)."""

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...

    def suggest_int(self, name: str, low: int, high: int) -> int: ...

    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass(frozen=True)
class Schedule:
    """One registry entry.

    Attributes:
        name: the registry key, used in configs, YAML exports and the CLI.
        step_on: when the loop calls `step()`: every `batch`, every `epoch`, or every epoch with the
            validation loss (`metric`).
        suggest: samples the parameters; the dict it returns is what the YAML export writes.
        build: makes the torch scheduler from those parameters for an optimizer whose `lr` is the base LR.
        description: one line for `lrsearch schedulers`.
        stretch: the parameters for a run `ratio` times as long (new epochs / old epochs): what is
            counted in epochs scales with it, so the schedule keeps its shape over the longer run.
    """

    name: str
    step_on: StepOn
    suggest: Callable[[TrialLike, Budget], Params]
    build: Callable[[Optimizer, Params, Budget], torch_schedulers.LRScheduler]
    description: str
    stretch: Callable[[Params, float], Params] = lambda params, ratio: dict(params)


def _half(epochs: int) -> int:
    return max(1, epochs // 2)


def _quarter(epochs: int) -> int:
    return max(1, epochs // 4)


def _base_lr(optimizer: Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


# --- stretching a schedule to another run length ---------------------------------------------


def _epochs_scaled(*names: str, least: int = 1) -> Callable[[Params, float], Params]:
    """Stretches the parameters `names`, counts of epochs, by the ratio (rounded, at least `least`)."""

    def stretch(params: Params, ratio: float) -> Params:
        return params | {name: max(least, round(params[name] * ratio)) for name in names if name in params}

    return stretch


def _stretch_milestones(params: Params, ratio: float) -> Params:
    return params | {"milestones": sorted({max(1, round(m * ratio)) for m in params["milestones"]})}


def _stretch_exponential(params: Params, ratio: float) -> Params:
    return params | {"gamma": params["gamma"] ** (1 / ratio)}  # the same decay over the whole run


def _stretch_cyclic(params: Params, ratio: float) -> Params:
    return params | {"half_cycle_epochs": params["half_cycle_epochs"] * ratio}


# --- constant baseline --------------------------------------------------------------------------


def _suggest_none(trial: TrialLike, budget: Budget) -> Params:
    return {}


def _build_none(optimizer: Optimizer, params: Params, budget: Budget) -> torch_schedulers.LRScheduler:
    # factor 1 for zero iterations: a real scheduler that never changes the LR.
    return torch_schedulers.ConstantLR(optimizer, factor=1.0, total_iters=0)


# --- single torch schedulers whose parameters are the torch keyword arguments -------------------


def _suggest_step(trial: TrialLike, budget: Budget) -> Params:
    return {
        "step_size": trial.suggest_int("step_size", 1, budget.epochs),
        "gamma": trial.suggest_float("gamma", 0.05, 0.9),
    }


def _suggest_multistep(trial: TrialLike, budget: Budget) -> Params:
    # Two milestones as fractions of the run, so the space stays the same shape for any epoch count.
    first = trial.suggest_float("first_milestone", 0.2, 0.6)
    second = trial.suggest_float("second_milestone", 0.6, 0.95)
    milestones = sorted({max(1, round(first * budget.epochs)), max(1, round(second * budget.epochs))})
    return {"milestones": milestones, "gamma": trial.suggest_float("gamma", 0.05, 0.9)}


def _suggest_exponential(trial: TrialLike, budget: Budget) -> Params:
    # The lowest gamma still leaves 1% of the base LR at the end of the run.
    return {"gamma": trial.suggest_float("gamma", 0.01 ** (1 / budget.epochs), 0.999)}


def _suggest_cosine(trial: TrialLike, budget: Budget) -> Params:
    return {"T_max": trial.suggest_int("T_max", _half(budget.epochs), budget.epochs)}


def _suggest_warm_restarts(trial: TrialLike, budget: Budget) -> Params:
    return {
        "T_0": trial.suggest_int("T_0", 1, _half(budget.epochs)),
        "T_mult": trial.suggest_categorical("T_mult", [1, 2]),
    }


def _suggest_linear(trial: TrialLike, budget: Budget) -> Params:
    return {
        "start_factor": trial.suggest_float("start_factor", 0.1, 1.0),
        "end_factor": trial.suggest_float("end_factor", 0.01, 1.0, log=True),
        "total_iters": trial.suggest_int("total_iters", 1, budget.epochs),
    }


def _suggest_polynomial(trial: TrialLike, budget: Budget) -> Params:
    return {
        "total_iters": trial.suggest_int("total_iters", 1, budget.epochs),
        "power": trial.suggest_float("power", 0.5, 3.0),
    }


def _suggest_constant(trial: TrialLike, budget: Budget) -> Params:
    return {
        "factor": trial.suggest_float("factor", 0.1, 0.9),
        "total_iters": trial.suggest_int("total_iters", 1, _half(budget.epochs)),
    }


def _suggest_plateau(trial: TrialLike, budget: Budget) -> Params:
    return {
        "factor": trial.suggest_float("factor", 0.1, 0.7),
        "patience": trial.suggest_int("patience", 0, _quarter(budget.epochs)),
        "threshold": trial.suggest_float("threshold", 1e-4, 1e-2, log=True),
    }


def _torch_class(cls: type) -> Callable[[Optimizer, Params, Budget], torch_schedulers.LRScheduler]:
    def build(optimizer: Optimizer, params: Params, budget: Budget) -> torch_schedulers.LRScheduler:
        return cls(optimizer, **params)

    return build


# --- per-batch cycles: the searched base LR is their peak -------------------------------------


def _suggest_one_cycle(trial: TrialLike, budget: Budget) -> Params:
    return {
        "pct_start": trial.suggest_float("pct_start", 0.05, 0.5),
        "div_factor": trial.suggest_float("div_factor", 5.0, 100.0, log=True),
        "final_div_factor": trial.suggest_float("final_div_factor", 10.0, 1e4, log=True),
        "anneal_strategy": trial.suggest_categorical("anneal_strategy", ["cos", "linear"]),
    }


def _build_one_cycle(optimizer: Optimizer, params: Params, budget: Budget) -> torch_schedulers.LRScheduler:
    return torch_schedulers.OneCycleLR(optimizer, max_lr=_base_lr(optimizer), total_steps=budget.total_steps, **params)


def _suggest_cyclic(trial: TrialLike, budget: Budget) -> Params:
    return {
        "div_factor": trial.suggest_float("div_factor", 2.0, 50.0, log=True),
        "half_cycle_epochs": trial.suggest_float("half_cycle_epochs", 0.5, max(0.5, budget.epochs / 4)),
        "mode": trial.suggest_categorical("mode", ["triangular", "triangular2"]),
    }


def _build_cyclic(optimizer: Optimizer, params: Params, budget: Budget) -> torch_schedulers.LRScheduler:
    peak = _base_lr(optimizer)
    return torch_schedulers.CyclicLR(
        optimizer,
        base_lr=peak / params["div_factor"],
        max_lr=peak,
        step_size_up=max(1, round(params["half_cycle_epochs"] * budget.steps_per_epoch)),
        mode=params["mode"],
        cycle_momentum=False,  # keep the optimizer's own (searched or fixed) momentum
    )


# --- warmup then decay ------------------------------------------------------------------------


def _suggest_warmup(trial: TrialLike, budget: Budget) -> Params:
    return {
        "warmup_epochs": trial.suggest_int("warmup_epochs", 1, _quarter(budget.epochs)),
        "warmup_start_factor": trial.suggest_float("warmup_start_factor", 0.01, 0.5, log=True),
    }


def _suggest_final_factor(trial: TrialLike) -> float:
    return trial.suggest_float("final_factor", 1e-3, 0.3, log=True)


def _suggest_warmup_decay(trial: TrialLike, budget: Budget) -> Params:
    return {
        **_suggest_warmup(trial, budget),
        "decay": trial.suggest_categorical("decay", ["cosine", "linear", "exponential"]),
        "final_factor": _suggest_final_factor(trial),
    }


def _decay(optimizer: Optimizer, kind: str, epochs: int, final_factor: float) -> torch_schedulers.LRScheduler:
    """A decay from the base LR to `final_factor` times it over `epochs` epochs."""
    if kind == "cosine":
        eta_min = final_factor * _base_lr(optimizer)
        return torch_schedulers.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=eta_min)
    if kind == "linear":
        return torch_schedulers.LinearLR(optimizer, 1.0, final_factor, total_iters=epochs)
    if kind == "exponential":
        return torch_schedulers.ExponentialLR(optimizer, gamma=final_factor ** (1 / epochs))
    raise ConfigError(f"schedule.params.decay: unknown decay {kind!r}; choose from cosine, linear, exponential")


def _warmup(optimizer: Optimizer, params: Params) -> torch_schedulers.LRScheduler:
    return torch_schedulers.LinearLR(optimizer, params["warmup_start_factor"], 1.0, total_iters=params["warmup_epochs"])


def _build_warmup_decay(optimizer: Optimizer, params: Params, budget: Budget) -> torch_schedulers.LRScheduler:
    warmup = params["warmup_epochs"]
    decay_epochs = max(1, budget.epochs - warmup)
    decay = _decay(optimizer, params["decay"], decay_epochs, params["final_factor"])
    return torch_schedulers.SequentialLR(optimizer, [_warmup(optimizer, params), decay], milestones=[warmup])


def _suggest_wsd(trial: TrialLike, budget: Budget) -> Params:
    return {
        **_suggest_warmup(trial, budget),
        "decay_epochs": trial.suggest_int("decay_epochs", 1, _half(budget.epochs)),
        "final_factor": _suggest_final_factor(trial),
    }


def _build_wsd(optimizer: Optimizer, params: Params, budget: Budget) -> torch_schedulers.LRScheduler:
    warmup = params["warmup_epochs"]
    decay_start = max(warmup, budget.epochs - params["decay_epochs"])
    decay_epochs = max(1, budget.epochs - decay_start)
    stable = torch_schedulers.ConstantLR(optimizer, factor=1.0, total_iters=0)
    decay = _decay(optimizer, "linear", decay_epochs, params["final_factor"])
    return torch_schedulers.SequentialLR(
        optimizer, [_warmup(optimizer, params), stable, decay], milestones=[warmup, decay_start]
    )


SCHEDULES: dict[str, Schedule] = {
    s.name: s
    for s in [
        Schedule("none", "epoch", _suggest_none, _build_none, "constant LR (baseline)"),
        Schedule(
            "StepLR",
            "epoch",
            _suggest_step,
            _torch_class(torch_schedulers.StepLR),
            "multiply the LR by gamma every step_size epochs",
            stretch=_epochs_scaled("step_size"),
        ),
        Schedule(
            "MultiStepLR",
            "epoch",
            _suggest_multistep,
            _torch_class(torch_schedulers.MultiStepLR),
            "multiply the LR by gamma at two milestones (searched as fractions of the run)",
            stretch=_stretch_milestones,
        ),
        Schedule(
            "ExponentialLR",
            "epoch",
            _suggest_exponential,
            _torch_class(torch_schedulers.ExponentialLR),
            "multiply the LR by gamma every epoch",
            stretch=_stretch_exponential,
        ),
        Schedule(
            "CosineAnnealingLR",
            "epoch",
            _suggest_cosine,
            _torch_class(torch_schedulers.CosineAnnealingLR),
            "cosine decay to 0 over T_max epochs",
            stretch=_epochs_scaled("T_max"),
        ),
        Schedule(
            "CosineAnnealingWarmRestarts",
            "epoch",
            _suggest_warm_restarts,
            _torch_class(torch_schedulers.CosineAnnealingWarmRestarts),
            "cosine decay restarted every T_0 epochs (period times T_mult after each restart)",
            stretch=_epochs_scaled("T_0"),
        ),
        Schedule(
            "OneCycleLR",
            "batch",
            _suggest_one_cycle,
            _build_one_cycle,
            "per batch: warm up to the base LR, then anneal far below it (max_lr = base LR)",
        ),
        Schedule(
            "CyclicLR",
            "batch",
            _suggest_cyclic,
            _build_cyclic,
            "per batch: triangle waves between base LR / div_factor and the base LR",
            stretch=_stretch_cyclic,
        ),
        Schedule(
            "LinearLR",
            "epoch",
            _suggest_linear,
            _torch_class(torch_schedulers.LinearLR),
            "linear change of the LR factor from start_factor to end_factor over total_iters epochs",
            stretch=_epochs_scaled("total_iters"),
        ),
        Schedule(
            "PolynomialLR",
            "epoch",
            _suggest_polynomial,
            _torch_class(torch_schedulers.PolynomialLR),
            "polynomial decay to 0 over total_iters epochs",
            stretch=_epochs_scaled("total_iters"),
        ),
        Schedule(
            "ConstantLR",
            "epoch",
            _suggest_constant,
            _torch_class(torch_schedulers.ConstantLR),
            "LR times factor for the first total_iters epochs, then the base LR",
            stretch=_epochs_scaled("total_iters"),
        ),
        Schedule(
            "ReduceLROnPlateau",
            "metric",
            _suggest_plateau,
            _torch_class(torch_schedulers.ReduceLROnPlateau),
            "multiply the LR by factor when the validation loss stops improving",
            stretch=_epochs_scaled("patience", least=0),
        ),
        Schedule(
            "WarmupDecay",
            "epoch",
            _suggest_warmup_decay,
            _build_warmup_decay,
            "linear warmup, then cosine, linear or exponential decay to final_factor (SequentialLR)",
            stretch=_epochs_scaled("warmup_epochs"),
        ),
        Schedule(
            "WarmupStableDecay",
            "epoch",
            _suggest_wsd,
            _build_wsd,
            "linear warmup, constant LR, then a linear decay over the last decay_epochs (SequentialLR)",
            stretch=_epochs_scaled("warmup_epochs", "decay_epochs"),
        ),
    ]
}


def get_schedule(name: str) -> Schedule:
    """Look a schedule up by name; an unknown name is a `ConfigError` listing the valid ones."""
    try:
        return SCHEDULES[name]
    except KeyError:
        raise ConfigError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULES)}") from None


def searched_ranges(schedule: Schedule, budget: Budget) -> list[ParamRange]:
    """The parameters `schedule` searches, with their ranges for this budget."""
    probe = Probe()
    schedule.suggest(probe, budget)
    return probe.ranges


def searched_params(name: str) -> list[str]:
    """The parameters a RunSpec of schedule `name` holds (the keys its `suggest` returns)."""
    return list(get_schedule(name).suggest(Probe(), Budget(20, 1)))
