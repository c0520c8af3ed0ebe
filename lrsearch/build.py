"""RunSpec -> the real torch optimizer and LR scheduler; used by the training loop and by users' own code."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from lrsearch.errors import ConfigError
from lrsearch.schedules import Budget, StepOn, get_schedule
from lrsearch.spec import RunSpec


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
    spec: RunSpec, optimizer: Optimizer, steps_per_epoch: int, epochs: int | None = None
) -> LRScheduler:
    """The spec's LR scheduler for `optimizer`, whose LR must be the spec's base LR.

    Args:
        spec: the run (e.g. `load_run_spec("best.yaml")`).
        optimizer: a fresh optimizer created with `lr=spec.lr` (`build_optimizer` does that).
        steps_per_epoch: optimizer steps in one epoch (`len(train_loader)`); per-batch schedules use it.
        epochs: the length of the run; defaults to the spec's, the length the schedule was tuned for.

    Returns:
        The torch scheduler. Call its `step()` as `step_on(spec)` says.
    """
    schedule = get_schedule(spec.schedule.name)
    budget = Budget(epochs=epochs or spec.epochs, steps_per_epoch=steps_per_epoch)
    try:
        return schedule.build(optimizer, dict(spec.schedule.params), budget)
    except (TypeError, ValueError, KeyError) as error:
        raise ConfigError(f"schedule.params: not valid for {schedule.name}: {error}") from None


def step_on(spec: RunSpec) -> StepOn:
    """When to call the scheduler's `step()`: after every `batch`, every `epoch`, or every epoch with the
    validation loss as `scheduler.step(val_loss)` (`metric`)."""
    return get_schedule(spec.schedule.name).step_on
