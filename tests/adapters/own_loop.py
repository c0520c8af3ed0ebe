"""The LRs lrsearch's own loop gives a schedule, step by step: the sequence each adapter's framework must
reproduce. Built and stepped as the engines step it (`LoadedSchedule.build`, then `after_batch` after
every optimizer step and `after_epoch` after every epoch)."""

from __future__ import annotations

from pathlib import Path

import optuna
import torch

import lrsearch
from lrsearch.base.torch_private import mark_stepped
from lrsearch.problem.schedules import SCHEDULES, Budget

# Schedules whose LR need not move in a short run: the constant one, and ReduceLROnPlateau, which moves
# only when the val loss stalls (which its sampled threshold and patience may never see in a few epochs).
MAY_STAND_STILL = {"none", "ReduceLROnPlateau"}


def exported_schedule(
    folder: Path, name: str, params: dict, *, epochs: int, lr: float = 0.1
) -> lrsearch.LoadedSchedule:
    """The schedule of an exported run, loaded from its YAML as a user loads it."""
    path = folder / f"{name}-best.yaml"
    lrsearch.RunSpec(lr=lr, epochs=epochs, schedule={"name": name, "params": params}).save(path)
    return lrsearch.load_schedule(path)


def registry_schedule(folder: Path, name: str, *, epochs: int, steps_per_epoch: int) -> lrsearch.LoadedSchedule:
    """Schedule `name` of the registry at parameters its own search space samples for this budget (a
    seeded sampler: the same parameters every run), exported and loaded as a user does."""
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3)).ask()
    params = SCHEDULES[name].suggest(trial, Budget(epochs, steps_per_epoch))
    return exported_schedule(folder, name, params, epochs=epochs)


def own_loop_lrs(
    schedule: lrsearch.LoadedSchedule,
    optimizer: torch.optim.Optimizer,
    steps_per_epoch: int,
    val_losses: list[float] | None = None,
) -> list[list[float]]:
    """Every group's LR at each optimizer step of the run, before that step."""
    scheduler = schedule.build(optimizer, steps_per_epoch)
    mark_stepped(optimizer)
    lrs = []
    for epoch in range(schedule.epochs):
        for _ in range(steps_per_epoch):
            lrs.append([group["lr"] for group in optimizer.param_groups])
            schedule.after_batch(scheduler)
        schedule.after_epoch(scheduler, None if val_losses is None else val_losses[epoch])
    return lrs


def own_loop_first_group(
    schedule: lrsearch.LoadedSchedule, steps_per_epoch: int, val_losses: list[float] | None = None
) -> list[float]:
    optimizer = lrsearch.build_optimizer(schedule.spec, [torch.nn.Parameter(torch.zeros(1))])
    return [lrs[0] for lrs in own_loop_lrs(schedule, optimizer, steps_per_epoch, val_losses)]
