"""The samplers a search can use, by name."""

from __future__ import annotations

from typing import Any

import optuna

from lrsearch.base.errors import ConfigError


def make_sampler(name: str, seed: int | None, fixed: dict[str, Any] | None = None) -> optuna.samplers.BaseSampler:
    """The named sampler, pinning the `fixed` trial parameters.

    Parameters of unchosen schedules are absent, so samplers must cope with a conditional space (TPE's
    `group` splits it by which parameters a trial has).
    """
    base = _base_sampler(name, seed)
    return optuna.samplers.PartialFixedSampler(fixed, base) if fixed else base


def _base_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        # constant_liar: trials still running (other workers', a stack's) count as bad guesses, so the
        # sampler does not propose the same region twice before either finishes.
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False)
    raise ConfigError(f"--sampler: unknown sampler {name!r}; choose from tpe, random, gp, qmc")
