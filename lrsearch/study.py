"""Storage, sampler, pruner and study name; running the trials of a search."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial

from lrsearch.config import SearchConfig
from lrsearch.errors import ConfigError

PROBLEM_ATTR = "lrsearch_problem"  # study attribute: the settings its trials were trained under
FAIL_REASON = "fail_reason"  # trial attribute: why a FAIL trial failed (Optuna 5 keeps it only in its log)

Callback = Callable[[optuna.Study, FrozenTrial], None]


def open_storage(url: str, must_exist: bool = False) -> optuna.storages.BaseStorage:
    """Open an Optuna storage by URL; an SQLite file's folder is created (unless `must_exist`).

    Raises:
        ConfigError: the URL is malformed, its driver is missing, or the server or file can't be reached.
    """
    sqlite_path = _sqlite_path(url)
    if sqlite_path is not None:
        if must_exist and not sqlite_path.exists():
            raise ConfigError(f"--storage: no study file at {sqlite_path}; run `lrsearch optimize` first")
        try:
            sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(f"--storage: cannot create {sqlite_path.parent}: {error.strerror}") from None
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as error:  # SQLAlchemy, driver and Optuna errors alike mean "can't use this URL"
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"--storage: cannot open {url!r}: {first_line}") from None


def _sqlite_path(url: str) -> Path | None:
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == prefix + ":memory:":
        return None
    return Path(url[len(prefix) :])


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    """The named sampler; parameters of unchosen schedules are absent, so samplers must cope with a
    conditional space (TPE's `group` splits it by which parameters a trial has)."""
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, warn_independent_sampling=False)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False)
    raise ConfigError(f"--sampler: unknown sampler {name!r}; choose from tpe, random, gp, qmc")


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    """The named pruner, tuned to the run length: epochs are its steps."""
    # Warmup and cyclic schedules look bad early on purpose; don't judge anyone in the first quarter.
    warmup = max(1, epochs // 4)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup)
    if name == "successive-halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=warmup)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=warmup, max_resource=epochs)
    if name == "patient":
        # Alone (no wrapped pruner) it is early stopping: no new best val loss for `patience` epochs.
        return optuna.pruners.PatientPruner(None, patience=max(2, epochs // 5))
    if name == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=warmup)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(
        f"--pruner: unknown pruner {name!r}; choose from median, successive-halving, hyperband, patient, wilcoxon, none"
    )


def open_study(config: SearchConfig) -> optuna.Study:
    """Create the study, or load it to add trials; a stored study must have been made for the same problem.

    Raises:
        ConfigError: the storage can't be opened, or the study was created with other data, model,
            epochs, batch size or seed (its trials would not compare with new ones).
    """
    settings = config.study
    sampler = make_sampler(settings.sampler, settings.seed)
    pruner = make_pruner(settings.pruner, config.train.epochs)
    storage = open_storage(settings.storage)
    problem = config.problem()
    try:
        stored = optuna.load_study(study_name=settings.name, storage=storage, sampler=sampler, pruner=pruner)
    except KeyError:
        stored = None
    if stored is not None:
        _check_same_problem(settings.name, stored.user_attrs.get(PROBLEM_ATTR), problem)
        return stored
    study = optuna.create_study(
        study_name=settings.name,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        direction="minimize",
        load_if_exists=True,  # another worker may create it at the same moment
    )
    study.set_user_attr(PROBLEM_ATTR, problem)
    return study


def _check_same_problem(name: str, stored: dict | None, wanted: dict) -> None:
    if stored is None:
        return
    old = _flatten(stored)
    for key, value in _flatten(wanted).items():
        if old.get(key) != value:
            raise ConfigError(
                f"study {name!r} was made with {key}={old.get(key)!r}, not {value!r}; "
                "use another --study-name or the study's own settings"
            )


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
        raise ConfigError(f"--study-name: no study {name!r} in {storage_url}; stored studies: {known}") from None


def run_trials(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    trials: int | None,
    timeout: float | None,
    callbacks: Sequence[Callback] = (),
) -> None:
    """Run trials until `trials` more have run or `timeout` seconds have passed.

    A trial that raises an error is recorded as FAIL with its reason and the study goes on; diverging
    trials are already turned into pruned ones by the objective.
    """
    study.optimize(
        _recording_failures(objective),
        n_trials=trials,
        timeout=timeout,
        catch=(RuntimeError, ValueError, ArithmeticError),
        callbacks=list(callbacks),
    )


def _recording_failures(objective: Callable[[optuna.Trial], float]) -> Callable[[optuna.Trial], float]:
    def run(trial: optuna.Trial) -> float:
        try:
            return objective(trial)
        except optuna.TrialPruned:
            raise
        except BaseException as error:  # Ctrl-C too: the interrupted trial says so
            trial.set_user_attr(FAIL_REASON, f"{type(error).__name__}: {error}".rstrip(": "))
            raise

    return run


@contextmanager
def stop_on_interrupt() -> Iterator[threading.Event]:
    """Turn the first Ctrl-C into a request to stop, set on the returned event.

    A KeyboardInterrupt raised in the middle of a storage write can leave an SQLite study locked, and
    the trial then can't even be marked failed. So the first Ctrl-C only sets the event, and the
    objective stops at the next epoch boundary, between writes. A second Ctrl-C interrupts at once.
    """
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop  # signals reach only the main thread; nothing to install
        return

    def request_stop(signum: int, frame: object) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, request_stop)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
