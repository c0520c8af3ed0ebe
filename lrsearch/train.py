"""The one training loop: `train(spec, data, device, on_epoch) -> History`.

The search, `lrsearch train` and the benchmarks all call it, so a replayed RunSpec reproduces its trial.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from lrsearch.build import build_optimizer, build_scheduler, step_on
from lrsearch.data import Data, Source, whole
from lrsearch.spec import RunSpec


@dataclass(frozen=True)
class EpochRecord:
    epoch: int  # 1-based
    lr: float  # the LR at the start of the epoch (per-batch schedules move it within the epoch)
    train_loss: float  # mean over the epoch's batches
    val_loss: float
    val_score: float | None  # the task's score (accuracy, R²), None when it has none
    # The LR of the epoch's `recorded_steps`, evenly spaced, for per-batch schedules (others hold `lr`).
    step_lrs: tuple[float, ...] = ()


@dataclass
class History:
    epochs: list[EpochRecord] = field(default_factory=list)
    test_loss: float | None = None  # only when `train(..., evaluate_test=True)`
    test_score: float | None = None

    @property
    def final(self) -> EpochRecord:
        return self.epochs[-1]


class Diverged(Exception):
    """The loss became NaN or infinite; `history` holds the epochs before it."""

    def __init__(self, epoch: int, what: str, value: float, history: History) -> None:
        super().__init__(f"{what} became {value} at epoch {epoch}")
        self.history = history


OnEpoch = Callable[[EpochRecord], None]
# LRs a trial's records keep of its steps, at most (and one an epoch): the pictures draw ~200 points, and
# a long run of per-batch steps must not hold millions of floats.
MAX_STEP_LRS = 2000


def recorded_steps(steps_per_epoch: int, epochs: int) -> frozenset[int]:
    """The steps of each epoch whose LR a per-batch schedule's record keeps: every step on a short
    run, evenly spaced ones on a long run."""
    kept = min(steps_per_epoch, max(1, MAX_STEP_LRS // epochs))
    return frozenset(i * steps_per_epoch // kept for i in range(kept))


@torch.no_grad()
def evaluate(model: nn.Module, data: Data, split: Source, device: torch.device | str) -> tuple[float, float | None]:
    """The task's loss and score on a whole split (one batch for tensors)."""
    model.eval()
    x, y = whole(split, device)
    output = model(x)
    return data.loss(output, y).item(), data.score_of(output, y)


def train(
    spec: RunSpec,
    data: Data,
    device: torch.device | str = "cpu",
    on_epoch: OnEpoch | None = None,
    evaluate_test: bool = False,
) -> History:
    """Train the task's model (the spec's MLP for a built-in task) with the spec's optimizer and LR schedule.

    Args:
        spec: the run.
        data: from `load_data(spec.data, spec.seed, device)`: loaded once, shared by every run.
        device: where the model trains; must be where `data` lives.
        on_epoch: called after every epoch with its record; the search reports to Optuna here and
            may raise `optuna.TrialPruned` to stop the run.
        evaluate_test: also measure the test split at the end (the search never looks at it).

    Returns:
        The per-epoch History.

    Raises:
        Diverged: the training or validation loss became NaN or infinite.
    """
    # Weights are drawn on the CPU from the spec's seed, so every device starts from the same model.
    torch.manual_seed(spec.seed)
    model = data.new_model(spec).to(device)
    optimizer = build_optimizer(spec, model.parameters())
    steps_per_epoch = data.steps_per_epoch(spec.batch_size)
    scheduler = build_scheduler(spec, optimizer, steps_per_epoch)
    when = step_on(spec)
    recorded = recorded_steps(steps_per_epoch, spec.epochs) if when == "batch" else frozenset()
    data.reseed(spec.seed)
    history = History()

    for epoch in range(1, spec.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        model.train()
        loss_sum = torch.zeros((), device=device)  # summed on the device: no sync per batch
        step_lrs: list[float] = []
        for step, (x, y) in enumerate(data.batches(spec.batch_size, spec.seed, epoch - 1, device)):
            loss = data.loss(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if when == "batch":
                # OneCycleLR and CyclicLR count optimizer steps, not epochs.
                if step in recorded:
                    step_lrs.append(optimizer.param_groups[0]["lr"])
                scheduler.step()
            loss_sum += loss.detach()
        train_loss = loss_sum.item() / steps_per_epoch
        val_loss, val_score = evaluate(model, data, data.val, device)
        for what, value in (("train loss", train_loss), ("validation loss", val_loss)):
            if not math.isfinite(value):
                raise Diverged(epoch, what, value, history)
        if when == "metric":
            scheduler.step(val_loss)  # ReduceLROnPlateau decides from the validation loss
        elif when == "epoch":
            scheduler.step()
        record = EpochRecord(epoch, lr, train_loss, val_loss, val_score, tuple(step_lrs))
        history.epochs.append(record)
        if on_epoch is not None:
            on_epoch(record)

    if evaluate_test and data.test is not None:
        history.test_loss, history.test_score = evaluate(model, data, data.test, device)
    return history
