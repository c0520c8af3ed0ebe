from __future__ import annotations

import os
import time
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from optuna.trial import TrialState
from postgres_server import postgres_server, postgres_url  # noqa: F401  (fixtures)

from lrsearch.problem.data import load_data
from lrsearch.problem.spec import DataSpec

# A small problem: trials train in a fraction of a second, so tests can run whole searches.
TINY = {
    "data": {"n_samples": 400, "n_features": 8, "n_informative": 4, "n_classes": 3},
    "model": {"hidden": 16},
    "train": {"epochs": 4, "batch_size": 32},
}


def pytest_collection_modifyitems(config, items) -> None:
    """On Optuna's public path (a release the fast path was not tested on, or LRSEARCH_OPTUNA_FAST_PATH=0)
    the fast path's own tests have nothing to test; every other test runs as it is."""
    from lrsearch.store.optuna_private import fast_path_on

    if fast_path_on():
        return
    skip = pytest.mark.skip(reason="the Optuna fast path is off: Optuna's public storage API serves")
    for item in items:
        if "fast_path" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """Every test starts on one torch thread, whatever an earlier one's command left set (a CLI command run
    in-process pins its own): a stack and a lone run compared to 1e-6 must add up in the same order."""
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _fresh_thread_choosers(monkeypatch) -> None:
    """Every test's engines choose their threads afresh: what an earlier test's taught its process's
    chooser (`engines.factory`) would decide which threads, so which order of sums, this one trains on."""
    from lrsearch.engines import factory

    monkeypatch.setattr(factory, "_CHOOSERS", {})


@pytest.fixture(autouse=True, scope="session")
def _own_cache_folder(tmp_path_factory) -> None:
    """The data cache of the tests (and of the commands they start) is theirs, not the user's."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def tiny_data_spec() -> DataSpec:
    return DataSpec(**TINY["data"])


@pytest.fixture
def tiny_data(tiny_data_spec):
    return load_data(tiny_data_spec, seed=0)


@pytest.fixture
def tiny_config_file(tmp_path: Path) -> Path:
    """A search config for the tiny problem, with its study stored under tmp_path; not certified (the
    tests of certification turn it on: `--certify`)."""
    path = tmp_path / "tiny.yaml"
    config = dict(TINY) | {"study": {"storage": f"sqlite:///{tmp_path}/studies.db", "trials": 4, "certify": False}}
    path.write_text(yaml.safe_dump(config))
    return path


def running_trial(storage: str, epochs_done: int, study_name: str = "default", timeout: float = 120):
    """Wait until a trial of the study is RUNNING with `epochs_done` epochs reported; return it."""
    from lrsearch.store.records import WORKER_ATTR
    from lrsearch.store.storage import open_storage

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
        except KeyError:  # not created yet
            study = None
        for trial in study.get_trials(states=(TrialState.RUNNING,)) if study else []:
            if len(trial.intermediate_values) >= epochs_done and WORKER_ATTR in trial.user_attrs:
                return trial
        time.sleep(0.2)
    raise AssertionError(f"no trial of {study_name!r} ran {epochs_done} epochs within {timeout} s")
