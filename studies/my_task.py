"""A task of your own: a small convolutional network on scikit-learn's 8x8 digits.

    lrsearch optimize --task studies.my_task:build --trials 30

lrsearch calls `build()` once per worker and trains `model()` (a fresh one per trial, after seeding
torch) with each trial's optimizer and LR schedule, reporting `loss` on `val` every epoch, and beside it
one hook: a score of its own, macro F1 from scikit-learn, which is better higher.
"""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits
from sklearn.metrics import f1_score
from sklearn.model_selection import train_test_split
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

import lrsearch


class SmallConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classify = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x).flatten(1))


def macro_f1(output: torch.Tensor, target: torch.Tensor) -> float:
    """F1 over the ten digits, each counted alike: the val split's whole output against its labels."""
    return f1_score(target.cpu(), output.argmax(dim=-1).cpu(), average="macro")


def build() -> lrsearch.Task:
    images, labels = load_digits(return_X_y=True)
    x = torch.tensor(images / 16.0, dtype=torch.float32).view(-1, 1, 8, 8)
    y = torch.tensor(labels)
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.4, stratify=y, random_state=0)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=0)
    return lrsearch.Task(
        model=SmallConvNet,
        # A DataLoader is used as it is (its batch size, its shuffling); plain (x, y) tensors work too.
        train=DataLoader(TensorDataset(x_train, y_train), batch_size=64, shuffle=True),
        val=(x_val, y_val),
        test=(x_test, y_test),
        loss=F.cross_entropy,
        # The search still minimises the val loss; F1 is recorded and shown beside it, the highest ranked
        # best. Other hooks: train_step(model, batch) -> loss for batches of your own (dicts, several
        # inputs), eval_step, clip_grad_norm, accumulate_batches, autocast="bfloat16".
        score=lrsearch.Score("f1", macro_f1, direction="maximize"),
    )
