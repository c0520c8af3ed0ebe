"""A built-in task's data is made once per machine: later commands load the same tensors without
importing scikit-learn, and a cache that can't be read or written only costs the time to make them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from lrsearch.problem.data import load_data
from lrsearch.problem.data_cache import cache_folder
from lrsearch.problem.spec import DataSpec


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "lrsearch" / "data"


def _tensors(data) -> list[torch.Tensor]:
    return [tensor for split in (data.train, data.val, data.test) for tensor in (split.x, split.y)]


def _same(first, second) -> bool:
    pairs = zip(_tensors(first), _tensors(second), strict=True)
    return all(a.dtype == b.dtype and torch.equal(a, b) for a, b in pairs) and (
        (first.n_features, first.n_outputs, first.kind, first.score)
        == (second.n_features, second.n_outputs, second.kind, second.score)
    )


@pytest.mark.parametrize("task", ["classification", "regression", "digits"])
def test_data_from_the_cache_is_the_data_made_afresh(empty_cache, task):
    made = load_data(DataSpec(task=task), seed=3)
    assert cache_folder() == empty_cache and len(list(empty_cache.glob(f"{task}-*.npz"))) == 1
    assert _same(load_data(DataSpec(task=task), seed=3), made)


def test_each_seed_and_setting_has_its_own_data(empty_cache):
    first = load_data(DataSpec(n_samples=300), seed=0)
    other_seed = load_data(DataSpec(n_samples=300), seed=1)
    other_rows = load_data(DataSpec(n_samples=400), seed=0)
    assert len(list(empty_cache.iterdir())) == 3
    assert not torch.equal(first.train.x, other_seed.train.x) and len(other_rows.train) > len(first.train)


def test_an_unreadable_cache_file_is_made_again(empty_cache):
    made = load_data(DataSpec(n_samples=300), seed=0)
    [stored] = empty_cache.iterdir()
    stored.write_bytes(b"PK\x03\x04 cut off")  # a zip's first bytes, then nothing
    assert _same(load_data(DataSpec(n_samples=300), seed=0), made)
    assert _same(load_data(DataSpec(n_samples=300), seed=0), made)  # and stored whole again
    assert [path.name for path in empty_cache.iterdir()] == [stored.name]


def test_a_cache_folder_that_cannot_be_made_is_no_error(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-file"))
    data = load_data(DataSpec(n_samples=300), seed=0)
    assert len(data.train) + len(data.val) + len(data.test) == 300


@pytest.mark.slow
def test_a_search_with_its_data_cached_imports_neither_scikit_learn_nor_the_dashboard(tiny_config_file, tmp_path):
    # Pictures on (the default): the trials' notes and the study's figures are written all the same.
    script = """
import runpy, sys
sys.argv = ["lrsearch", "optimize", "--config", sys.argv[1], "--trials", "4"]
try:
    runpy.run_module("lrsearch", run_name="__main__")
except SystemExit as end:
    assert not end.code, end.code
print(sorted({name.split(".")[0] for name in sys.modules} & {"sklearn", "scipy", "optuna_dashboard"}))
"""
    env = os.environ | {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    imported = []
    for _ in range(2):  # the first run makes the data, the second loads it
        done = subprocess.run(
            [sys.executable, "-c", script, str(tiny_config_file)], capture_output=True, text=True, env=env, cwd=tmp_path
        )
        assert done.returncode == 0, done.stderr
        imported.append(done.stdout.strip().splitlines()[-1])
    assert imported == ["['scipy', 'sklearn']", "[]"]
