"""`--stack auto`'s measurement of a model of one's own is kept per machine, model and device: the next
command on the model reads it and measures nothing; another model, batch size, device or thread count
is measured again, as is a file that can't be read; a cache that can't be written is no error."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from lrsearch.engines import stack_speeds
from lrsearch.engines.autostack import choose_stack, problem_spec
from lrsearch.engines.stack_cache import read_speeds, speeds_path
from lrsearch.problem.config import SearchConfig
from lrsearch.problem.data import load_data
from tests.conftest import TINY

CPU = torch.device("cpu")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "lrsearch" / "stack"


@pytest.fixture
def timed(monkeypatch) -> list[int]:
    """The stack sizes whose epochs the real measurement timed, in order."""
    sizes: list[int] = []
    real = stack_speeds._epoch_seconds

    def counted(data, spec, device, size, counts):
        sizes.append(size)
        return real(data, spec, device, size, counts)

    monkeypatch.setattr(stack_speeds, "_epoch_seconds", counted)
    return sizes


def _config(trials: int = 40, batch_size: int = 32) -> SearchConfig:
    train = TINY["train"] | {"batch_size": batch_size}
    return SearchConfig.model_validate(TINY | {"train": train, "study": {"trials": trials}})


def _own(tiny_data, width: int = 16):
    def model() -> nn.Module:
        return nn.Sequential(nn.Linear(8, width), nn.GELU(), nn.Linear(width, 3))

    return dataclasses.replace(tiny_data, model_factory=model, loss_fn=F.cross_entropy)


def test_the_second_choice_for_a_model_measures_nothing(tiny_data, cache, timed):
    data = _own(tiny_data)
    first = choose_stack(_config(), CPU, data)
    assert timed == [1, 10]  # 40 trials: a stack of at most 10, so sizes 1 and 10
    [kept] = cache.glob("*.json")
    timed.clear()
    assert choose_stack(_config(), CPU, data) == first
    assert timed == []
    speeds, ended = read_speeds(kept)
    assert choose_stack(_config(trials=200), CPU, data).size >= 1  # a larger budget: only the size it adds
    assert timed == ([] if ended else [50])
    timed.clear()
    choose_stack(_config(trials=200), CPU, data)
    assert timed == [] and list(cache.glob("*.json")) == [kept]


def test_another_model_batch_size_or_thread_count_is_measured_again(tiny_data, cache, timed):
    choose_stack(_config(), CPU, _own(tiny_data))
    for config, data, threads in [
        (_config(), _own(tiny_data, width=24), 1),
        (_config(batch_size=16), _own(tiny_data), 1),
        (_config(), _own(tiny_data), 2),
    ]:
        timed.clear()
        choose_stack(config, CPU, data, threads)
        assert timed[0] == 1


def test_another_device_keeps_its_own_speeds(tiny_data, cache):
    data, spec = _own(tiny_data), problem_spec(_config())
    on_cpu = speeds_path(data, spec, CPU, 1)
    assert speeds_path(data, spec, CPU, 1) == on_cpu
    assert speeds_path(data, spec, torch.device("meta"), 1) != on_cpu
    if torch.cuda.is_available():
        assert speeds_path(data, spec, torch.device("cuda"), 1) != on_cpu


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU here")
def test_a_gpu_measures_its_own_and_reuses_them(tiny_data, tiny_data_spec, cache, timed):
    gpu = torch.device("cuda")
    choose_stack(_config(), CPU, _own(tiny_data))
    timed.clear()
    on_gpu = _own(load_data(tiny_data_spec, seed=0, device=gpu))
    first = choose_stack(_config(), gpu, on_gpu)
    assert timed and timed[0] == 1
    timed.clear()
    assert choose_stack(_config(), gpu, on_gpu) == first and timed == []


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'{"format": 1, "speeds": {"1": -3.0, "10": 5.0}, "ended": false}', b'{"format": 0}', b"\xff"],
    ids=["cut-off", "negative", "older-format", "not-text"],
)
def test_a_kept_file_that_cannot_be_read_is_measured_again_and_replaced(tiny_data, cache, timed, content):
    data = _own(tiny_data)
    choose_stack(_config(), CPU, data)
    [kept] = cache.glob("*.json")
    kept.write_bytes(content)
    timed.clear()
    again = choose_stack(_config(), CPU, data)
    assert timed[0] == 1
    assert read_speeds(kept) is not None and json.loads(kept.read_text())["format"] == 1
    timed.clear()
    assert choose_stack(_config(), CPU, data) == again and timed == []


def test_a_cache_that_cannot_be_written_is_no_error(tiny_data, tmp_path, monkeypatch, timed):
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-file"))
    data = _own(tiny_data)
    assert choose_stack(_config(), CPU, data).size >= 1
    assert choose_stack(_config(), CPU, data).size >= 1
    assert timed.count(1) == 2  # measured each time: nothing was kept
