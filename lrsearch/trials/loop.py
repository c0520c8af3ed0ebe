"""The trial loop: Optuna's trial lifecycle, written once, for every engine and every stack size.

A worker keeps up to `stack` trials in its engine. Under the study's admission lock it fails stale
trials (storages with heartbeats), asks for as many new trials as the budget allows and records each
one's first heartbeat; then it trains one epoch of every trial, reports all of them, lets the pruner
judge them from one read of the study, and tells Optuna the end of each trial that ended (completed,
pruned, diverged, failed), refilling its freed slots at once. TPE's `constant_liar` makes the sampler
treat trials still running as bad guesses, so a refill does not propose the region of the trials beside
it. `stack=1` is the same loop with a stack of one.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lrsearch.base.errors import Interrupted, StorageFault, fault_line, is_fault
from lrsearch.base.stopping import StopSignal
from lrsearch.engines.factory import NewEngine
from lrsearch.engines.interface import Engine, EpochOutcome
from lrsearch.problem.spec import RunSpec
from lrsearch.store.optuna_private import (
    OwnTrialsRead,
    fail_stale_trials,
    report_all,
    storage_of,
    trial_id,
    trials_read_once,
    writes_together,
)
from lrsearch.store.records import CONTROL_ATTR, FAIL_REASON, WORKER_ATTR, EpochRecord
from lrsearch.store.storage import AdmissionLock, scrubbed
from lrsearch.trials.budget import Move, admit
from lrsearch.trials.control_trials import ControlTrial, ControlTrials
from lrsearch.trials.objective import Objective

IDLE_POLL_S = 1.0  # how often a worker with nothing to start looks for retries of dead workers' trials
Callback = Callable[[optuna.Study, FrozenTrial], None]
_log = logging.getLogger("lrsearch")


@dataclass
class _Running:
    trial: optuna.Trial
    spec: RunSpec
    records: list[EpochRecord] = field(default_factory=list)


def run_trials(
    *,
    study: optuna.Study,
    objective: Objective,
    new_engine: NewEngine,
    stack: int,
    lock: AdmissionLock,
    stop: StopSignal,
    wait_for_retries: bool,
    timeout: float | None = None,
    callbacks: Sequence[Callback] = (),
    heartbeat: float | None = None,
    spare: int = 0,
) -> int:
    """Run trials of `study`, up to `stack` at a time, until its budget is spent, `timeout` seconds
    pass (no new trial starts after it) or `stop` is set (running trials end FAIL at their epoch).

    Args:
        new_engine: builds the engine that trains this worker's trials (lone, or stacked).
        wait_for_retries: with a heartbeat storage, stay until every trial of the budget has ended,
            so a trial whose worker dies is retried here.
        heartbeat: seconds between heartbeats of the running trials (database storages); None: none.
        spare: trials the stack may take beyond `stack` to start the controls' walks at once
            (`ControlTrials.plan`); only where that many more fit the device for sure.

    Returns:
        How many trials this worker ran.

    Raises:
        StorageFault: the storage failed under the worker; its running trials were ended FAIL with the
            cause where the storage still took a write.
    """
    loop = _Loop(study, objective, new_engine, callbacks)
    deadline = None if timeout is None else time.monotonic() + timeout
    with _Heartbeats(study, heartbeat) as loop.beats, OwnTrialsRead(study, loop.in_hand):
        try:
            while True:
                move: Move = "done"
                if (
                    len(loop.running) < stack
                    and not stop.is_set()
                    and (deadline is None or time.monotonic() < deadline)
                ):
                    with lock:
                        move = loop.ask(stack - len(loop.running), wait_for_retries, spare=spare)
                    loop.start_asked()
                if not loop.running:
                    if move == "run":  # every trial asked failed before training: ask for the rest
                        continue
                    if move == "wait" and not stop.is_set():
                        time.sleep(IDLE_POLL_S)
                        continue
                    return loop.ran
                loop.train_epoch()
        except Exception as error:
            if is_fault(error):
                raise fail_after_fault(study, loop.in_hand(), error) from error
            loop.fail_in_hand(f"{type(error).__name__}: {error}")  # a bug of lrsearch's: no trial left RUNNING
            raise


class _Loop:
    """One worker's trials in hand and the steps of their lifecycle."""

    def __init__(
        self, study: optuna.Study, objective: Objective, new_engine: NewEngine, callbacks: Sequence[Callback]
    ) -> None:
        self.study, self.objective, self.new_engine, self.callbacks = study, objective, new_engine, callbacks
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self.engine: Engine | None = None
        self.running: dict[int, _Running] = {}
        self.asked: list[optuna.Trial] = []  # asked, not yet running
        self.tuning: set[int] = set()  # the control trials asked here: never pruned (`_judge`)
        self.beats: _Heartbeats
        self.ran = 0
        self.controls = ControlTrials(objective.config, objective.steps_per_epoch)

    def ask(self, wanted: int, wait_for_retries: bool, spare: int = 0) -> Move:
        """Under the admission lock: fail stale trials, then ask for what the budget allows, from one
        read of the study, each trial's first heartbeat recorded at once (a trial without any is never
        found stale: were this worker to die now, the others would wait for it for ever). Beyond `wanted`,
        up to `spare` more where they open the controls' walks (`ControlTrials.plan`)."""
        if wait_for_retries:
            fail_stale_trials(self.study)
        move, room, left = admit(self.study, wanted, wait_for_running=wait_for_retries and not self.running)
        with warnings.catch_warnings():  # this loop sends its own heartbeats (_Heartbeats)
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
            plan: list[ControlTrial | None] = [None] * room
            if room and self.controls.params:  # one more read of the study, only where controls are planned
                # Shorter than `room` only while this worker trains trials: it asks again when one ends.
                spare = min(spare, left - room) if left is not None else spare
                plan = self.controls.plan(
                    self.study.get_trials(deepcopy=False), room, left=left, training=bool(self.running), spare=spare
                )
            for planned in plan:
                trial = self.controls.ask(self.study, planned)
                self.asked.append(trial)
                self.beats.add(trial)
                # Optuna hands out the oldest queued trial: a retry of a dead worker's trial may come
                # before the control trial just queued (which a later ask takes). A control trial, or its
                # retry, is one by what it stores.
                if CONTROL_ATTR in trial.user_attrs:
                    self.tuning.add(trial.number)
        return move

    def start_asked(self) -> None:
        """Sample each asked trial's RunSpec and hand it to the engine (which builds the trial's model: a
        user's model that raises there fails that trial, with what it raised)."""
        while self.asked:
            trial = self.asked[0]
            try:
                with writes_together(self.study, trial), trials_read_once(self.study):
                    # Its worker, parameters and RunSpec in one write, sampled from one read of the study.
                    trial.set_user_attr(WORKER_ATTR, self.worker)
                    spec = self.objective.begin(trial)
            except Exception as error:  # Interrupted among them
                if is_fault(error):
                    raise
                self._end(trial, TrialState.FAIL, f"{type(error).__name__}: {error}")
                continue
            try:  # the user's code: whatever it raises, an OSError too (a missing file of theirs), is the trial's
                if self.engine is None:
                    self.engine = self.new_engine(spec)
                self.engine.add(trial.number, spec)
            except Exception as error:
                self._end(trial, TrialState.FAIL, f"{type(error).__name__}: {error}")
                continue
            self.running[trial.number] = _Running(trial, spec)
            self.asked.pop(0)
            self.ran += 1

    def train_epoch(self) -> None:
        """One epoch of every running trial; report all, judge all from one read, end those that ended."""
        assert self.engine is not None
        try:
            outcomes = self.engine.train_epoch()
        except BaseException as error:  # out of memory, a second Ctrl-C: every trial of the stack says why
            # An engine trains and never writes to the storage: what it raises, an OSError of the user's
            # task too (a missing file), is the trials', and the search goes on.
            for entry in list(self.running.values()):
                self._end(entry.trial, TrialState.FAIL, f"{type(error).__name__}: {error}", entry)
            self.engine = None  # its state is that of a failed epoch: the next trials get a new one
            if isinstance(error, Exception):
                return
            raise
        reports = []
        for outcome in outcomes:  # all reported first, in one write, so the pruner then judges them from one read
            entry = self.running[outcome.key]
            if outcome.record is not None:
                entry.records.append(outcome.record)
                reports.append((entry.trial, outcome.record.epoch, outcome.record.val_loss))
        report_all(self.study, reports)
        pruning = any(o.record and o.record.epoch >= self.objective.first_pruning_epoch for o in outcomes)
        view = _EpochView(self.study) if pruning else None
        for outcome in outcomes:
            entry = self.running[outcome.key]
            state, reason = self._judge(entry, outcome, view)
            if state is not None:
                self.engine.remove(outcome.key)
                value = entry.records[-1].val_loss if state == TrialState.COMPLETE else None
                self._end(entry.trial, state, reason, entry, value)

    def _judge(
        self, entry: _Running, outcome: EpochOutcome, view: _EpochView | None
    ) -> tuple[TrialState | None, str | None]:
        """How the trial's epoch ends it, if it does: (state, failure reason); (None, None) to go on."""
        if outcome.failed is not None:
            return TrialState.FAIL, outcome.failed
        if outcome.diverged is not None:
            self.objective.diverged(entry.trial, outcome.diverged)
            return TrialState.PRUNED, None
        if outcome.finished and self.objective.stop.is_set():
            return TrialState.COMPLETE, None  # it trained all its epochs: a stop request loses nothing of it
        # A control trial measures its control at one LR of its walk, which reads its val loss at the end:
        # pruned early, a lower LR (slower at first, often better at the end) would read as worse.
        prunable = view is not None and entry.trial.number not in self.tuning
        try:
            self.objective.judge(entry.trial, outcome.record, lambda: prunable and view.should_prune(entry.trial))
        except optuna.TrialPruned:
            return TrialState.PRUNED, None
        except Interrupted as error:
            return TrialState.FAIL, f"Interrupted: {error}"
        return (TrialState.COMPLETE, None) if outcome.finished else (None, None)

    def _end(
        self,
        trial: optuna.Trial,
        state: TrialState,
        reason: str | None,
        entry: _Running | None = None,
        value: float | None = None,
    ) -> None:
        """Tell Optuna how the trial ended, its curves and (for FAIL) its reason stored first; the trial
        stays in hand (and keeps its heartbeats) until the tell is written."""
        with writes_together(self.study, trial):  # what it stores, in one write before it ends
            if entry is not None:
                self.objective.record_curves(trial, entry.spec, entry.records, state)
            if reason is not None:
                trial.set_user_attr(FAIL_REASON, reason)
        frozen = self.study.tell(trial, value, state=state)
        self.beats.remove(trial)
        self.running.pop(trial.number, None)
        if trial in self.asked:
            self.asked.remove(trial)
        for callback in self.callbacks:
            callback(self.study, frozen)

    def fail_in_hand(self, reason: str) -> None:
        """End every trial in hand FAIL with `reason`, as far as the storage lets us (best effort)."""
        for trial in self.in_hand():
            try:
                trial.set_user_attr(FAIL_REASON, reason)
                self.study.tell(trial, state=TrialState.FAIL)
            except Exception:  # noqa: BLE001 - the error being raised is the one to see
                pass

    def in_hand(self) -> list[optuna.Trial]:
        return [entry.trial for entry in self.running.values()] + self.asked


def fail_after_fault(study: optuna.Study, trials: Sequence[optuna.Trial], error: Exception) -> StorageFault:
    """The storage failed under the worker: end its running `trials` as FAIL with the cause, as far as the
    failing storage lets us, and say what became of them."""
    cause = scrubbed(fault_line(error), "")
    ended = left = 0
    for trial in trials:
        try:
            if storage_of(study).get_trial(trial_id(trial)).state.is_finished():
                continue  # ended already
            trial.set_user_attr(FAIL_REASON, f"the storage failed: {cause}")
            study.tell(trial, state=TrialState.FAIL)
            ended += 1
        except Exception:  # noqa: BLE001 - the write that failed may fail again
            left += 1
    fate = f"; {ended} running trial(s) ended FAIL with this reason" if ended else ""
    if left:
        fate += f"; {left} running trial(s) could not be marked failed"
    return StorageFault(f"the study's storage failed: {cause}{fate}")


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


class _Heartbeats:
    """One thread recording a heartbeat for every running trial of the worker.

    Optuna sends heartbeats only for trials run by `study.optimize`; ask-and-tell trials need their own,
    or a killed worker's trials would stay RUNNING forever.
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
