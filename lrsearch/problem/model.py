"""The MLP every trial trains."""

from __future__ import annotations

from torch import nn


def make_mlp(n_features: int, hidden: int, n_outputs: int) -> nn.Sequential:
    """input -> hidden -> hidden -> outputs (class logits, or one value for regression), ReLU between."""
    return nn.Sequential(
        nn.Linear(n_features, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, n_outputs),
    )
