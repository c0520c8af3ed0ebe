"""A task of your own: a small convolutional network on scikit-learn's 8x8 digits.

    lrsearch optimize --task studies.my_task:build --trials 30

lrsearch calls `build()` once per worker and trains `model()` (a fresh one per trial, after seeding
torch) with each trial's optimizer and LR schedule, reporting `loss` on `val` every epoch.
"""

from __future__ import annotations

import torch
from sklearn.datasets import load_digits
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
        score="accuracy",
    )
