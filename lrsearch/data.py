"""scikit-learn data -> standardized train/val/test tensors, already on the training device."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from lrsearch.spec import DataSpec


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # float32 [rows, features]
    y: torch.Tensor  # int64 [rows]

    def __len__(self) -> int:
        return self.y.shape[0]


@dataclass(frozen=True)
class Data:
    train: Split
    val: Split
    test: Split
    n_features: int
    n_classes: int

    def steps_per_epoch(self, batch_size: int) -> int:
        """Optimizer steps in one pass over the train split (the last batch may be short)."""
        return -(-len(self.train) // batch_size)


def load_data(spec: DataSpec, seed: int, device: torch.device | str = "cpu") -> Data:
    """Generate the data set and split it stratified; scale with statistics of the train split only.

    Args:
        spec: the data set settings.
        seed: seeds the generator and the split, so every trial of a study sees the same data.
        device: where the tensors live; the training loop never copies data per batch.
    """
    x, y = make_classification(
        n_samples=spec.n_samples,
        n_features=spec.n_features,
        n_informative=spec.n_informative,
        n_redundant=0,
        n_classes=spec.n_classes,
        class_sep=spec.class_sep,
        random_state=seed,
    )
    held_out = spec.val_fraction + spec.test_fraction
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=held_out, stratify=y, random_state=seed)
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, test_size=spec.test_fraction / held_out, stratify=y_rest, random_state=seed
    )
    scaler = StandardScaler().fit(x_train)

    def to_split(features: np.ndarray, labels: np.ndarray) -> Split:
        return Split(
            torch.as_tensor(scaler.transform(features), dtype=torch.float32, device=device),
            torch.as_tensor(labels, dtype=torch.int64, device=device),
        )

    return Data(
        train=to_split(x_train, y_train),
        val=to_split(x_val, y_val),
        test=to_split(x_test, y_test),
        n_features=spec.n_features,
        n_classes=spec.n_classes,
    )
