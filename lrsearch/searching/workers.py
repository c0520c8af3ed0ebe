"""Workers: processes that run a study's trials until its trial budget is spent.

A study carries its budget (how many trials it should hold, `budget.py`), so every worker, on this
machine or another, stops at the same count. A worker takes the study's admission lock to decide
whether one more trial is needed and to ask for it, which keeps the count exact however many workers
race. A trial whose worker died (no heartbeat) is failed and queued again by Optuna; the retry takes its
place in the count, and workers wait for such retries before they call the study done.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import optuna
import torch
from optuna.storages import BaseStorage

from lrsearch.base.device import pinned_threads
from lrsearch.base.logs import one_line_thread_faults, quiet_optuna
from lrsearch.base.stopping import StopSignal, stop_on_interrupt
from lrsearch.engines.autostack import StackChoice, choose_stack
from lrsearch.engines.factory import engine_for, spare_trials
from lrsearch.engines.seeds import sampler_seed
from lrsearch.problem.config import SearchConfig
from lrsearch.problem.data import load_data
from lrsearch.problem.tasks import is_user_task
from lrsearch.searching.study import join_study
from lrsearch.store.storage import admission_lock, has_heartbeat
from lrsearch.trials.budget import add_to_budget
from lrsearch.trials.loop import Callback, run_trials
from lrsearch.trials.objective import Objective, Pictures

MAX_RESTARTS = 10  # times the worker processes are started again after one of them died
_log = logging.getLogger("lrsearch")


class Figures(Protocol):
    """The dashboard's part in a search (`views.search_figures.SearchFigures`), handed in by whoever
    starts it: the search draws nothing itself."""

    def trial_pictures(self) -> Pictures | None: ...

    def while_searching(self, study: optuna.Study) -> AbstractContextManager[Any]: ...

    def after_certify(self, study: optuna.Study) -> None: ...


@dataclass(frozen=True)
class WorkerReport:
    """What one worker did, for the command's summary."""

    worker: str
    device: str
    trials: int


@dataclass(frozen=True)
class WorkerSetup:
    """Everything one worker process needs; plain values, so it crosses into a process."""

    config: SearchConfig
    device: str
    sampler_seed: int | None  # workers with equal seeds would propose the same trials
    stop_file: Path | None = None  # created when the search must stop
    stack: int = 1  # trials trained at once (1: one at a time, by the lone engine)
    threads: int = 1  # torch threads on the CPU
    why: str | None = None  # what the command says about how its trials train (a model of the user's own)
    figures: Figures | None = None  # the dashboard's pictures, from whoever started the search


def plan_workers(
    config: SearchConfig,
    *,
    jobs: int,
    devices: Sequence[torch.device],
    joining: bool,
    stop_file: Path | None,
    figures: Figures | None = None,
) -> list[WorkerSetup]:
    """`jobs` workers taking the devices in turn, each sampling with `seeds.sampler_seed` (`joining`: a
    worker command joining a study another command started).

    The stack size is chosen once per device (`autostack.choose_stack`). A stacked worker's matrices
    are large enough to gain from threads: CPU workers share the cores.
    """
    choices: dict[torch.device, StackChoice] = {}
    setups = []
    for i in range(jobs):
        device = devices[i % len(devices)]
        stacked_threads = max(1, len(os.sched_getaffinity(0)) // jobs)
        if device not in choices:
            user_data = load_data(config.data, config.study.seed, device) if is_user_task(config.data.task) else None
            choices[device] = choose_stack(config, device, user_data, stacked_threads)
        stack, why = choices[device].size, choices[device].why
        threads = stacked_threads if stack > 1 else 1
        sampler = sampler_seed(config.study.seed, i, joining=joining)
        setups.append(WorkerSetup(config, str(device), sampler, stop_file, stack, threads, why, figures))
    return setups


def run_worker(
    setup: WorkerSetup, stop: StopSignal, callbacks: Sequence[Callback] = (), storage: BaseStorage | None = None
) -> WorkerReport:
    """Load the data onto the worker's device and run trials of the study until it is done.

    Args:
        storage: the study's storage when this process has it open (opening a database storage again
            costs a quarter of a second: its schema is checked against Optuna's migrations).

    Raises:
        StorageFault: the storage failed under the worker (disk full, server gone); its running trials
            were ended FAIL with the cause where the storage still allowed it.
    """
    config, device = setup.config, torch.device(setup.device)
    with pinned_threads(device, setup.threads):
        study = join_study(config, setup.sampler_seed, storage)
        return _run_trials(setup, study, stop, callbacks)


def _run_trials(
    setup: WorkerSetup, study: optuna.Study, stop: StopSignal, callbacks: Sequence[Callback]
) -> WorkerReport:
    config, device = setup.config, torch.device(setup.device)
    data = load_data(config.data, config.study.seed, device)
    objective = Objective(config, data, device, stop)
    objective.pictures = None if setup.figures is None else setup.figures.trial_pictures()
    heartbeat = has_heartbeat(config.study.storage)
    ran = run_trials(
        study=study,
        objective=objective,
        new_engine=engine_for(data, device, setup.stack, config.search.seeds_per_trial),
        stack=setup.stack,
        lock=admission_lock(config.study.storage, config.study.name),
        stop=stop,
        wait_for_retries=heartbeat,
        timeout=config.study.timeout,
        callbacks=callbacks,
        heartbeat=config.study.heartbeat if heartbeat else None,
        spare=spare_trials(setup.stack, data),
    )
    return WorkerReport(worker=f"{socket.gethostname()}:{os.getpid()}", device=setup.device, trials=ran)


def run_here(
    study: optuna.Study, objective: Objective, trials: int | None, *, stack: int = 1, callbacks: Sequence[Callback] = ()
) -> int:
    """Add `trials` to the study's budget and run them in this thread, with this process's own lock and
    no heartbeats: for tests, benchmarks and notebooks. Returns how many trials it ran."""
    add_to_budget(study, trials)
    return run_trials(
        study=study,
        objective=objective,
        new_engine=engine_for(objective.data, objective.device, stack, objective.config.search.seeds_per_trial),
        stack=stack,
        lock=threading.Lock(),
        stop=objective.stop,
        wait_for_retries=False,
        callbacks=callbacks,
    )


def _worker_process(setup: WorkerSetup) -> WorkerReport:
    from lrsearch.base.torch_private import skip_dynamo_on_optimizer_setup

    skip_dynamo_on_optimizer_setup()  # a worker process of a command, as the command's own
    quiet_optuna()
    one_line_thread_faults()
    # A terminal's Ctrl-C reaches every worker of the process group: each stops after its epoch.
    with stop_on_interrupt(StopSignal(setup.stop_file)) as stop:
        return run_worker(setup, stop)


def run_workers(setups: Sequence[WorkerSetup]) -> list[WorkerReport]:
    """Run each setup in its own process (joblib's loky backend) and wait for all of them.

    When a worker process dies (killed, out of memory), loky stops its siblings too; the workers are
    started again, and the trials that were running come back as retries once their heartbeats go
    stale. A trial that kills its worker each time stops being retried after `MAX_RETRIES`.
    """
    from joblib import Parallel, delayed
    from joblib.externals.loky.process_executor import TerminatedWorkerError

    restarts = 0
    while True:
        try:
            return Parallel(n_jobs=len(setups), backend="loky")(delayed(_worker_process)(s) for s in setups)
        except TerminatedWorkerError:
            restarts += 1
            stop = setups[0].stop_file
            if restarts > MAX_RESTARTS or (stop is not None and stop.exists()):
                raise
            _log.warning(
                "a worker process died; starting %d workers again (its trial is retried once its heartbeat goes stale)",
                len(setups),
            )
