"""Train a LightningModule with the schedule lrsearch found: a small MLP on scikit-learn's 8x8 digits,
with the exported run's optimizer, base LR and schedule (stepped as lrsearch's own loop steps it).

    lrsearch optimize --task digits --trials 30            # writes studies/digits-best.yaml
    python studies/lightning_example.py studies/digits-best.yaml

Needs Lightning: pip install "lrsearch[lightning]" (or -e ".[lightning]" in a clone).
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

import lrsearch
import lrsearch.adapters.lightning as lrsearch_lightning


class DigitsMLP(L.LightningModule):
    def __init__(self, schedule: lrsearch.LoadedSchedule) -> None:
        super().__init__()
        self.schedule = schedule
        self.net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self.net(x), y)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        # ReduceLROnPlateau steps with this, after every epoch ("val_loss" is the adapter's monitor).
        self.log("val_loss", F.cross_entropy(self.net(x), y))

    def configure_optimizers(self) -> dict:
        # The searched optimizer at the searched LR; the scheduler steps per optimizer step ("step") for
        # OneCycleLR and CyclicLR, per epoch for the rest, with steps_per_epoch read from the Trainer.
        return lrsearch_lightning.configure_optimizers(self.schedule, self)


def digits_loaders(batch_size: int) -> tuple[DataLoader, DataLoader]:
    images, labels = load_digits(return_X_y=True)
    x = torch.tensor(images / 16.0, dtype=torch.float32)
    x_train, x_val, y_train, y_val = train_test_split(x, torch.tensor(labels), test_size=0.25, random_state=0)
    train = DataLoader(TensorDataset(x_train, y_train), batch_size=batch_size, shuffle=True)
    return train, DataLoader(TensorDataset(x_val, y_val), batch_size=256)


def train(path: str | Path) -> dict[str, float]:
    """Fit the MLP for the exported run's epochs; the last epoch's logged metrics."""
    schedule = lrsearch.load_schedule(path)  # e.g. OneCycleLR(...), lr=0.087, steps every batch
    L.seed_everything(schedule.spec.seed, verbose=False)
    train_loader, val_loader = digits_loaders(schedule.spec.batch_size)
    trainer = L.Trainer(
        max_epochs=schedule.epochs,  # the run the schedule was searched for
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(DigitsMLP(schedule), train_loader, val_loader)
    return {name: float(value) for name, value in trainer.callback_metrics.items()}


if __name__ == "__main__":
    try:
        print(train(sys.argv[1] if len(sys.argv) > 1 else "studies/digits-best.yaml"))
    except lrsearch.ConfigError as error:  # a missing or unreadable YAML: one line
        sys.exit(f"Error: {error}")
