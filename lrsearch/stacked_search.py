"""A worker that trains up to K trials at once (the stacked engine), through Optuna's ask-and-tell.

Every epoch, each trial in the stack reports its val loss and may be pruned, exactly as a trial run one
at a time does (the same `Objective` steps). A slot freed by a finished, pruned or diverged trial is
refilled at once with a newly asked trial, so the stack stays full while the budget lasts. The sampler
learns from every finished trial; TPE's `constant_liar` makes it treat the trials still running as bad
guesses, so a refill does not propose the same region as the trials beside it.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lrsearch.budget import admit
from lrsearch.errors import Interrupted, fault_line, is_fault
from lrsearch.internals import fail_stale_trials, storage_of, trial_id
from lrsearch.objective import Objective
from lrsearch.spec import RunSpec
from lrsearch.stacked import EpochOutcome, StackedTrainer
from lrsearch.stopping import StopSignal
from lrsearch.storage import AdmissionLock
from lrsearch.study import FAIL_REASON, WORKER_ATTR
from lrsearch.train import EpochRecord
from lrsearch.workers import CAUGHT, IDLE_POLL_S, Callback, fail_after_fault

_log = logging.getLogger("lrsearch")


@dataclass
class _Running:
    trial: optuna.Trial
    spec: RunSpec
    records: list[EpochRecord] = field(default_factory=list)


def work_stacked(
    study: optuna.Study,
    objective: Objective,
    stack: int,
    lock: AdmissionLock,
    stop: StopSignal,
    wait_for_retries: bool,
    timeout: float | None = None,
    callbacks: Sequence[Callback] = (),
    heartbeat: float | None = None,
) -> int:
    """Run trials of `study`, up to `stack` at a time, until its budget is spent, `timeout` seconds
    pass (no new trial starts after it) or `stop` is set (running trials end FAIL at their epoch).

    Args:
        heartbeat: seconds between heartbeats of the running trials (database storages); None: none.

    Returns:
        How many trials this worker ran.
    """
    worker = f"{socket.gethostname()}:{os.getpid()}"
    deadline = None if timeout is None else time.monotonic() + timeout
    trainer: StackedTrainer | None = None
    running: dict[int, _Running] = {}
    ran = 0
    asked: list[optuna.Trial] = []
    try:
        with _Heartbeats(study, heartbeat) as beats:
            while True:
                move, asked = "done", []
                if len(running) < stack and not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                    with lock:  # one read of the study for the whole refill
                        if wait_for_retries:
                            fail_stale_trials(study)
                        move, room = admit(
                            study, stack - len(running), wait_for_running=wait_for_retries and not running
                        )
                        with warnings.catch_warnings():  # it sends its own heartbeats (_Heartbeats)
                            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
                            for _ in range(room):
                                asked.append(study.ask())
                                # Its first heartbeat at once: a trial without any is never found stale, so if
                                # this worker died now, the others would wait for it for ever.
                                beats.add(asked[-1])
                for trial in asked:
                    trial.set_user_attr(WORKER_ATTR, worker)
                    try:
                        spec = objective.begin(trial)
                    except CAUGHT as error:  # Interrupted among them
                        if is_fault(error):
                            raise
                        beats.remove(trial)
                        _tell(study, trial, TrialState.FAIL, callbacks, f"{type(error).__name__}: {error}")
                        continue
                    if trainer is None:
                        trainer = StackedTrainer(objective.data, spec, objective.device)
                    trainer.add(trial.number, spec)
                    running[trial.number] = _Running(trial, spec)
                    ran += 1
                if not running:
                    if move == "wait" and not stop.is_set():
                        time.sleep(IDLE_POLL_S)
                        continue
                    return ran
                try:
                    outcomes = trainer.train_epoch()
                except BaseException as error:  # a model raising, out of memory, a second Ctrl-C: each trial says why
                    for entry in running.values():
                        beats.remove(entry.trial)
                        objective.record_curves(entry.trial, entry.spec, entry.records, TrialState.FAIL)
                        _tell(study, entry.trial, TrialState.FAIL, callbacks, f"{type(error).__name__}: {error}")
                    running.clear()
                    trainer = None
                    if isinstance(error, CAUGHT):
                        continue
                    raise
                reported = _report(outcomes, running)
                pruning = any(o.record and o.record.epoch >= objective.first_pruning_epoch for o in outcomes)
                view = _EpochView(study) if pruning else None
                for outcome, entry in reported:
                    state, reason = _judge(objective, entry, outcome, view)
                    if state is None:
                        continue
                    trainer.remove(outcome.key)
                    del running[outcome.key]
                    beats.remove(entry.trial)
                    objective.record_curves(entry.trial, entry.spec, entry.records, state)
                    value = entry.records[-1].val_loss if state == TrialState.COMPLETE else None
                    _tell(study, entry.trial, state, callbacks, reason, value)
    except Exception as error:
        if not is_fault(error):
            raise
        in_hand = [entry.trial for entry in running.values()]
        in_hand += [trial for trial in asked if trial.number not in running]
        raise fail_after_fault(study, in_hand, error) from error


def _report(outcomes: list[EpochOutcome], running: dict[int, _Running]) -> list[tuple[EpochOutcome, _Running]]:
    """Report every trial's epoch to the study first, so the pruner then judges them all from one read."""
    pairs = []
    for outcome in outcomes:
        entry = running[outcome.key]
        if outcome.record is not None:
            entry.records.append(outcome.record)
            entry.trial.report(outcome.record.val_loss, outcome.record.epoch)
        pairs.append((outcome, entry))
    return pairs


def _judge(
    objective: Objective, entry: _Running, outcome: EpochOutcome, view: _EpochView | None
) -> tuple[TrialState | None, str | None]:
    """How the trial's epoch ends it, if it does: (state, failure reason); (None, None) to go on."""
    if outcome.diverged is not None:
        objective.diverged(entry.trial, outcome.diverged)
        return TrialState.PRUNED, None
    try:
        objective.judge(entry.trial, outcome.record, lambda: view is not None and view.should_prune(entry.trial))
    except optuna.TrialPruned:
        return TrialState.PRUNED, None
    except Interrupted as error:
        return TrialState.FAIL, f"Interrupted: {error}"
    return (TrialState.COMPLETE, None) if outcome.finished else (None, None)


class _EpochView:
    """The study as the pruner sees it after one epoch of the stack: its trials read once for all K.

    `trial.should_prune()` reads the study's trials for every trial, and on a database storage each
    read loads every running trial, so a stack of K would pay K x K trial loads an epoch. Pruners read
    the trials they are given and write their own bookkeeping through the real storage.
    """

    def __init__(self, study: optuna.Study) -> None:
        self._study = study
        self._trials = study.get_trials(deepcopy=False)
        self._by_number = {trial.number: trial for trial in self._trials}

    def get_trials(self, deepcopy: bool = True, states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        trials = [t for t in self._trials if states is None or t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    @property
    def trials(self) -> list[FrozenTrial]:
        return self.get_trials()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)

    def should_prune(self, trial: optuna.Trial) -> bool:
        """What `trial.should_prune()` answers, from this epoch's read."""
        return self._study.pruner.prune(self, self._by_number[trial.number])


def _tell(
    study: optuna.Study,
    trial: optuna.Trial,
    state: TrialState,
    callbacks: Sequence[Callback],
    reason: str | None = None,
    value: float | None = None,
) -> None:
    if reason is not None:
        trial.set_user_attr(FAIL_REASON, reason)
    frozen = study.tell(trial, value, state=state)
    for callback in callbacks:
        callback(study, frozen)


class _Heartbeats:
    """One thread recording a heartbeat for every running trial of the stack.

    Optuna sends heartbeats only for trials run by `study.optimize`; ask-and-tell trials need their own,
    or a killed stacked worker's trials would stay RUNNING forever.
    """

    def __init__(self, study: optuna.Study, interval: float | None) -> None:
        self._storage = storage_of(study)
        self._interval = interval
        self._trial_ids: set[int] = set()
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self) -> _Heartbeats:
        if self._interval is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def add(self, trial: optuna.Trial) -> None:
        with self._guard:
            self._trial_ids.add(trial_id(trial))
        if self._interval is not None:
            self._storage.record_heartbeat(trial_id(trial))

    def remove(self, trial: optuna.Trial) -> None:
        with self._guard:
            self._trial_ids.discard(trial_id(trial))

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            with self._guard:
                trial_ids = list(self._trial_ids)
            for stored_id in trial_ids:
                try:
                    self._storage.record_heartbeat(stored_id)
                except Exception as error:  # a blip of the server must not end the heartbeats for good
                    if not is_fault(error):
                        raise
                    _log.warning("a heartbeat was not recorded: %s", fault_line(error))
