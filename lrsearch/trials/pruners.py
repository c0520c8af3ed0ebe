"""The pruners a search can use, by name, tuned to the run's length (epochs are their steps)."""

from __future__ import annotations

import optuna

from lrsearch.base.errors import ConfigError


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    """The named pruner, tuned to the run length: epochs are its steps."""
    warmup = _warmup(epochs)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup)
    if name == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=warmup)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=warmup, max_resource=epochs)
    if name == "patient":
        # Alone (no wrapped pruner) it is early stopping: no new best val loss for `patience` epochs.
        return optuna.pruners.PatientPruner(None, patience=_patience(epochs))
    if name == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=warmup)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(
        f"--pruner: unknown pruner {name!r}; choose from median, successive-halving, hyperband, patient, wilcoxon, none"
    )


def first_pruning_epoch(name: str, epochs: int) -> int:
    """The first epoch at which `make_pruner(name, epochs)` may prune. Asking it earlier only costs a
    storage round trip (milliseconds on a database) for an answer known to be no."""
    if name == "none":
        return epochs + 1
    if name == "patient":
        return _patience(epochs) + 1
    return _warmup(epochs)


def _warmup(epochs: int) -> int:
    # Warmup and cyclic schedules look bad early on purpose; don't judge anyone in the first quarter.
    return max(1, epochs // 4)


def _patience(epochs: int) -> int:
    return max(2, epochs // 5)
