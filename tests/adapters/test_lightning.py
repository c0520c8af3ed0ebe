"""The Lightning adapter under a real `lightning.Trainer` on the CPU: the LR at every optimizer step is
the one lrsearch's own loop gives, for every schedule of the registry (at parameters its search space
samples), per epoch, per batch (with gradient accumulation too) and with the validation loss."""

from __future__ import annotations

import math
import os
import runpy
import sys
from pathlib import Path
from unittest import mock

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from own_loop import MAY_STAND_STILL, exported_schedule, own_loop_first_group, registry_schedule
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

import lrsearch
from lrsearch.adapters import lightning as adapter
from lrsearch.problem.schedules import SCHEDULES

REPO = Path(__file__).resolve().parents[2]
BATCHES = 5  # 40 rows in batches of 8


class Tiny(LightningModule):
    def __init__(self, schedule: lrsearch.LoadedSchedule, steps_per_epoch: int | None = None) -> None:
        super().__init__()
        self.net = nn.Linear(4, 3)
        self.schedule, self.steps_per_epoch = schedule, steps_per_epoch

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self.net(x), y))

    def configure_optimizers(self):
        return adapter.configure_optimizers(self.schedule, self, self.steps_per_epoch)


class Recorder(Callback):
    """The LR of every optimizer step, and the val loss each epoch's end sees (what ReduceLROnPlateau gets)."""

    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.val_losses: list[float] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.lrs.append(optimizer.param_groups[0]["lr"])

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.val_losses.append(float(trainer.callback_metrics["val_loss"]))


def _loader(seed: int) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(8 * BATCHES, 4, generator=generator)
    return DataLoader(TensorDataset(x, (x[:, 0] > 0).long() + (x[:, 1] > 1).long()), batch_size=8)


def _fit(schedule: lrsearch.LoadedSchedule, accumulate: int = 1, steps_per_epoch: int | None = None) -> Recorder:
    torch.manual_seed(0)
    recorder = Recorder()
    trainer = Trainer(
        accelerator="cpu",
        max_epochs=schedule.epochs,
        accumulate_grad_batches=accumulate,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[recorder],
    )
    trainer.fit(Tiny(schedule, steps_per_epoch), _loader(0), _loader(1))
    return recorder


CASES = {
    "StepLR per epoch": ("StepLR", {"step_size": 1, "gamma": 0.5}, 1),
    "CosineAnnealingLR per epoch, accumulating 2": ("CosineAnnealingLR", {"T_max": 4}, 2),
    "OneCycleLR per batch": (
        "OneCycleLR",
        {"pct_start": 0.3, "div_factor": 10.0, "final_div_factor": 100.0, "anneal_strategy": "cos"},
        1,
    ),
    "OneCycleLR per optimizer step, accumulating 2": (
        "OneCycleLR",
        {"pct_start": 0.3, "div_factor": 10.0, "final_div_factor": 100.0, "anneal_strategy": "linear"},
        2,
    ),
}


@pytest.mark.parametrize(("name", "params", "accumulate"), CASES.values(), ids=CASES.keys())
def test_the_trainer_steps_the_schedule_as_lrsearch_does(tmp_path, name, params, accumulate):
    schedule = exported_schedule(tmp_path, name, params, epochs=4)
    recorded = _fit(schedule, accumulate)

    steps_per_epoch = math.ceil(BATCHES / accumulate)  # Lightning steps on an epoch's last batch too
    expected = own_loop_first_group(schedule, steps_per_epoch)
    assert len(recorded.lrs) == 4 * steps_per_epoch
    assert recorded.lrs == pytest.approx(expected, rel=1e-12)
    assert len(set(expected)) > 1  # a schedule that moves, so a wrong step shows


@pytest.mark.parametrize("name", SCHEDULES)
def test_every_schedule_of_the_registry_steps_as_lrsearch_does(tmp_path, name):
    schedule = registry_schedule(tmp_path, name, epochs=4, steps_per_epoch=BATCHES)
    recorded = _fit(schedule)

    val_losses = recorded.val_losses if schedule.step_on == "metric" else None
    expected = own_loop_first_group(schedule, BATCHES, val_losses)
    assert recorded.lrs == pytest.approx(expected, rel=1e-12)
    assert len(set(expected)) > 1 or name in MAY_STAND_STILL


def test_reduce_on_plateau_steps_with_the_logged_val_loss(tmp_path):
    # A threshold no epoch's improvement meets: the LR halves after every epoch but the first.
    schedule = exported_schedule(
        tmp_path, "ReduceLROnPlateau", {"factor": 0.5, "patience": 0, "threshold": 0.9}, epochs=4
    )
    recorded = _fit(schedule)

    expected = own_loop_first_group(schedule, BATCHES, recorded.val_losses)
    assert recorded.lrs == pytest.approx(expected, rel=1e-12)
    assert sorted(set(expected), reverse=True) == pytest.approx([0.1, 0.05, 0.025])


def test_the_config_is_lightning_s_own_dict(tmp_path):
    model = nn.Linear(2, 2)
    plateau = exported_schedule(
        tmp_path, "ReduceLROnPlateau", {"factor": 0.5, "patience": 1, "threshold": 0.01}, epochs=3
    )
    config = adapter.configure_optimizers(plateau, model, monitor="val_acc")
    assert set(config) == {"optimizer", "lr_scheduler"} and isinstance(config["optimizer"], torch.optim.SGD)
    assert isinstance(config["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.ReduceLROnPlateau)
    assert {k: v for k, v in config["lr_scheduler"].items() if k != "scheduler"} == {
        "interval": "epoch",
        "frequency": 1,
        "monitor": "val_acc",
    }
    one_cycle = exported_schedule(tmp_path, "OneCycleLR", CASES["OneCycleLR per batch"][1], epochs=3)
    config = adapter.configure_optimizers(one_cycle, model.parameters(), steps_per_epoch=7)
    assert config["lr_scheduler"]["interval"] == "step" and "monitor" not in config["lr_scheduler"]
    assert config["lr_scheduler"]["scheduler"].total_steps == 21


def test_a_per_batch_schedule_without_its_steps_is_one_line(tmp_path):
    schedule = exported_schedule(
        tmp_path, "CyclicLR", {"div_factor": 4.0, "half_cycle_epochs": 1.0, "mode": "triangular"}, epochs=3
    )
    with pytest.raises(lrsearch.ConfigError, match="CyclicLR steps every batch: pass steps_per_epoch="):
        adapter.configure_optimizers(schedule, nn.Linear(2, 2))
    with pytest.raises(lrsearch.ConfigError, match="steps_per_epoch must be an integer of at least 1 but got 0"):
        adapter.configure_optimizers(schedule, nn.Linear(2, 2), steps_per_epoch=0)


def test_a_trainer_of_another_length_is_warned(tmp_path):
    schedule = exported_schedule(tmp_path, "StepLR", {"step_size": 1, "gamma": 0.5}, epochs=3)
    trainer = Trainer(
        accelerator="cpu", max_epochs=5, logger=False, enable_checkpointing=False, enable_progress_bar=False
    )
    with pytest.warns(UserWarning, match=r"max_epochs=5 and this schedule spans 3 epochs: .*stretch_to=5"):
        trainer.fit(Tiny(schedule), _loader(0), _loader(1))


def test_without_lightning_the_import_names_the_extra(monkeypatch):
    for name in [name for name in sys.modules if name.split(".")[0] == "lightning"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if never installed: every import of it fails
    monkeypatch.delitem(sys.modules, "lrsearch.adapters.lightning")
    with pytest.raises(ImportError, match=r"^this adapter needs lightning, .*: pip install 'lrsearch\[lightning\]'$"):
        import lrsearch.adapters.lightning  # noqa: F401


def test_the_worked_example_trains_with_an_exported_schedule(tmp_path):
    path = tmp_path / "best.yaml"
    lrsearch.RunSpec(
        lr=0.05, epochs=2, schedule={"name": "OneCycleLR", "params": CASES["OneCycleLR per batch"][1]}
    ).save(path)
    with mock.patch.dict(os.environ):  # what seed_everything sets there stays in this test
        example = runpy.run_path(str(REPO / "studies" / "lightning_example.py"), run_name="example")
        metrics = example["train"](path)
    assert metrics["val_loss"] < 2.3  # below chance on ten digits: it learned
