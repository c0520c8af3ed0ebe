from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from postgres_server import postgres_server, postgres_url  # noqa: F401  (fixtures)

from lrsearch.data import load_data
from lrsearch.spec import DataSpec

# A small problem: trials train in a fraction of a second, so tests can run whole searches.
TINY = {
    "data": {"n_samples": 400, "n_features": 8, "n_informative": 4, "n_classes": 3},
    "model": {"hidden": 16},
    "train": {"epochs": 4, "batch_size": 32},
}


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def tiny_data_spec() -> DataSpec:
    return DataSpec(**TINY["data"])


@pytest.fixture
def tiny_data(tiny_data_spec):
    return load_data(tiny_data_spec, seed=0)


@pytest.fixture
def tiny_config_file(tmp_path: Path) -> Path:
    """A search config for the tiny problem, with its study stored under tmp_path."""
    path = tmp_path / "tiny.yaml"
    config = dict(TINY) | {"study": {"storage": f"sqlite:///{tmp_path}/studies.db", "trials": 4}}
    path.write_text(yaml.safe_dump(config))
    return path
