"""The torch threads of a stack's epochs on the CPU: its share of the cores while they are free, fewer
while other processes use them, and one where one measured faster.

Beside one busy core a stack on two threads trained 20 to 200 times slower than on one (`base.cores`
says why); on a quiet 2-core machine the built-in MLP's stack of 10 is about as fast on one thread as
on two, a larger model's faster on two. So each epoch's threads are what fits beside the other
processes' use of the cores in the last half second or more, and, while more than one fits, the faster
of that many and one by a check of an epoch each, made again every `RECHECK_EPOCHS` epochs. The first
epochs, before the cores were watched for long enough, train on one thread: never a stall.
"""

from __future__ import annotations

import logging
import time

import torch

from lrsearch.base.cores import CoreWatch, threads_free
from lrsearch.engines.interface import Engine, EpochOutcome
from lrsearch.problem.spec import RunSpec

WINDOW_S = 0.5  # the cores' use is read over at least this long (/proc/stat counts hundredths of a second)
RECHECK_EPOCHS = 20  # epochs between two checks of `usable` threads against one
_log = logging.getLogger("lrsearch")


class ThreadChooser:
    """Which thread count each epoch of a worker's stacks trains on; kept across its engines."""

    def __init__(self, ceiling: int, watch: CoreWatch | None = None) -> None:
        self.ceiling = ceiling
        self.watch = watch or CoreWatch()
        self.usable = 1  # threads that fit beside the other processes (one until they were watched)
        self.chosen = 1  # the faster of `usable` and one, by the last check
        self._to_time: list[int] = []  # thread counts of the check under way, to be timed
        self._timed: dict[int, float] = {}  # seconds per trial-epoch of the check under way
        self._since_check = 0

    def threads(self) -> int:
        """The threads of the next epoch."""
        if self.watch.seconds() >= WINDOW_S:
            others = self.watch.others()
            usable = threads_free(self.ceiling, others, len(self.watch.cores))
            if usable != self.usable:
                _log.debug("other processes use %s cores: up to %d of %d threads", others, usable, self.ceiling)
                self.usable, self.chosen = usable, min(self.chosen, usable)
                self._start_check()
        if not self._to_time and self.usable > 1 and self._since_check >= RECHECK_EPOCHS:
            self._start_check()
        return self._to_time[0] if self._to_time else self.chosen

    def timed(self, threads: int, seconds: float, trials: int) -> None:
        """What the epoch `threads()` gave took, for `trials` trials."""
        if self._to_time and self._to_time[0] == threads:
            self._timed[threads] = seconds / max(1, trials)
            self._to_time.pop(0)
            if not self._to_time:
                self.chosen, self._since_check = min(self._timed, key=self._timed.__getitem__), 0
                _log.debug("seconds a trial-epoch by threads: %s; %d chosen", self._timed, self.chosen)
            return
        self._since_check += 1

    def check_again(self) -> None:
        """Time the threads that fit against one again, from the next epoch (new stacks, of another size)."""
        if not self._to_time:
            self._start_check()

    def _start_check(self) -> None:
        self._to_time, self._timed = ([self.usable, 1] if self.usable > 1 else []), {}
        self._since_check = 0


class ThreadsByLoad:
    """An engine whose epochs each train on the threads `chooser` gives."""

    def __init__(self, inner: Engine, chooser: ThreadChooser) -> None:
        self.inner, self.chooser = inner, chooser

    def __len__(self) -> int:
        return len(self.inner)

    def add(self, key: object, spec: RunSpec) -> None:
        self.inner.add(key, spec)

    def remove(self, key: object) -> None:
        self.inner.remove(key)

    def test(self, key: object) -> tuple[float, float | None]:
        return self.inner.test(key)

    def train_epoch(self) -> list[EpochOutcome]:
        threads, trials = self.chooser.threads(), len(self.inner)
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        started = time.perf_counter()
        outcomes = self.inner.train_epoch()
        self.chooser.timed(threads, time.perf_counter() - started, trials)
        return outcomes
