"""How many of this process's cores other processes are using, and so how many torch threads pay.

torch's CPU threads wait for each other at every operation (OpenMP, spinning first). When another
process holds one of their cores, the thread there runs only in the slices the kernel leaves it, and
every small operation of a stack waits for that slice: on a shared 2-core machine with one core busy, a
stack's epoch took 17 to 200 times as long on two threads as on one (the built-in MLP and an MLP of
one's own at 10 and 50 trials). A thread too few costs at most its share of the work; a thread too many
can cost nearly everything.

The cores' use is read from `/proc/stat` (Linux) over a window, less this process's own CPU time;
elsewhere nothing can be told and the threads stay as given.
"""

from __future__ import annotations

import math
import os
import time

# Other processes' use of the cores above this share of one core takes a thread away: a core busy part
# of the time stalls the threads part of the time, and a thread too few costs little.
BUSY_SHARE = 0.2
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def usable_cores() -> list[int]:
    """The cores this process may run on."""
    return sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))


class CoreWatch:
    """Other processes' use of this process's cores since the last look."""

    def __init__(self, cores: list[int] | None = None) -> None:
        self.cores = usable_cores() if cores is None else cores
        self._since = self._now()

    def seconds(self) -> float:
        """Wall seconds since the last look."""
        return time.monotonic() - self._since[0]

    def others(self) -> float | None:
        """Cores' worth of CPU time others used since the last look (1.0: one core all the time), and
        a new window starts; None where `/proc/stat` can't be read."""
        (wall_then, busy_then, own_then), now = self._since, self._now()
        self._since = now
        wall, busy, own = now[0] - wall_then, now[1], now[2] - own_then
        if busy is None or busy_then is None or wall <= 0:
            return None
        return max(0.0, (busy - busy_then - own) / wall)

    def _now(self) -> tuple[float, float | None, float]:
        return time.monotonic(), _busy_seconds(self.cores), time.process_time()


def threads_free(ceiling: int, others: float | None, cores: int) -> int:
    """The torch threads that fit beside `others` cores' worth of other work: `ceiling` (a worker's
    share) where it fits, else one thread fewer per core the others use (each started beyond
    `BUSY_SHARE`), at least one."""
    if others is None:
        return ceiling
    free = cores - math.ceil(max(0.0, others - BUSY_SHARE))
    return max(1, min(ceiling, free))


def _busy_seconds(cores: list[int]) -> float | None:
    """CPU seconds the cores spent on anything but idling, since boot (steal included: a virtual
    machine's core that another one holds is just as busy)."""
    try:
        with open("/proc/stat") as stat:
            lines = stat.read().splitlines()
    except OSError:
        return None
    wanted = {f"cpu{core}" for core in cores}
    ticks = 0
    for line in lines:
        name, *fields = line.split()
        if name in wanted:
            user, nice, system, idle, iowait, irq, softirq, steal = (int(value) for value in fields[:8])
            ticks += user + nice + system + irq + softirq + steal
    return ticks / _TICKS
