"""`--stack auto`'s measurement of a model, kept per machine, model and device for the next command.

Measuring a model of one's own takes a few seconds (two epochs at each stack size), so a search of it
started a few seconds later than one at `--stack 1`; the speeds depend only on what the key holds, so
the first command stores them in the user's cache folder beside the data cache
(`$XDG_CACHE_HOME/lrsearch/stack`, else `~/.cache/lrsearch/stack`) and later ones read them there. The key
is what decides an epoch's speed: the task and its settings, the batch size, the model's architecture
(its modules' types and settings, the source of its own classes, its parameters' and buffers' shapes),
the data's shape, the device, torch's version, the cores and threads the stack gets. A file that can't be
read is measured again; one that can't be written is no error. Stored as JSON: numbers only, no pickle.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import platform
import re
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from lrsearch.base.cores import usable_cores
from lrsearch.base.user_cache import cache_folder, write_whole
from lrsearch.problem.data import Data, Source, Split
from lrsearch.problem.spec import RunSpec

FORMAT = 1  # bump when what is stored changes meaning: older files are then never read
_log = logging.getLogger(__name__)

Speeds = dict[int, float]  # stack size -> trial-epochs a second (1: one trial alone)


def speeds_path(data: Data, spec: RunSpec, device: torch.device, threads: int) -> Path:
    """The file that keeps the speeds of `spec`'s problem on `device`, with `threads` for a stack."""
    with torch.random.fork_rng(devices=[]):  # building the model draws; the search's draws stay as they were
        model = data.new_model(spec)
    key = {
        "format": FORMAT,
        "data": spec.data.model_dump(mode="json"),
        "model": spec.model.model_dump(mode="json"),
        "batch_size": spec.batch_size,
        "architecture": repr(model),
        "classes": sorted({_class_source(type(module)) for module in model.modules()}),
        "tensors": [(name, list(t.shape), str(t.dtype)) for name, t in model.state_dict(keep_vars=True).items()],
        "loss": _name(data.loss_fn),
        "splits": [_shape(data.train), _shape(data.val)],
        "device": _device_name(device),
        "torch": torch.__version__,
        "cores": len(usable_cores()),
        "threads": threads,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:24]
    task = re.sub(r"[^A-Za-z0-9_.-]", "_", spec.data.task)[:60]
    return cache_folder("stack") / f"{task}-{digest}.json"


def read_speeds(path: Path) -> tuple[Speeds, bool] | None:
    """The speeds stored at `path`, and whether the sizes above the largest were ruled out; None when
    there are none, or none that can be read."""
    try:
        stored = json.loads(path.read_text())
        speeds = {int(size): float(speed) for size, speed in stored["speeds"].items()}
        ended = stored["ended"]
        if stored["format"] != FORMAT or not isinstance(ended, bool) or 1 not in speeds:
            raise ValueError("not a measurement of this format")
        if any(size < 1 or not speed > 0 for size, speed in speeds.items()):  # also refuses nan
            raise ValueError(f"speeds {speeds}")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        _log.debug("stack cache %s unreadable (%s): measured again", path, error)
        return None
    return speeds, ended


def write_speeds(path: Path, speeds: Speeds, ended: bool) -> None:
    """Keep the speeds at `path` for the next command (nothing when it can't be written)."""
    stored = {"format": FORMAT, "speeds": {str(size): speed for size, speed in sorted(speeds.items())}, "ended": ended}
    write_whole(path, json.dumps(stored).encode())


def _class_source(kind: type) -> str:
    """A module class by name; one of the user's own (not torch's) by its source too, so an edited
    `forward` is measured again."""
    name = f"{kind.__module__}.{kind.__qualname__}"
    if kind.__module__.startswith("torch."):
        return name
    try:
        return name + ":" + hashlib.sha256(inspect.getsource(kind).encode()).hexdigest()[:16]
    except (OSError, TypeError):  # defined where its source isn't kept (an interactive session)
        return name


def _name(function: object) -> str:
    inner = getattr(function, "function", function)  # the task's own loss inside lrsearch's wrapper
    return f"{getattr(inner, '__module__', '')}.{getattr(inner, '__qualname__', type(inner).__name__)}"


def _shape(source: Source) -> list[object]:
    if isinstance(source, Split):
        return [len(source), list(source.x.shape[1:]), str(source.x.dtype)]
    assert isinstance(source, DataLoader)
    dataset = source.dataset
    return [len(dataset) if hasattr(dataset, "__len__") else None, source.batch_size, type(dataset).__name__]


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda {torch.cuda.get_device_name(device)} {torch.version.cuda}"
    return f"{device.type} {platform.machine()} {_cpu_model()}"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()
