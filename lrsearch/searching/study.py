"""The study: creating or resuming it in a storage (with the sampler and pruner of `trials`), and what
workers read from it."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.storages import BaseStorage

from lrsearch.base.errors import ConfigError
from lrsearch.problem.config import SearchConfig, with_overrides
from lrsearch.problem.spec import RunSpec
from lrsearch.store.certificate import Certificate, stored_certificate
from lrsearch.store.storage import open_storage, shown_url
from lrsearch.trials.pruners import make_pruner
from lrsearch.trials.samplers import make_sampler

PROBLEM_ATTR = "lrsearch_problem"  # study attribute: the settings its trials were trained under
CONFIG_ATTR = "lrsearch_config"  # study attribute: the search as the last `optimize` set it, for workers

# What a worker on another machine takes from the study; storage, devices and jobs are its own.
SHARED_STUDY_SETTINGS = {"sampler", "pruner", "seed", "heartbeat"}


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
            "use another study name (--study-name, or study_name= in Python) or the study's own settings"
        )


def check_replay_problem(study: optuna.Study, spec: RunSpec) -> None:
    """Refuse to record a replay of another problem in `study`: the report would set its test loss
    beside baselines and trials it does not compare with. A run at the length the study's certificate
    was made at is the study's problem too: it is what that certificate recommends.

    Raises:
        ConfigError: naming the first setting (data, model, epochs, batch size, seed) that differs.
    """
    stored = study.user_attrs.get(PROBLEM_ATTR)
    certificate = stored_certificate(study)
    certified = certificate.epochs if isinstance(certificate, Certificate) else None
    if isinstance(stored, dict) and certified is not None and spec.epochs == certified:
        stored = stored | {"train": dict(stored.get("train") or {}) | {"epochs": certified}}
    differing = _first_difference(stored, spec.problem())
    if differing is not None:
        key, old, new = differing
        also = f" (and certified at {certified})" if key == "train.epochs" and certified not in (None, old) else ""
        raise ConfigError(
            f"--study-name: study {study.study_name!r} was searched with {key}={old!r}{also}, but the config has "
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
