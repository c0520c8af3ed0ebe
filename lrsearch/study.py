"""The study: creating or resuming it in a storage, its sampler and pruner, and what workers read from it."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.storages import BaseStorage

from lrsearch.config import SearchConfig, with_overrides
from lrsearch.errors import ConfigError
from lrsearch.spec import RunSpec
from lrsearch.storage import open_storage, shown_url

PROBLEM_ATTR = "lrsearch_problem"  # study attribute: the settings its trials were trained under
CONFIG_ATTR = "lrsearch_config"  # study attribute: the search as the last `optimize` set it, for workers

# What a worker on another machine takes from the study; storage, devices and jobs are its own.
SHARED_STUDY_SETTINGS = {"sampler", "pruner", "seed", "heartbeat"}


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


def open_study(config: SearchConfig, storage: BaseStorage | None = None) -> optuna.Study:
    """Create the study, or load it to add trials; a stored study must have been made for the same problem.

    The search configuration is stored in the study, so `lrsearch worker` on another machine runs the
    same search without a config file.

    Raises:
        ConfigError: the storage can't be opened, or the study was created with other data, model,
            epochs, batch size or seed (its trials would not compare with new ones).
    """
    settings = config.study
    storage = storage or open_storage(settings.storage, heartbeat=settings.heartbeat)
    problem = config.problem()
    try:
        study = optuna.load_study(study_name=settings.name, storage=storage)
        _check_same_problem(settings.name, study.user_attrs.get(PROBLEM_ATTR), problem)
    except KeyError:
        study = optuna.create_study(
            study_name=settings.name,
            storage=storage,
            direction="minimize",
            load_if_exists=True,  # another worker may create it at the same moment
        )
        study.set_user_attr(PROBLEM_ATTR, problem)
    study.set_user_attr(CONFIG_ATTR, shared_settings(config))
    return _with_search(storage, config, settings.seed)


def join_study(config: SearchConfig, sampler_seed: int | None, storage: BaseStorage | None = None) -> optuna.Study:
    """Open an existing study as one of its workers; each worker samples with its own seed, or
    workers with equal seeds would propose the same parameters.

    Args:
        storage: the study's storage, opened by this process already (a worker in the command's own
            process); None opens `config.study.storage`.
    """
    if storage is None:
        storage = open_storage(config.study.storage, heartbeat=config.study.heartbeat)
    return _with_search(storage, config, sampler_seed)


def _with_search(storage: BaseStorage, config: SearchConfig, sampler_seed: int | None) -> optuna.Study:
    # Optuna stores neither sampler nor pruner: each process sets them when it loads the study.
    return optuna.load_study(
        study_name=config.study.name,
        storage=storage,
        sampler=make_sampler(config.study.sampler, sampler_seed, config.search.fixed),
        pruner=make_pruner(config.study.pruner, config.train.epochs),
    )


def shared_settings(config: SearchConfig) -> dict[str, Any]:
    """The part of the configuration every worker of the study must share."""
    shared = config.model_dump(mode="json", exclude={"study"})
    return shared | {"study": config.study.model_dump(mode="json", include=SHARED_STUDY_SETTINGS)}


def stored_config(study: optuna.Study, overrides: dict[str, Any]) -> SearchConfig:
    """The search configuration stored in `study`, with this worker's own flags applied.

    Args:
        overrides: dotted study field -> value (`study.storage`, `study.jobs`, ...), None values ignored.

    Raises:
        ConfigError: the study was not created by `lrsearch optimize`, or a flag is bad.
    """
    shared = study.user_attrs.get(CONFIG_ATTR)
    if shared is None:
        raise ConfigError(f"--study-name: study {study.study_name!r} was not made by `lrsearch optimize`")
    if not isinstance(shared, dict) or not isinstance(shared.get("study"), dict):  # stored data is data
        raise ConfigError(f"--study-name: study {study.study_name!r} holds unreadable search settings ({CONFIG_ATTR})")
    raw = shared | {"study": shared["study"] | {"name": study.study_name}}
    return with_overrides(raw, overrides, f"study {study.study_name!r}")


def _check_same_problem(name: str, stored: dict | None, wanted: dict) -> None:
    differing = _first_difference(stored, wanted)
    if differing is not None:
        key, old, new = differing
        raise ConfigError(
            f"study {name!r} was made with {key}={old!r}, not {new!r}; "
            "use another --study-name or the study's own settings"
        )


def check_replay_problem(study: optuna.Study, spec: RunSpec) -> None:
    """Refuse to record a replay of another problem in `study`: the report would set its test loss
    beside baselines and trials it does not compare with.

    Raises:
        ConfigError: naming the first setting (data, model, epochs, batch size, seed) that differs.
    """
    differing = _first_difference(study.user_attrs.get(PROBLEM_ATTR), spec.problem())
    if differing is not None:
        key, old, new = differing
        raise ConfigError(
            f"--study-name: study {study.study_name!r} was searched with {key}={old!r}, but the config has "
            f"{new!r}; a replay must train the study's problem"
        )


def _first_difference(stored: dict | None, wanted: dict) -> tuple[str, object, object] | None:
    """The first setting of `wanted` that the `stored` problem has otherwise, as (dotted key, stored,
    wanted); None when they agree or nothing is stored (a study made before problems were kept)."""
    if not isinstance(stored, dict):
        return None
    old = _flatten(stored)
    for key, value in _flatten(wanted).items():
        if old.get(key) != value:
            return key, old.get(key), value
    return None


def _flatten(settings: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def load_existing_study(name: str, storage_url: str) -> optuna.Study:
    """Load a study that must exist; a missing one is a `ConfigError` listing the stored names."""
    storage = open_storage(storage_url, must_exist=True)
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        names = optuna.get_all_study_names(storage)
        known = ", ".join(names) if names else "none yet"
        raise ConfigError(
            f"--study-name: no study {name!r} in {shown_url(storage_url)}; stored studies: {known}"
        ) from None
