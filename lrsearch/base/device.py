"""Device names (auto, cpu, cuda, cuda:N, or a list of them) -> torch devices that exist here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from lrsearch.base.errors import ConfigError

# One device as lrsearch names it; `--devices` takes `auto` or a comma-separated list of them.
DEVICE_NAME = r"cpu|cuda(:\d+)?"
DEVICES = re.compile(rf"auto|({DEVICE_NAME})(,({DEVICE_NAME}))*")


def resolve_device(name: str, flag: str = "--device") -> torch.device:
    """`auto` picks the first GPU when CUDA is present, else the CPU; asking for a missing GPU is an error."""
    if not re.fullmatch(rf"auto|{DEVICE_NAME}", name):
        raise ConfigError(f"{flag}: {name!r} is not a device here; use auto, cpu, cuda or cuda:N")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{flag}: {name} is not available here (no CUDA device); use auto or cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"{flag}: {name} does not exist; this machine has cuda:0 to cuda:{count - 1}")
    return device


def resolve_devices(names: str) -> list[torch.device]:
    """`auto` is every visible GPU, else the CPU; otherwise the comma-separated devices, each checked."""
    if names == "auto":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [torch.device("cuda", index) for index in range(count)] or [torch.device("cpu")]
    return [resolve_device(name, "--devices") for name in names.split(",")]


@contextmanager
def pinned_threads(device: torch.device, threads: int = 1) -> Iterator[None]:
    """Within: a CPU run on one thread (default), and torch's threads as they were after it (a notebook's
    own work after `lrsearch.search` keeps its cores). One MLP's matrices are too small to gain from more,
    and with two threads a 20-epoch run takes about 3x longer here (synchronisation per op outweighs the
    work). It also lets N CPU workers share N cores. A stack of trials has matrices K times larger,
    and its worker gets its share of the cores."""
    outside = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(outside)


@contextmanager
def one_thread() -> Iterator[None]:
    """Within: torch on one CPU thread, for a probe of a few rows. On more, its threads would only wait
    for each other, and beside another process's busy core a 10 ms probe took 0.7 s."""
    outside = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(outside)
