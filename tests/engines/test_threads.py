"""A stack on the CPU trains each epoch on the threads that fit beside other processes' work, and on
one where one measured faster; its first epochs, before the cores were watched, on one."""

from __future__ import annotations

import pytest
import torch

from lrsearch.base.cores import CoreWatch
from lrsearch.base.device import pinned_threads
from lrsearch.engines.factory import engine_for
from lrsearch.engines.lone import LoneEngine
from lrsearch.engines.threads import RECHECK_EPOCHS, ThreadChooser, ThreadsByLoad
from lrsearch.problem.spec import RunSpec

CPU = torch.device("cpu")


class _Watched(CoreWatch):
    """Two cores whose other use the test sets: `others` cores' worth, over `elapsed` seconds."""

    def __init__(self) -> None:
        super().__init__(cores=[0, 1])
        self.others_use: float | None = 0.0
        self.elapsed = 1.0

    def seconds(self) -> float:
        return self.elapsed

    def others(self) -> float | None:
        return self.others_use


def _epochs(chooser: ThreadChooser, seconds: dict[int, float], count: int) -> list[int]:
    """The threads of `count` epochs of 10 trials, each taking `seconds[threads]`."""
    used = []
    for _ in range(count):
        threads = chooser.threads()
        chooser.timed(threads, seconds[threads], 10)
        used.append(threads)
    return used


def test_the_first_epochs_before_the_cores_were_watched_train_on_one_thread():
    watch = _Watched()
    watch.elapsed = 0.1
    assert _epochs(ThreadChooser(2, watch), {1: 0.1, 2: 0.05}, 3) == [1, 1, 1]


@pytest.mark.parametrize(("seconds", "kept"), [({1: 0.1, 2: 0.05}, 2), ({1: 0.05, 2: 0.07}, 1)], ids=["two", "one"])
def test_free_cores_train_on_the_faster_of_all_threads_and_one_checked_again_later(seconds, kept):
    chooser = ThreadChooser(2, _Watched())
    used = _epochs(chooser, seconds, 2 + RECHECK_EPOCHS + 2)
    assert used[:2] == [2, 1]  # the check: an epoch on each
    assert used[2 : 2 + RECHECK_EPOCHS] == [kept] * RECHECK_EPOCHS
    assert used[-2:] == [2, 1]  # checked again


def test_a_busy_core_takes_a_thread_at_once_and_its_end_gives_it_back():
    watch = _Watched()
    chooser = ThreadChooser(2, watch)
    assert _epochs(chooser, {1: 0.1, 2: 0.05}, 3) == [2, 1, 2]
    watch.others_use = 1.0  # another process holds a core
    assert _epochs(chooser, {1: 0.1, 2: 5.0}, RECHECK_EPOCHS + 5) == [1] * (RECHECK_EPOCHS + 5)  # never tried
    watch.others_use = 0.05
    assert _epochs(chooser, {1: 0.1, 2: 0.05}, 3) == [2, 1, 2]


def test_where_the_cores_cannot_be_read_the_threads_given_are_checked_against_one():
    watch = _Watched()
    watch.others_use = None
    assert _epochs(ThreadChooser(2, watch), {1: 0.1, 2: 0.05}, 3) == [2, 1, 2]


def test_new_stacks_check_the_threads_again_at_once_where_the_cores_were_watched():
    # Certification's stacks after a search's: twice the size, and faster on two threads where the
    # search's were not; a chooser of its own would train on one until it had watched the cores.
    chooser = ThreadChooser(2, _Watched())
    assert _epochs(chooser, {1: 0.05, 2: 0.07}, 4) == [2, 1, 1, 1]
    chooser.check_again()
    assert _epochs(chooser, {1: 0.1, 2: 0.05}, 4) == [2, 1, 2, 2]


def test_a_process_s_engines_share_one_chooser(tiny_data, tiny_data_spec):
    spec = RunSpec(data=tiny_data_spec, epochs=3, batch_size=32)
    with pinned_threads(CPU, 2):
        search = engine_for(tiny_data, CPU, 4)(spec)
        search.chooser.usable = 2  # as once it has watched the cores, free
        certification = engine_for(tiny_data, CPU, 8)(spec)
        assert certification.chooser is search.chooser
        assert certification.chooser.threads() == 2  # its first epoch checks two threads against one


def test_a_cpu_stack_on_threads_gets_its_threads_by_load_and_trains(tiny_data, tiny_data_spec):
    spec = RunSpec(data=tiny_data_spec, epochs=3, batch_size=32)
    with pinned_threads(CPU, 2):
        engine = engine_for(tiny_data, CPU, 4)(spec)
        assert isinstance(engine, ThreadsByLoad)
        for key in range(4):
            engine.add(key, spec.model_copy(update={"seed": key}))
        for _ in range(3):
            assert len(engine.train_epoch()) == 4
            assert torch.get_num_threads() in (1, 2)
        assert isinstance(engine_for(tiny_data, CPU, 1)(spec), LoneEngine)  # one at a time: one thread, as given
        torch.set_num_threads(1)
        assert not isinstance(engine_for(tiny_data, CPU, 4)(spec), ThreadsByLoad)  # nothing to choose
