"""The MLP every trial trains."""

from __future__ import annotations

from torch import nn


def make_mlp(n_features: int, hidden: int, n_classes: int) -> nn.Sequential:
    """input -> hidden -> hidden -> classes, with ReLU between; returns logits."""
    return nn.Sequential(
        nn.Linear(n_features, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, n_classes),
    )
