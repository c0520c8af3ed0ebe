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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from lrsearch.budget import next_move
from lrsearch.config import SearchConfig
from lrsearch.data import load_data
from lrsearch.device import pin_threads
from lrsearch.errors import StorageFault, fault_line, is_fault
from lrsearch.internals import fail_stale_trials, storage_of, trial_id
from lrsearch.logs import one_line_thread_faults, quiet_optuna
from lrsearch.objective import Objective, Pictures
from lrsearch.stopping import StopSignal, stop_on_interrupt
from lrsearch.storage import AdmissionLock, admission_lock, artifact_folder, has_heartbeat, scrubbed
from lrsearch.study import FAIL_REASON, WORKER_ATTR, join_study
from lrsearch.tasks import is_user_task

IDLE_POLL_S = 1.0  # how often a worker with nothing to start looks for retries of dead workers' trials
MAX_RESTARTS = 10  # times the worker processes are started again after one of them died
# benchmarks/throughput.py on a 2-core CPU: stacks of 10, 25 and 50 train 5.8x, 8.8x and 10.7x faster
# than an Optuna-example loop, but searches of a fixed time found their best schedules with K=10 (mean
# best val loss over 3 seeds: K=10 0.2487, K=16 0.2572, K=25 0.2537, one at a time 0.2535): the
# sampler learns only when a generation of trials ends.
AUTO_STACK_CPU = 10
# On an H100 throughput keeps growing with K (K=50 49x, 100 89x, 200 153x, 400 212x an Optuna-example
# loop); 128 is fast there while the sampler still sees generations on budgets of 500 trials or more.
AUTO_STACK_GPU = 128
# A trial whose training raises ends FAIL with the reason, and the worker goes on: whatever a user's model
# or data raises. A storage that fails under the worker is not the trial's fault: it ends the worker.
CAUGHT = (Exception,)

Callback = Callable[[optuna.Study, FrozenTrial], None]
_log = logging.getLogger("lrsearch")


@dataclass(frozen=True)
class WorkerReport:
    """What one worker did, for the command's summary."""

    worker: str
    device: str
    trials: int


def work(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    lock: AdmissionLock,
    stop: StopSignal,
    wait_for_retries: bool,
    timeout: float | None = None,
    callbacks: Sequence[Callback] = (),
) -> int:
    """Run trials of `study` until its budget is spent, `timeout` seconds pass or `stop` is set.

    Args:
        wait_for_retries: with a heartbeat storage, stay until every trial of the budget has ended,
            so a trial whose worker dies is retried here.

    Returns:
        How many trials this worker ran.
    """
    worker = f"{socket.gethostname()}:{os.getpid()}"
    deadline = None if timeout is None else time.monotonic() + timeout
    ran = 0
    while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
        lock.acquire()
        admitted = _Admitted(lock, _recording_failures(objective), worker)
        try:
            if wait_for_retries:
                fail_stale_trials(study)  # before Optuna's own, which would not say why
            move = next_move(study, wait_for_running=wait_for_retries)
            if move == "run":
                # Optuna asks for the trial inside optimize (failing stale trials first, which queues
                # their retries); the objective frees the lock once it has its trial.
                # Interrupted is caught too: the trial ends FAIL with its reason, and the stop signal ends the loop.
                study.optimize(admitted, n_trials=1, catch=(_TrialFailed,), callbacks=list(callbacks))
                ran += 1
        except Exception as error:
            if not is_fault(error):
                raise
            raise fail_after_fault(study, [] if admitted.trial is None else [admitted.trial], error) from error
        finally:
            admitted.release_once()
        if move == "done":
            break
        if move == "wait":
            time.sleep(IDLE_POLL_S)
    return ran


class _Admitted:
    """The objective as a worker runs it: frees the admission lock as soon as Optuna has asked the trial."""

    def __init__(self, lock: AdmissionLock, objective: Callable[[optuna.Trial], float], worker: str) -> None:
        self._lock, self._objective, self._worker = lock, objective, worker
        self._held = True
        self.trial: optuna.Trial | None = None  # the trial Optuna asked for

    def release_once(self) -> None:
        if self._held:
            self._held = False
            self._lock.release()

    def __call__(self, trial: optuna.Trial) -> float:
        self.release_once()
        self.trial = trial
        trial.set_user_attr(WORKER_ATTR, self._worker)
        return self._objective(trial)


@dataclass(frozen=True)
class WorkerSetup:
    """Everything one worker process needs; plain values, so it crosses into a process."""

    config: SearchConfig
    device: str
    sampler_seed: int | None  # workers with equal seeds would propose the same trials
    stop_file: Path | None = None  # created when the search must stop
    stack: int = 1  # trials trained at once (1: the plain loop)
    threads: int = 1  # torch threads on the CPU


def plan_workers(
    config: SearchConfig, jobs: int, devices: Sequence[torch.device], seed: int | None, stop_file: Path | None
) -> list[WorkerSetup]:
    """`jobs` workers taking the devices in turn; worker i samples with seed + i (None: fresh entropy).

    A stacked worker's matrices are large enough to gain from threads: CPU workers share the cores.
    A user's task brings its own model, which the stacked engine cannot train: one trial at a time.
    """
    setups = []
    for i in range(jobs):
        device = devices[i % len(devices)]
        stack = 1 if is_user_task(config.data.task) else stack_size(config.study.stack, device, config.study.trials)
        threads = max(1, len(os.sched_getaffinity(0)) // jobs) if stack > 1 else 1
        setups.append(WorkerSetup(config, str(device), None if seed is None else seed + i, stop_file, stack, threads))
    return setups


def stack_size(setting: int | str, device: torch.device, trials: int | None) -> int:
    """The stack size `auto` means: fast on the device, and small enough that the sampler sees at least
    four generations of finished trials before the budget is spent."""
    if setting != "auto":
        return int(setting)
    fastest = AUTO_STACK_GPU if device.type == "cuda" else AUTO_STACK_CPU
    return fastest if trials is None else max(1, min(fastest, -(-trials // 4)))


def run_worker(setup: WorkerSetup, stop: StopSignal, callbacks: Sequence[Callback] = ()) -> WorkerReport:
    """Load the data onto the worker's device and run trials of the study until it is done.

    Raises:
        StorageFault: the storage failed under the worker (disk full, server gone); its running trials
            were ended FAIL with the cause where the storage still allowed it.
    """
    config, device = setup.config, torch.device(setup.device)
    pin_threads(device, setup.threads)
    study = join_study(config, setup.sampler_seed)
    return _run_trials(setup, study, stop, callbacks)


def fail_after_fault(study: optuna.Study, trials: Sequence[optuna.Trial], error: Exception) -> StorageFault:
    """The storage failed under the worker: end its running `trials` as FAIL with the cause, as far as the
    failing storage lets us, and say what became of them."""
    cause = scrubbed(fault_line(error), "")
    ended = left = 0
    for trial in trials:
        try:
            if storage_of(study).get_trial(trial_id(trial)).state.is_finished():
                continue  # ended already (Optuna's own write of its end went through)
            trial.set_user_attr(FAIL_REASON, f"the storage failed: {cause}")
            study.tell(trial, state=TrialState.FAIL)
            ended += 1
        except Exception:  # noqa: BLE001 - the write that failed may fail again
            left += 1
    fate = f"; {ended} running trial(s) ended FAIL with this reason" if ended else ""
    if left:
        fate += f"; {left} running trial(s) could not be marked failed"
    return StorageFault(f"the study's storage failed: {cause}{fate}")


class _TrialFailed(Exception):
    """A trial's own training raised (whatever a user's model or data raises): Optuna ends the trial FAIL
    and the worker goes on. The storage failing is not the trial's fault, and is not wrapped in this."""


def _recording_failures(objective: Callable[[optuna.Trial], float]) -> Callable[[optuna.Trial], float]:
    """The objective, storing why a trial failed in its `fail_reason` attribute."""

    def run(trial: optuna.Trial) -> float:
        try:
            return objective(trial)
        except optuna.TrialPruned:
            raise
        except BaseException as error:  # Ctrl-C too: the interrupted trial says so
            if isinstance(error, Exception) and is_fault(error):
                raise
            reason = f"{type(error).__name__}: {error}".rstrip(": ")
            trial.set_user_attr(FAIL_REASON, reason)
            if isinstance(error, Exception):
                raise _TrialFailed(reason) from error
            raise

    return run


def _run_trials(
    setup: WorkerSetup, study: optuna.Study, stop: StopSignal, callbacks: Sequence[Callback]
) -> WorkerReport:
    from lrsearch.stacked_search import work_stacked  # it builds on this module's budget and constants

    config, device = setup.config, torch.device(setup.device)
    data = load_data(config.data, config.study.seed, device)
    objective = Objective(config, data, device, stop)
    lock = admission_lock(config.study.storage, config.study.name)
    heartbeat = has_heartbeat(config.study.storage)
    objective.pictures = _trial_pictures(config)
    if setup.stack > 1:
        interval = config.study.heartbeat if heartbeat else None
        ran = work_stacked(
            study, objective, setup.stack, lock, stop, heartbeat, config.study.timeout, callbacks, interval
        )
    else:
        ran = work(study, objective, lock, stop, heartbeat, config.study.timeout, callbacks)
    return WorkerReport(worker=f"{socket.gethostname()}:{os.getpid()}", device=setup.device, trials=ran)


def _trial_pictures(config: SearchConfig) -> Pictures | None:
    """What attaches each trial's LR and loss picture for the dashboard (None when figures are off)."""
    folder = artifact_folder(config.study.storage, config.study.artifacts)
    if not config.study.figures or folder is None:
        return None
    from lrsearch.dashboard import TrialPictures  # plotting libraries are imported only to draw

    return TrialPictures(folder)


def _worker_process(setup: WorkerSetup) -> WorkerReport:
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
