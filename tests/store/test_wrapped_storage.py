"""lrsearch's `WrappedStorage` is Optuna's storage: Optuna's own storage test-suite passes through it, it
pickles, it forwards heartbeats, and a study driven through Optuna's public API (with lrsearch's modes
open, as a worker opens them) stores what the same calls store on Optuna's storage itself."""

from __future__ import annotations

import pickle

import optuna
import pytest
from optuna.storages import InMemoryStorage, RDBStorage
from optuna.testing.pytest_storages import StorageTestCase

from lrsearch.store.optuna_private import (
    OwnTrialsRead,
    WrappedStorage,
    backend_of,
    fail_stale_trials,
    for_studies,
    report_all,
    set_user_attrs,
    storage_of,
    trials_read_once,
    writes_together,
)
from lrsearch.store.storage import open_storage
from lrsearch.trials.samplers import make_sampler


@pytest.fixture(params=["sqlite", "sqlite_heartbeat", "journal", "memory"])
def storage(request, tmp_path):
    """The storage as lrsearch's studies hold it (on the public path, Optuna's own)."""
    if request.param == "memory":
        return for_studies(InMemoryStorage())  # a fresh one, not the process's
    heartbeat = 60 if request.param == "sqlite_heartbeat" else None
    return open_storage(
        str(tmp_path / "o.log") if request.param == "journal" else f"sqlite:///{tmp_path}/o.db", heartbeat=heartbeat
    )


class TestOptunaStorageSuite(StorageTestCase):
    """Optuna's tests of a storage (`optuna.testing.pytest_storages`), run on the wrapper."""


def test_the_wrapper_pickles_heartbeats_and_sees_through_to_optuna_s_storage(tmp_path):
    from optuna.storages._heartbeat import is_heartbeat_enabled

    url = f"sqlite:///{tmp_path}/h.db"
    storage = open_storage(url, heartbeat=7)
    if not isinstance(storage, WrappedStorage):
        pytest.skip("the public path: Optuna's storage as it is")
    study = optuna.create_study(study_name="h", storage=storage)
    assert storage_of(study) is storage and isinstance(backend_of(study), RDBStorage)
    assert is_heartbeat_enabled(storage) and storage.get_heartbeat_interval() == 7
    assert not is_heartbeat_enabled(open_storage(str(tmp_path / "h.log")))  # a journal has none
    trial = study.ask()
    storage.record_heartbeat(trial._trial_id)
    copied = pickle.loads(pickle.dumps(storage))
    assert type(copied) is type(storage) and copied.open_modes() == []
    assert optuna.load_study(study_name="h", storage=copied).trials == study.trials
    fail_stale_trials(study)  # its heartbeat is fresh: nothing fails
    assert study.trials[0].state == optuna.trial.TrialState.RUNNING


def _drive(study: optuna.Study, modes: bool) -> None:
    """A stack of three trials at a time through Optuna's public API, in lrsearch's blocks when `modes`."""
    running: list[optuna.Trial] = []
    with OwnTrialsRead(study, lambda: running) if modes else _nothing():
        for round_ in range(4):
            asked = [study.ask() for _ in range(3)]
            running += asked
            for trial in asked:
                with (
                    writes_together(study, trial) if modes else _nothing(),
                    trials_read_once(study) if modes else _nothing(),
                ):
                    trial.set_user_attr("worker", "w")
                    trial.suggest_float("x", -5, 5)
                    if trial.suggest_categorical("kind", ["a", "b"]) == "a":
                        trial.suggest_int("a", 0, 9)
                    storage_of(study).set_study_system_attr(study._study_id, f"note:{trial.number}", trial.number)
            for step in range(3):
                reports = [(trial, step, (trial.params["x"] - 1) ** 2 + step) for trial in running]
                if modes:
                    report_all(study, reports)
                else:
                    for trial, at, value in reports:
                        trial.report(value, at)
                for trial in running:
                    trial.set_user_attr(f"seen:{step}", len(study.get_trials(deepcopy=False)))
            for i, trial in enumerate(list(running)):
                if modes:
                    set_user_attrs(study, trial, {"curve": [1.0, 0.5], "round": round_})
                else:
                    trial.set_user_attr("curve", [1.0, 0.5])
                    trial.set_user_attr("round", round_)
                if i % 3 == 2:
                    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                else:
                    study.tell(trial, (trial.params["x"] - 1) ** 2)
                running.remove(trial)


class _nothing:
    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        pass


def _stored(url: str) -> tuple[list, dict]:
    study = optuna.load_study(study_name="s", storage=RDBStorage(url))
    trials = [
        (t.number, t.state, t.values, t.params, t.distributions, t.user_attrs, t.system_attrs, t.intermediate_values)
        for t in study.get_trials()
    ]
    return trials, storage_of(study).get_study_system_attrs(study._study_id)


def test_a_study_driven_through_the_wrapper_stores_what_optuna_s_storage_stores(tmp_path):
    urls = {which: f"sqlite:///{tmp_path}/{which}.db" for which in ("plain", "wrapped")}
    plain = optuna.create_study(study_name="s", storage=RDBStorage(urls["plain"]), sampler=make_sampler("tpe", 3))
    wrapped = optuna.create_study(study_name="s", storage=open_storage(urls["wrapped"]), sampler=make_sampler("tpe", 3))
    _drive(plain, modes=False)
    _drive(wrapped, modes=True)
    assert _stored(urls["wrapped"]) == _stored(urls["plain"])
    assert [t.params for t in wrapped.get_trials()] == [t.params for t in plain.get_trials()]
    assert wrapped.best_trial.number == plain.best_trial.number
    if isinstance(storage_of(wrapped), WrappedStorage):
        assert storage_of(wrapped).open_modes() == []
