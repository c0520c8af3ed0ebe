"""How fast a model of one's own trains at each stack size on a device: read from the cache
(`stack_cache`), else measured by timing epochs, and kept for the next command."""

from __future__ import annotations

import time

import torch

from lrsearch.base.cores import CoreWatch, threads_free
from lrsearch.engines.interface import Engine
from lrsearch.engines.stack_cache import Speeds, read_speeds, speeds_path, write_speeds
from lrsearch.problem.data import Data
from lrsearch.problem.spec import RunSpec

# A lone epoch slower than this is compute-bound: stacking would not pay, and measuring would take long.
MEASURE_AT_MOST_S = 2.0
# Other processes' use of the cores is read over at least this long before a stack is timed on threads.
SAMPLE_S = 0.3


class LoneTrialRaised(Exception):
    """A lone trial raised while it was measured: the task's code, which the trials will meet too."""


def measured_speeds(
    data: Data, spec: RunSpec, device: torch.device, threads: int, sizes: list[int]
) -> tuple[Speeds, bool]:
    """The speeds of `sizes` on this device: those the cache keeps for this problem read (or lying
    between two kept sizes, or ruled out by them), the others measured and kept with them.

    Returns:
        Trial-epochs a second by size, and whether the sizes above the largest were ruled out.
    """
    try:
        path = speeds_path(data, spec, device, threads)
    except Exception:  # noqa: BLE001 - the task's model factory: the measurement meets it again and says so
        path = None
    speeds, ended = (path and read_speeds(path)) or ({}, False)
    missing = [size for size in sizes if not _known(size, speeds, ended)]
    if not missing:
        return speeds, ended
    speeds, ended = _measure(data, spec, device, missing, speeds, threads)
    if path is not None:
        write_speeds(path, speeds, ended)
    return speeds, ended


def _known(size: int, speeds: Speeds, ended: bool) -> bool:
    """Whether the kept `speeds` tell `size`'s: measured, between two measured sizes, or ruled out."""
    if size in speeds:
        return True
    return bool(speeds) and (min(speeds) < size < max(speeds) or (ended and size > max(speeds)))


def _measure(
    data: Data, spec: RunSpec, device: torch.device, sizes: list[int], known: Speeds, threads: int
) -> tuple[Speeds, bool]:
    """Each size's speed, on the threads its worker would have and on one (the faster counts: the
    worker picks the faster too, `threads.ThreadChooser`): its second epoch timed (the first warms up),
    growing sizes only while each trains faster per trial than every smaller one; a compute-bound lone
    epoch ends the measurement at once. On the CPU the threads are fewer where other processes hold cores: a stack
    timed on threads that stall would not be stacked, though its worker would train it on fewer.

    Returns:
        The speeds (those in `known` too), and whether larger sizes were ruled out.
    """
    speeds, ended = dict(known), False
    watch = CoreWatch() if device.type == "cpu" else None
    usable: int | None = None  # the threads that fit beside other processes, read before a stack is timed
    outside_threads = torch.get_num_threads()
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for size in sizes:
                if size > 1 and usable is None:
                    usable = threads if watch is None else _usable_threads(watch, threads)
                counts = [1] if size == 1 else sorted({usable or 1, 1}, reverse=True)
                try:
                    seconds = min(_epoch_seconds(data, spec, device, size, counts))
                except Exception as error:  # noqa: BLE001 - out of memory at this size, say: the sizes before it stand
                    if size == 1:  # no size before it: the task's own code failed
                        lines = str(error).strip().splitlines()
                        raise LoneTrialRaised(f"{type(error).__name__}: {lines[0] if lines else ''}") from error
                    ended = True
                    break
                best_before = max((speed for smaller, speed in speeds.items() if smaller < size), default=0.0)
                speeds[size] = size / seconds
                if size > 1 and size / seconds <= best_before:
                    ended = True
                    break  # no faster than a smaller stack: larger ones will not be either
                if size == 1 and seconds > MEASURE_AT_MOST_S:
                    ended = True
                    break
    finally:
        torch.set_num_threads(outside_threads)
        if device.type == "cuda":
            torch.cuda.empty_cache()  # the workers train on this device next
    return speeds, ended


def _usable_threads(watch: CoreWatch, threads: int) -> int:
    time.sleep(max(0.0, SAMPLE_S - watch.seconds()))  # idle meanwhile: only the others count
    return threads_free(threads, watch.others(), len(watch.cores))


def _epoch_seconds(data: Data, spec: RunSpec, device: torch.device, size: int, counts: list[int]) -> list[float]:
    """Seconds of one epoch of `size` trials on each of `counts` threads, after an epoch to warm up."""
    from lrsearch.engines.lone import LoneEngine
    from lrsearch.engines.stacked_func import FuncStackedTrainer

    engine: Engine = LoneEngine(data, device) if size == 1 else FuncStackedTrainer(data, spec, device)
    for key in range(size):
        engine.add(key, spec.model_copy(update={"seed": (spec.seed + key) % 2**31}))
    torch.set_num_threads(counts[0])
    engine.train_epoch()  # the first warms up
    seconds = []
    for count in counts:
        torch.set_num_threads(count)
        started = time.perf_counter()
        engine.train_epoch()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - started)
    return seconds
