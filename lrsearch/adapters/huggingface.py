"""A searched schedule in Hugging Face's `Trainer(optimizers=(optimizer, scheduler))`.

How the Trainer steps a scheduler it is given (transformers/trainer.py, the training loop's `do_sync_step`
and `_evaluate`):

- `lr_scheduler.step()` once after every optimizer step (so after every `gradient_accumulation_steps`
  batches, and on an epoch's last batch), never at an epoch's end. A per-batch schedule (OneCycleLR,
  CyclicLR) is given as it is; a per-epoch one is given as a `LambdaLR` whose step k holds the LR the real
  schedule has after k // steps_per_epoch epochs, so it changes where lrsearch's loop would step it.
- a `ReduceLROnPlateau` is never stepped there: the Trainer steps it after each evaluation with
  `metrics["eval_" + args.metric_for_best_model]`. With `eval_strategy="epoch"` and a loss as that
  metric, that is lrsearch's step after every epoch with the validation loss; `args=` is checked for it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau

from lrsearch.adapters._shared import ModelOrParams, checked_steps, missing_framework, parameters
from lrsearch.base.errors import ConfigError
from lrsearch.base.torch_private import mark_stepped
from lrsearch.problem.build import LoadedSchedule, build_optimizer

try:
    from transformers import TrainingArguments
except ModuleNotFoundError as error:
    raise missing_framework(error, framework="transformers", extra="hf") from None


def optimizers(
    schedule: LoadedSchedule,
    model_or_params: ModelOrParams,
    steps_per_epoch: int,
    *,
    args: TrainingArguments | None = None,
) -> tuple[Optimizer, LRScheduler | ReduceLROnPlateau]:
    """The searched optimizer and a scheduler the Trainer steps as lrsearch's loop would::

        Trainer(model=model, args=args, optimizers=optimizers(schedule, model, steps_per_epoch, args=args), ...)

    Args:
        schedule: `lrsearch.load_schedule("best.yaml")`; its run's length is `schedule.epochs`, the
            Trainer's `num_train_epochs` (a warning says when `args` differ).
        model_or_params: the model, or its parameters or parameter groups; the optimizer is the one
            searched (`build_optimizer`), at the searched base LR.
        steps_per_epoch: the Trainer's optimizer steps an epoch, `ceil(len(train_dataloader) /
            args.gradient_accumulation_steps)`, where `len(train_dataloader)` is
            `ceil(len(train_dataset) / args.per_device_train_batch_size)` on one device.
        args: the Trainer's arguments; ReduceLROnPlateau needs them, with `eval_strategy="epoch"` and
            `metric_for_best_model="loss"` (the Trainer steps it with the eval loss after each evaluation).

    Raises:
        ConfigError: for ReduceLROnPlateau without such `args`.
    """
    steps = checked_steps(steps_per_epoch)
    if schedule.step_on == "metric":
        _check_evaluates_every_epoch(schedule, args)
    if args is not None and args.max_steps <= 0 and args.num_train_epochs != schedule.epochs:
        warnings.warn(
            f"the Trainer runs num_train_epochs={args.num_train_epochs:g} and this schedule spans "
            f"{schedule.epochs} epochs: num_train_epochs={schedule.epochs}, or "
            f"load_schedule(path, stretch_to={args.num_train_epochs:g})",
            UserWarning,
            stacklevel=2,
        )
    optimizer = build_optimizer(schedule.spec, parameters(model_or_params))
    if schedule.step_on == "epoch":
        return optimizer, _epochs_in_steps(schedule, optimizer, steps)
    return optimizer, schedule.build(optimizer, steps)


def _check_evaluates_every_epoch(schedule: LoadedSchedule, args: TrainingArguments | None) -> None:
    needs = 'args=TrainingArguments(..., eval_strategy="epoch", metric_for_best_model="loss")'
    why = f"{schedule.name} steps with the validation loss after every epoch, which the Trainer does only with"
    if args is None or args.eval_strategy != "epoch":
        raise ConfigError(f"{why} {needs}")
    metric = args.metric_for_best_model
    if metric is None or not metric.endswith("loss"):
        raise ConfigError(f"{why} {needs}, not metric_for_best_model={metric!r}")


def _epochs_in_steps(schedule: LoadedSchedule, optimizer: Optimizer, steps_per_epoch: int) -> LambdaLR:
    """A per-step LambdaLR on `optimizer` giving, at step k, the LRs the real schedule has after
    k // steps_per_epoch epochs. The real schedule runs on a shadow optimizer with `optimizer`'s groups,
    stepped by `after_epoch` (the one stepping rule) as far as the Trainer asks, so that a run longer than
    the schedule's gets what torch's scheduler gives there. Each factor is a plain function of k, so the
    Trainer's checkpoint (`state_dict`) holds only the step count, and a resumed run recomputes them."""
    dummies = [{"params": [nn.Parameter(torch.zeros(1))], "lr": group["lr"]} for group in optimizer.param_groups]
    shadow = build_optimizer(schedule.spec, dummies)
    scheduler = schedule.build(shadow, steps_per_epoch)  # sets the searched base LRs on the shadow
    mark_stepped(shadow)
    bases = [group["initial_lr"] for group in shadow.param_groups]
    for group, base in zip(optimizer.param_groups, bases, strict=True):
        group["lr"] = base
    by_epoch = [[group["lr"] for group in shadow.param_groups]]  # by_epoch[e]: the LRs after e epochs

    def lrs_after(epochs: int) -> list[float]:
        while len(by_epoch) <= epochs:
            schedule.after_epoch(scheduler)
            by_epoch.append([group["lr"] for group in shadow.param_groups])
        return by_epoch[epochs]

    def factor(index: int) -> Callable[[int], float]:
        def of_step(step: int) -> float:
            base = bases[index]
            return lrs_after(step // steps_per_epoch)[index] / base if base > 0 else 0.0

        return of_step

    return LambdaLR(optimizer, [factor(i) for i in range(len(bases))])
