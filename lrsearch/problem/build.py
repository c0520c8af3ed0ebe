"""RunSpec -> the real torch optimizer and LR scheduler; used by the training loop and by users' own code."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import torch
from pydantic import ValidationError
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from lrsearch.base.errors import ConfigError, from_validation_error
from lrsearch.base.torch_private import mark_stepped
from lrsearch.problem.schedules import STEPS, Budget, StepOn, get_schedule, searched_params
from lrsearch.problem.spec import CERTIFICATE_KEY, MAX_EPOCHS, RunSpec, load_yaml_mapping, looks_like_search_config


def build_optimizer(spec: RunSpec, parameters: Iterable[torch.nn.Parameter]) -> Optimizer:
    """The optimizer the spec names, at the spec's base LR.

    Adam and AdamW take the spec's `momentum` as beta1, so one field means "how much of the past
    gradient to keep" for every optimizer.
    """
    opt = spec.optimizer
    if opt.name == "sgd":
        return torch.optim.SGD(
            parameters, lr=spec.lr, momentum=opt.momentum, weight_decay=opt.weight_decay, nesterov=opt.nesterov
        )
    adam = torch.optim.Adam if opt.name == "adam" else torch.optim.AdamW
    return adam(parameters, lr=spec.lr, betas=(opt.momentum, 0.999), weight_decay=opt.weight_decay)


def build_scheduler(
    spec: RunSpec,
    optimizer: Optimizer,
    steps_per_epoch: int,
    epochs: int | None = None,
    *,
    stretch_to: int | None = None,
) -> LRScheduler:
    """The spec's LR scheduler for `optimizer`, whose LR must be the spec's base LR.

    Args:
        spec: the run (e.g. `load_run_spec("best.yaml")`).
        optimizer: a fresh optimizer created with `lr=spec.lr` (`build_optimizer` does that).
        steps_per_epoch: optimizer steps in one epoch (`len(train_loader)`); per-batch schedules use it.
        epochs: deprecated, with its old meaning kept: only what spans the whole run (OneCycleLR, the
            warm-up schedules' decays) fits that length; epoch counts stay as searched.
        stretch_to: a run length to stretch the whole schedule to, keeping its shape (`RunSpec.stretched`:
            a step size, a warmup, a cycle scale with the run), as `load_schedule(path, stretch_to=N)`
            does; None: exactly the spec's run.

    Returns:
        The torch scheduler. Call its `step()` as `step_on(spec)` says.
    """
    if stretch_to is not None:
        spec = _stretched(spec, stretch_to)
    if epochs is not None:
        warnings.warn(_SPANS_ONLY, FutureWarning, stacklevel=2)
    schedule = get_schedule(spec.schedule.name)
    budget = Budget(epochs=epochs or spec.epochs, steps_per_epoch=steps_per_epoch)
    try:
        return schedule.build(optimizer, dict(spec.schedule.params), budget)
    except KeyError as error:
        raise ConfigError(f"schedule.params: {schedule.name} needs the parameter {error.args[0]!r}") from None
    except (TypeError, ValueError) as error:
        raise ConfigError(f"schedule.params: not valid for {schedule.name}: {error}") from None


# `epochs=` said two things in two places (stretch the schedule in load_schedule, only span the run in
# build); `stretch_to=` is the one word now, and the old one keeps its old meaning where it was given.
_SPANS_ONLY = (
    "epochs= fits only what spans the whole run (OneCycleLR, the warm-up decays) and keeps epoch counts as "
    "searched; stretch_to= stretches the whole schedule, as load_schedule does. epochs= will be removed"
)


def _stretched(spec: RunSpec, epochs: int) -> RunSpec:
    if not 1 <= epochs <= MAX_EPOCHS:
        raise ConfigError(f"stretch_to: must lie in [1, {MAX_EPOCHS}], got {epochs}")
    return spec.stretched(epochs)


def step_on(spec: RunSpec) -> StepOn:
    """When to call the scheduler's `step()`: after every `batch`, every `epoch`, or every epoch with the
    validation loss as `scheduler.step(val_loss)` (`metric`)."""
    return get_schedule(spec.schedule.name).step_on


class LoadedSchedule:
    """A searched schedule, ready for any optimizer and any run length (`load_schedule("best.yaml")`).

    In your loop, call `after_batch(scheduler)` after every `optimizer.step()` and
    `after_epoch(scheduler, val_loss)` at the end of every epoch: each steps the scheduler only when it
    is that schedule's moment (`step_on`: "batch" for OneCycleLR and CyclicLR, "metric" for
    ReduceLROnPlateau, which takes the validation loss, "epoch" for the rest).
    """

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self.step_on: StepOn = step_on(spec)

    @property
    def name(self) -> str:
        return self.spec.schedule.name

    @property
    def lr(self) -> float:
        """The searched base LR (the peak for OneCycleLR and CyclicLR)."""
        return self.spec.lr

    @property
    def epochs(self) -> int:
        """The run's length: the exported one (the search's, or the certificate's), or what
        `load_schedule(..., stretch_to=N)` stretched it to."""
        return self.spec.epochs

    def optimizer(self, parameters: Iterable[torch.nn.Parameter]) -> Optimizer:
        """The optimizer the run was searched with (its momentum, weight decay and base LR): the schedule's
        numbers were tuned with it, and `build` warns when it is given another."""
        return build_optimizer(self.spec, parameters)

    def build(
        self,
        optimizer: Optimizer,
        steps_per_epoch: int,
        epochs: int | None = None,
        set_lr: bool = True,
        *,
        stretch_to: int | None = None,
        keep_group_ratios: bool = True,
    ) -> LRScheduler:
        """The torch scheduler for `optimizer`.

        Args:
            steps_per_epoch: optimizer steps an epoch (`len(train_loader)`).
            epochs: deprecated (its old meaning kept, see `build_scheduler`): use `stretch_to`.
            set_lr: set the optimizer's LRs from the searched base LR first (the schedule's numbers were
                tuned with it); False keeps the optimizer's own.
            stretch_to: your run's length, when it is not `self.epochs`: the whole schedule is stretched
                to it keeping its shape, as `load_schedule(path, stretch_to=N)` stretches it (its base LR
                stays the one chosen at `self.epochs`: `lrsearch certify --epochs N` chooses one at N).
            keep_group_ratios: with several parameter groups, the first gets the searched base LR and
                every other keeps its ratio to the first (a backbone at a tenth of the head's LR stays at
                a tenth); False gives every group the searched base LR.
        """
        _warn_if_other_optimizer(self.spec, optimizer)
        if set_lr:
            _set_base_lrs(optimizer, self.lr, keep_group_ratios)
        if epochs is None:
            return build_scheduler(self.spec, optimizer, steps_per_epoch, stretch_to=stretch_to)
        warnings.warn(_SPANS_ONLY, FutureWarning, stacklevel=2)
        with warnings.catch_warnings():  # said once, at the caller's line
            warnings.simplefilter("ignore", FutureWarning)
            return build_scheduler(self.spec, optimizer, steps_per_epoch, epochs, stretch_to=stretch_to)

    def shadow(self, steps_per_epoch: int) -> tuple[Optimizer, LRScheduler]:
        """The spec's optimizer on one dummy parameter and the schedule's scheduler driving it, for when
        only the LR is wanted (the stacked engines' per-trial LRs, a schedule's check, its replay for a
        picture). The optimizer never steps: it is marked as having stepped, so the scheduler does not
        warn that it stepped first."""
        optimizer = build_optimizer(self.spec, [torch.nn.Parameter(torch.zeros(1))])
        scheduler = self.build(optimizer, steps_per_epoch)
        mark_stepped(optimizer)
        return optimizer, scheduler

    # The one stepping rule: the lone engine, the stacked engine and your own loop all step with these two.

    def after_batch(self, scheduler: LRScheduler) -> None:
        if self.step_on == "batch":
            scheduler.step()

    def after_epoch(self, scheduler: LRScheduler, val_loss: float | None = None) -> None:
        if self.step_on == "epoch":
            scheduler.step()
        elif self.step_on == "metric":
            if val_loss is None:
                raise ValueError(f"{self.name} decides from the validation loss: after_epoch(scheduler, val_loss)")
            scheduler.step(val_loss)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.spec.schedule.params.items())
        return f"LoadedSchedule({self.name}({params}), lr={self.lr:.4g}, {STEPS[self.step_on]})"


def _set_base_lrs(optimizer: Optimizer, lr: float, keep_ratios: bool) -> None:
    """The first group at `lr`, every other at `lr` times its ratio to the first (or at `lr` too)."""
    reference = optimizer.param_groups[0]["lr"]
    for group in optimizer.param_groups:
        ratio = group["lr"] / reference if keep_ratios and reference > 0 else 1.0
        group["lr"] = lr * ratio


# The optimizers a RunSpec names, by the torch class that implements each.
_SEARCHED_OPTIMIZERS = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def _warn_if_other_optimizer(spec: RunSpec, optimizer: Optimizer) -> None:
    """An LR found with one optimizer does not carry over to another (AdamW's best LR is usually orders of
    magnitude below SGD's with momentum): say so when the user's optimizer is not the one searched."""
    searched = _SEARCHED_OPTIMIZERS[spec.optimizer.name]
    if type(optimizer) is not searched:
        warnings.warn(
            f"this schedule's LR was searched with {searched.__name__} (momentum {spec.optimizer.momentum:g}, "
            f"weight decay {spec.optimizer.weight_decay:g}); your optimizer is {type(optimizer).__name__}, "
            "whose best LR may be far from it: search with yours (config search.optimizers)",
            UserWarning,
            stacklevel=3,
        )


def check_schedule(spec: RunSpec, steps_per_epoch: int = 1) -> None:
    """Build the spec's scheduler for a real optimizer on one dummy parameter and step it through the whole
    run as training does, so that parameters torch refuses, or that give a non-finite or negative LR,
    are one line before a run starts rather than a traceback in its middle.

    Args:
        steps_per_epoch: optimizer steps an epoch; 1 checks the schedule's shape when the data is unknown.

    Raises:
        ConfigError: `schedule.params: StepLR(step_size=0): ZeroDivisionError: ...`, and the like.
    """
    schedule = LoadedSchedule(spec)
    unknown = sorted(set(spec.schedule.params) - set(searched_params(schedule.name)))
    if unknown:
        known = ", ".join(searched_params(schedule.name)) or "none"
        raise ConfigError(f"schedule.params: {schedule.name} has no parameter {unknown[0]!r}; it takes {known}")
    label = f"{schedule.name}({', '.join(f'{k}={v!r}' for k, v in spec.schedule.params.items())})"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's deprecation notes are not the user's mistake
            _step_through(schedule, steps_per_epoch)
    except ConfigError as error:
        raise ConfigError(f"schedule.params: {label}: {str(error).removeprefix('schedule.params: ')}") from None
    except Exception as error:  # noqa: BLE001 - whatever torch raises, said in one line
        detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ConfigError(f"schedule.params: {label}: {type(error).__name__}: {detail}".rstrip(": ")) from None


def mean_lr_factor(spec: RunSpec, steps_per_epoch: int = 1) -> float:
    """The run's LR averaged over its steps, as a fraction of its base LR: how much learning rate a
    schedule gives in all (cosine to zero about 0.5, a warmup-then-decay less), with a val loss that keeps
    improving (ReduceLROnPlateau keeps its LR)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lrs = _lrs_through(LoadedSchedule(spec), steps_per_epoch, val_loss=lambda epoch: 1.0 / epoch)
        total = sum(lr for _, lr in lrs)
    return total / (spec.epochs * steps_per_epoch * spec.lr)


def _step_through(schedule: LoadedSchedule, steps_per_epoch: int) -> None:
    # A loss that never improves, so ReduceLROnPlateau acts. The LR after the last step is never used
    # (OneCycleLR's linear anneal goes below 0 there), so it is not checked.
    for epoch, lr in _lrs_through(schedule, steps_per_epoch, val_loss=lambda epoch: 1.0):
        _check_lr(lr, epoch)


def _lrs_through(
    schedule: LoadedSchedule, steps_per_epoch: int, val_loss: Callable[[int], float]
) -> Iterator[tuple[int, float]]:
    """Step the schedule through its whole run as training does, `val_loss(epoch)` its metric: (epoch, LR)
    of every optimizer step, each before it is taken."""
    optimizer, scheduler = schedule.shadow(steps_per_epoch)
    for epoch in range(1, schedule.spec.epochs + 1):
        for _ in range(steps_per_epoch):
            yield epoch, optimizer.param_groups[0]["lr"]
            schedule.after_batch(scheduler)
        schedule.after_epoch(scheduler, val_loss=val_loss(epoch))


def _check_lr(lr: float, epoch: int) -> None:
    if not (math.isfinite(lr) and lr >= 0):
        raise ConfigError(f"the LR becomes {lr} in epoch {epoch}")


def load_schedule(path: str | Path, stretch_to: int | None = None, *, epochs: int | None = None) -> LoadedSchedule:
    """The schedule of an exported run (`lrsearch export`), to build for your own optimizer and loop.

    Args:
        stretch_to: the length you train for, when it is not the run's: the whole schedule is stretched
            to it (`RunSpec.stretched`), keeping its shape. Its base LR stays the one chosen at the run's
            length, and a warning says so: `lrsearch certify --epochs N` chooses one at N, and its export
            is already at N.
        epochs: the old name of `stretch_to` (deprecated, the same meaning).
    """
    spec = load_run_spec(path)
    if epochs is not None:
        warnings.warn("epochs= is now stretch_to= (the same: the whole schedule stretched)", FutureWarning, 2)
        stretch_to = stretch_to if stretch_to is not None else epochs
    if stretch_to is not None and stretch_to != spec.epochs:
        spec = _stretched(spec, stretch_to)
        check_schedule(spec)
        warnings.warn(
            f"{path}: stretched to {stretch_to} epochs at the base LR chosen at {load_run_spec(path).epochs}; "
            f"`lrsearch certify --epochs {stretch_to}` chooses every candidate's LR at {stretch_to}",
            UserWarning,
            stacklevel=2,
        )
    return LoadedSchedule(spec)


def load_run_spec(path: Path | str) -> RunSpec:
    """Load a RunSpec YAML (such as `lrsearch export` writes), its schedule built and stepped through the
    run once (`check_schedule`): a user may have edited it, and torch is the judge of what it takes.

    Raises:
        ConfigError: naming the file and the field.
    """
    fields = load_yaml_mapping(Path(path))
    fields.pop(CERTIFICATE_KEY, None)  # what the run's certification measured: not part of the run
    if looks_like_search_config(fields):
        raise ConfigError(
            f"{path}: this is a search config, not an exported run: `lrsearch optimize --config {path}` "
            "searches with it; `lrsearch export --study-name NAME -o best.yaml` writes a run to replay"
        )
    try:
        spec = RunSpec.model_validate(fields)
    except ValidationError as error:
        raise from_validation_error(error, str(path), model=RunSpec) from None
    try:
        check_schedule(spec)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None
    return spec
