"""Other processes' use of this process's cores, and the threads that fit beside it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from lrsearch.base.cores import CoreWatch, threads_free, usable_cores


@pytest.mark.parametrize(
    ("ceiling", "others", "cores", "threads"),
    [
        (2, 0.0, 2, 2),
        (2, 0.15, 2, 2),  # a little background work: under BUSY_SHARE
        (2, 0.5, 2, 1),  # a busy core, squeezed by the stack's own spinning threads
        (2, 1.0, 2, 1),
        (2, 3.0, 2, 1),  # never none
        (8, 8.0, 16, 8),  # the other half of the cores: the sibling workers' share
        (8, 9.1, 16, 7),
        (2, None, 2, 2),  # can't tell: the threads given
    ],
)
def test_each_core_others_use_takes_a_thread(ceiling, others, cores, threads):
    assert threads_free(ceiling, others, cores) == threads


@pytest.mark.skipif(len(usable_cores()) < 2 or not Path("/proc/stat").exists(), reason="needs two cores and /proc/stat")
def test_a_busy_process_is_seen_and_this_ones_own_work_is_not():
    watch = CoreWatch()
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        watch.others()  # a window from here: the busy loop runs all of it
        time.sleep(0.6)
        others = watch.others()
    finally:
        busy.kill()
        busy.wait()
    assert others is not None and others > 0.6
    assert threads_free(2, others, 2) == 1
