"""A searched schedule in a LightningModule: `configure_optimizers` returns what Lightning's own hook
returns, the scheduler's `interval` (and `monitor`) taken from the one stepping rule, so that Lightning's
loop steps it when lrsearch's own loop would.

How Lightning steps it (lightning/pytorch/loops/training_epoch_loop.py, `update_lr_schedulers` and
`_update_learning_rates`; lightning/pytorch/loops/fit_loop.py, `on_advance_end`):

- `"interval": "step"` steps the scheduler after every optimizer step, not every batch: with
  `accumulate_grad_batches=k` it skips the batches that only accumulate, and steps on an epoch's last
  batch even when fewer than k were accumulated. So a per-batch schedule needs the optimizer steps of an
  epoch, `ceil(batches / k)`, which this module reads from the Trainer when it can.
- `"interval": "epoch"` steps it once at the end of every training epoch.
- a `ReduceLROnPlateau` (`"interval": "epoch"`) steps after the epoch's validation, with
  `trainer.callback_metrics[monitor]`: what your `validation_step` logs as `self.log(monitor, ...)`.
"""

from __future__ import annotations

import math
import warnings

from lrsearch.adapters._shared import ModelOrParams, checked_steps, missing_framework, parameters
from lrsearch.base.errors import ConfigError
from lrsearch.problem.build import LoadedSchedule, build_optimizer

try:
    from lightning.pytorch import LightningModule, Trainer
    from lightning.pytorch.utilities.types import OptimizerLRSchedulerConfig
except ModuleNotFoundError as error:
    raise missing_framework(error, framework="lightning", extra="lightning") from None

# lrsearch's step_on -> Lightning's interval: per batch means per optimizer step (see above).
_INTERVAL = {"batch": "step", "epoch": "epoch", "metric": "epoch"}


def configure_optimizers(
    schedule: LoadedSchedule,
    model_or_params: ModelOrParams,
    steps_per_epoch: int | None = None,
    *,
    monitor: str = "val_loss",
) -> OptimizerLRSchedulerConfig:
    """The searched optimizer and schedule, as `LightningModule.configure_optimizers` returns them::

        def configure_optimizers(self):
            return lrsearch.adapters.lightning.configure_optimizers(self.schedule, self)

    Args:
        schedule: `lrsearch.load_schedule("best.yaml")`; its run's length is `schedule.epochs`, the
            Trainer's `max_epochs` (a warning says when they differ, unless the Trainer counts `max_steps`).
        model_or_params: the LightningModule (`self`), or parameters or parameter groups; the optimizer
            is the one searched (`build_optimizer`), at the searched base LR.
        steps_per_epoch: optimizer steps an epoch, which OneCycleLR and CyclicLR need; None reads them
            from the Trainer the LightningModule is attached to (`ceil(batches / accumulate_grad_batches)`).
        monitor: the logged validation metric ReduceLROnPlateau steps with (unused by other schedules).

    Returns:
        `{"optimizer": ..., "lr_scheduler": {"scheduler": ..., "interval": "step" or "epoch",
        "frequency": 1}}`, plus `"monitor": monitor` in the scheduler's dict for ReduceLROnPlateau.
    """
    trainer = _trainer_of(model_or_params)
    if trainer is not None and trainer.max_steps == -1 and trainer.max_epochs != schedule.epochs:
        warnings.warn(
            f"the Trainer runs max_epochs={trainer.max_epochs} and this schedule spans {schedule.epochs} "
            f"epochs: Trainer(max_epochs={schedule.epochs}), or load_schedule(path, stretch_to={trainer.max_epochs})",
            UserWarning,
            stacklevel=2,
        )
    steps = _steps_per_epoch(schedule, trainer, steps_per_epoch)
    optimizer = build_optimizer(schedule.spec, parameters(model_or_params))
    scheduler = {"scheduler": schedule.build(optimizer, steps), "interval": _INTERVAL[schedule.step_on], "frequency": 1}
    if schedule.step_on == "metric":
        scheduler["monitor"] = monitor
    return {"optimizer": optimizer, "lr_scheduler": scheduler}


def _trainer_of(model_or_params: ModelOrParams) -> Trainer | None:
    if not isinstance(model_or_params, LightningModule):
        return None
    try:
        trainer = model_or_params.trainer
    except RuntimeError:  # not attached to a Trainer
        return None
    return trainer if isinstance(trainer, Trainer) else None


def _steps_per_epoch(schedule: LoadedSchedule, trainer: Trainer | None, steps_per_epoch: int | None) -> int:
    if steps_per_epoch is not None:
        return checked_steps(steps_per_epoch)
    if schedule.step_on != "batch":
        return 1  # only the per-batch schedules count steps
    if trainer is None:
        raise ConfigError(
            f"{schedule.name} steps every batch: pass steps_per_epoch= (optimizer steps an epoch), "
            "or the LightningModule attached to its Trainer"
        )
    trainer.estimated_stepping_batches  # noqa: B018 - loads the train data, as Lightning's docs do here
    batches = trainer.num_training_batches
    if not math.isfinite(batches):
        raise ConfigError(f"{schedule.name} steps every batch and the train data has no length: pass steps_per_epoch=")
    return math.ceil(batches / trainer.accumulate_grad_batches)
