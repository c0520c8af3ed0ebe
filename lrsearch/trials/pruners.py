"""The pruners a search can use, by name, tuned to the run's length (epochs are their steps)."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lrsearch.base.errors import ConfigError

PRUNERS = ("quartile", "median", "successive-halving", "hyperband", "patient", "wilcoxon", "none")


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    """The named pruner, tuned to the run length: epochs are its steps."""
    warmup = _warmup(epochs)
    if name == "quartile":
        return PeerPercentilePruner(25.0, n_warmup_steps=warmup)
    if name == "median":
        return PeerPercentilePruner(50.0, n_warmup_steps=warmup)
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
    raise ConfigError(f"--pruner: unknown pruner {name!r}; choose from {', '.join(PRUNERS)}")


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


class PeerPercentilePruner(optuna.pruners.BasePruner):
    """Optuna's percentile pruner (`quartile`: the best quarter goes on; `median`: the better half), whose
    first trials are judged against the trials beside them.

    `quartile` is the default. A searched trial goes on only while it could become the answer, and the
    answer is a tuned control in nearly every search (`benchmarks/quality.py`): beside the controls,
    which are never pruned and sit among the best, the median let 8 to 20 of a study's 34 searched trials
    train all 20 epochs, up to half the search's epochs, for schedules that were then not recommended.
    On the 22 searches of `quality.py sweep` (README), the quartile's trained 9% fewer epochs (median),
    19 recommended the same run, and none of the other 3 is worse than the careful sweep beyond noise
    (one had been).

    Optuna's pruner judges a trial against the trials that completed, and none until 5 have: a stack's
    first trials (10 on a CPU) all train to their end, those that learn nothing too (at chance val loss
    after 20 epochs, in the default study's first stack 3 of 10). Until `n_startup_trials` complete, a
    trial here is judged by the same rule (its best val loss so far against the percentile at its epoch)
    against its peers: the other trials that reached its epoch unpruned, running or completed, once at
    least `n_startup_trials` of them have. A stack of one has no peers and prunes as Optuna's does.
    """

    def __init__(self, percentile: float, n_warmup_steps: int, n_startup_trials: int = 5) -> None:
        self._startup = n_startup_trials
        self._completed = optuna.pruners.PercentilePruner(
            percentile, n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps
        )
        self._peers = optuna.pruners.PercentilePruner(
            percentile, n_startup_trials=0, n_warmup_steps=n_warmup_steps, n_min_trials=n_startup_trials
        )

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) >= self._startup:
            return self._completed.prune(study, trial)
        return self._peers.prune(_Peers(study, trial.number), trial)  # type: ignore[arg-type]


class _Peers:
    """A study as `PeerPercentilePruner` shows it to Optuna's percentile rule, which reads the completed trials:
    in their place, every trial but the judged one that is running or completed. Whatever else the rule
    reads (its direction, in Optuna 5) is the study's own."""

    def __init__(self, study: optuna.Study, judged: int) -> None:
        self._study, self._judged = study, judged

    def get_trials(self, deepcopy: bool = False, states: Any = None) -> list[FrozenTrial]:
        unpruned = self._study.get_trials(deepcopy=deepcopy, states=(TrialState.RUNNING, TrialState.COMPLETE))
        return [trial for trial in unpruned if trial.number != self._judged]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)
