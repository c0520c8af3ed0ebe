"""The few places lrsearch reaches into Optuna's private attributes, each with why, so that an Optuna
upgrade that moves them breaks here and nowhere else (torch's are in `base.torch_private`, optuna-dashboard's
stored formats in `dashboard_formats`).

The fast path (one read of the study per sampled trial, a worker's own trials read from their copies,
a stack's reports and a trial's attributes written in one transaction through Optuna's own table models)
runs only on the Optuna releases the test suite ran it on (`TESTED_OPTUNA`): a release that changes its
tables must never write a user's study wrongly. On any other release, or with
`LRSEARCH_OPTUNA_FAST_PATH=0`, Optuna's public API serves: slower, the same results.

Optuna is extended by wrapping, never by patching a live object: on the fast path, the storages lrsearch
opens (`storage.open_storage`) are a `WrappedStorage` around Optuna's own, which passes every call through,
and whose modes, each for the thread that opens it (`trials_read_once`, `OwnTrialsRead`, `writes_together`),
serve some calls otherwise. On the public path the storage is Optuna's own, nothing of lrsearch's around it.
"""

from __future__ import annotations

import copy
import functools
import os
import threading
import warnings
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, RDBStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from lrsearch.base.versions import is_tested, say_untested_once
from lrsearch.store.records import FAIL_REASON, WORKER_ATTR

if TYPE_CHECKING:
    from optuna.study._frozen import FrozenStudy

# The Optuna releases (major.minor) whose private storage internals the suite ran the fast path on.
TESTED_OPTUNA = ("5.1",)
FAST_PATH_ENV = "LRSEARCH_OPTUNA_FAST_PATH"  # "0": always the public path; "1": the fast path on any release


def fast_path_on(version: str | None = None) -> bool:
    """Whether the fast path runs with this Optuna release (default: the installed one; see the module's
    docstring)."""
    wanted = os.environ.get(FAST_PATH_ENV)
    if wanted in {"0", "1"}:
        return wanted == "1"
    return is_tested(version or optuna.__version__, TESTED_OPTUNA)


def _fast_path() -> bool:
    on = fast_path_on()
    if not on and os.environ.get(FAST_PATH_ENV) != "0":
        then = "its storage is used through Optuna's public API, slower with the same results"
        say_untested_once(_fast_path, "Optuna", optuna.__version__, TESTED_OPTUNA, then)
    return on


def storage_of(study: optuna.Study) -> BaseStorage:
    """The study's storage: Optuna has no public handle on it, and ask-and-tell workers must send their
    trials' heartbeats themselves (Optuna sends them only inside `study.optimize`); a FrozenTrial's
    artifacts are listed from it too (a FrozenTrial knows no storage). For a study lrsearch opened, it
    is a `WrappedStorage`."""
    return study._storage


class WrappedStorage(BaseStorage):
    """The storage lrsearch's studies hold: Optuna's storage (`wrapped`), extended by wrapping it as
    Optuna's own `_CachedStorage` wraps its `RDBStorage`, never by patching a live object.

    Every call is the wrapped storage's, except while one of this module's blocks is open in the calling
    thread: each block (`trials_read_once`, `OwnTrialsRead`, `writes_together`) is a mode of the wrapper
    for that thread only (other threads, such as the figures thread, read and write as Optuna does). A
    mode is an object whose methods named as the storage's (`get_all_trials`, `get_trial`,
    `create_new_trial`, `set_trial_param`, `set_trial_user_attr`, `set_trial_system_attr`,
    `set_study_system_attr`) take that call, with the call as the modes opened before it (and finally
    the wrapped storage) would serve it as their first argument; the mode opened last serves first.

    BaseStorage's reads that Optuna defines through `get_trial` and `get_all_trials` (a trial's params
    or attributes, the number of trials) are read through this wrapper, so the modes serve them as
    they serve those two, unless the wrapped storage has its own (then it serves them).

    A database storage is wrapped around Optuna's `_CachedStorage` of it (see `for_studies`). It pickles
    as its wrapped storage does, modes left out (they belong to a thread's open block).
    """

    _MODAL = (
        "get_all_trials",
        "get_trial",
        "create_new_trial",
        "set_trial_param",
        "set_trial_user_attr",
        "set_trial_system_attr",
        "set_study_system_attr",
    )

    def __init__(self, wrapped: BaseStorage) -> None:
        self.wrapped = wrapped
        self._modes = threading.local()  # .open: this thread's modes, in the order they were opened

    def __reduce__(self) -> tuple[Any, ...]:
        return _wrapped_again, (self.wrapped,)

    def open_modes(self) -> list[Any]:
        """This thread's open modes, first opened first."""
        return vars(self._modes).setdefault("open", [])

    def open_mode(self, mode: Any) -> None:
        self.open_modes().append(mode)

    def close_mode(self, mode: Any) -> None:
        modes = self.open_modes()
        del modes[next(i for i, open_mode in enumerate(modes) if open_mode is mode)]

    def _call(self, name: str, *args: Any) -> Any:
        return self._served(name, len(self.open_modes()))(*args)

    def _served(self, name: str, below: int) -> Callable[..., Any]:
        """The call `name` as served by the modes of this thread opened before the `below`th one."""
        modes = self.open_modes()
        for depth in range(min(below, len(modes)) - 1, -1, -1):
            serve = getattr(modes[depth], name, None)
            if serve is not None:
                return functools.partial(serve, functools.partial(self._call_below, name, depth))
        return getattr(self.wrapped, name)

    def _call_below(self, name: str, depth: int, *args: Any) -> Any:
        return self._served(name, depth)(*args)

    def _derived(self, name: str, *args: Any) -> Any:
        """A BaseStorage method Optuna defines through others: the wrapped storage's own when it has
        one, else Optuna's definition read through this wrapper (so through the open modes)."""
        if getattr(type(self.wrapped), name) is getattr(BaseStorage, name):
            return getattr(BaseStorage, name)(self, *args)
        return getattr(self.wrapped, name)(*args)

    # The calls the modes may serve.
    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return self._call("get_all_trials", study_id, deepcopy, states)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        return self._call("get_trial", trial_id)

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        return self._call("create_new_trial", study_id, template_trial)

    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float, distribution: BaseDistribution
    ) -> None:
        self._call("set_trial_param", trial_id, param_name, param_value_internal, distribution)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._call("set_trial_user_attr", trial_id, key, value)

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._call("set_trial_system_attr", trial_id, key, value)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self._call("set_study_system_attr", study_id, key, value)

    # The wrapped storage's, always.
    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        return self.wrapped.create_new_study(directions, study_name)

    def delete_study(self, study_id: int) -> None:
        self.wrapped.delete_study(study_id)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        self.wrapped.set_study_user_attr(study_id, key, value)

    def get_study_id_from_name(self, study_name: str) -> int:
        return self.wrapped.get_study_id_from_name(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self.wrapped.get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self.wrapped.get_study_directions(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self.wrapped.get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self.wrapped.get_study_system_attrs(study_id)

    def get_all_studies(self) -> list[FrozenStudy]:
        return self.wrapped.get_all_studies()

    def set_trial_state_values(self, trial_id: int, state: TrialState, values: Sequence[float] | None = None) -> bool:
        return self.wrapped.set_trial_state_values(trial_id, state, values)

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        self.wrapped.set_trial_intermediate_value(trial_id, step, intermediate_value)

    # Defined by BaseStorage through the calls above (see `_derived`).
    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        return self._derived("get_trial_id_from_study_id_trial_number", study_id, trial_number)

    def get_trial_number_from_id(self, trial_id: int) -> int:
        return self._derived("get_trial_number_from_id", trial_id)

    def get_trial_param(self, trial_id: int, param_name: str) -> float:
        return self._derived("get_trial_param", trial_id, param_name)

    def get_trial_params(self, trial_id: int) -> dict[str, Any]:
        return self._derived("get_trial_params", trial_id)

    def get_trial_user_attrs(self, trial_id: int) -> dict[str, Any]:
        return self._derived("get_trial_user_attrs", trial_id)

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        return self._derived("get_trial_system_attrs", trial_id)

    def get_n_trials(self, study_id: int, state: tuple[TrialState, ...] | TrialState | None = None) -> int:
        return self._derived("get_n_trials", study_id, state)

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        return self._derived("get_best_trial", study_id)

    def check_trial_is_updatable(self, trial_id: int, trial_state: TrialState) -> None:
        self._derived("check_trial_is_updatable", trial_id, trial_state)

    def remove_session(self) -> None:
        self._derived("remove_session")


@functools.cache
def _heartbeat_wrapper() -> type[WrappedStorage]:
    """`WrappedStorage` for a storage that records heartbeats: Optuna's heartbeat thread and its
    `fail_stale_trials` act only on a `BaseHeartbeat` (no public name; imported only on the fast path)."""
    from optuna.storages._heartbeat import BaseHeartbeat

    class HeartbeatWrappedStorage(WrappedStorage, BaseHeartbeat):
        def record_heartbeat(self, trial_id: int) -> None:
            self.wrapped.record_heartbeat(trial_id)

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            return self.wrapped._get_stale_trial_ids(study_id)

        def get_heartbeat_interval(self) -> int | None:
            return self.wrapped.get_heartbeat_interval()

        def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
            return self.wrapped.get_heartbeat_stale_trial_callback()

    return HeartbeatWrappedStorage


def for_studies(storage: BaseStorage) -> BaseStorage:
    """The storage lrsearch's studies are opened on: `storage` in a `WrappedStorage` on the fast path,
    `storage` itself otherwise (Optuna's public path, nothing of it wrapped).

    A database storage is wrapped around Optuna's `_CachedStorage` of it, as Optuna would wrap it
    itself (`optuna.storages.get_storage` wraps an RDBStorage, not a storage it does not know): its cache
    of the study's finished trials stays, and the studies opened on this storage share it, as the
    command and its in-process worker shared it already.
    """
    if not fast_path_on() or isinstance(storage, WrappedStorage):
        return storage
    if isinstance(storage, RDBStorage):
        from optuna.storages._cached_storage import _CachedStorage

        storage = _CachedStorage(storage)
    return _wrapped_again(storage)


def _wrapped_again(wrapped: BaseStorage) -> WrappedStorage:
    """`wrapped` in the WrappedStorage for it (also how a pickled one is rebuilt)."""
    from optuna.storages._heartbeat import BaseHeartbeat

    return _heartbeat_wrapper()(wrapped) if isinstance(wrapped, BaseHeartbeat) else WrappedStorage(wrapped)


def backend_of(study: optuna.Study) -> BaseStorage:
    """The storage the study was opened with, as Optuna made it: behind lrsearch's `WrappedStorage`, and
    behind Optuna's `_CachedStorage`, which wraps a database storage."""
    from optuna.storages._cached_storage import _CachedStorage

    storage = storage_of(study)
    if isinstance(storage, WrappedStorage):
        storage = storage.wrapped
    return storage._backend if isinstance(storage, _CachedStorage) else storage


def _wrapper_of(study: optuna.Study) -> WrappedStorage | None:
    """The study's WrappedStorage on the fast path; None on the public path or for a storage lrsearch
    did not open (its calls are Optuna's own)."""
    storage = storage_of(study)
    return storage if isinstance(storage, WrappedStorage) and _fast_path() else None


@contextmanager
def _mode(wrapper: WrappedStorage, mode: Any) -> Iterator[None]:
    wrapper.open_mode(mode)
    try:
        yield
    finally:
        wrapper.close_mode(mode)


def trial_id(trial: optuna.Trial) -> int:
    """The storage's id of a trial (its number is per study; heartbeats are recorded by id)."""
    return trial._trial_id


def fail_stale_trials(study: optuna.Study) -> None:
    """Optuna's `fail_stale_trials`, but each trial it fails says why in `fail_reason`, and a trial whose
    worker died before its first heartbeat fails too (`_never_beat`). Called under the admission lock.

    Optuna fails a trial whose worker stopped sending heartbeats without a word, and a finished trial's
    attributes can no longer be written; so the reason is written first, while the trial still runs.
    Its stale-trial callback (the retry) runs as Optuna runs it.
    """
    if not _fast_path():  # Optuna's own: the trials fail without a reason
        optuna.storages.fail_stale_trials(study)
        return
    from optuna.storages._heartbeat import BaseHeartbeat  # the storages that record heartbeats (no public name)

    storage = storage_of(study)
    if not isinstance(storage, BaseHeartbeat) or storage.get_heartbeat_interval() is None:
        return
    failed = []
    stale_ids = storage._get_stale_trial_ids(study._study_id)  # no public way to list them
    silent = dict.fromkeys(stale_ids, "stopped sending heartbeats: it died, or lost the storage")
    orphans = _never_beat(backend_of(study), study._study_id)
    silent |= dict.fromkeys(orphans, "died before the trial's first heartbeat")
    for stale, what in silent.items():
        try:
            worker = storage.get_trial(stale).user_attrs.get(WORKER_ATTR, "unknown")
            reason = f"worker {worker} {what}"
            storage.set_trial_user_attr(stale, FAIL_REASON, reason)
            if storage.set_trial_state_values(stale, state=TrialState.FAIL):
                failed.append(stale)
        except UpdateFinishedTrialError:  # another worker failed it first
            pass
    callback = storage.get_heartbeat_stale_trial_callback()
    if callback is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            for stale in failed:
                frozen = copy.deepcopy(storage.get_trial(stale))
                # The retry copies the trial's attributes: not the reason its predecessor failed.
                frozen.user_attrs = {k: v for k, v in frozen.user_attrs.items() if k != FAIL_REASON}
                callback(study, frozen)


def _never_beat(backend: BaseStorage, study_id: int) -> list[int]:
    """The study's running trials that never recorded a heartbeat. A worker asks for its trials and
    records each one's first heartbeat under the study's admission lock, and this is read under it: such
    a trial's worker died in between (killed, or its pool torn down when a sibling was), and Optuna's
    stale check, which reads heartbeats only, would leave it running for ever, and every worker waiting
    for its retry."""
    if not isinstance(backend, RDBStorage):
        return []
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(backend.scoped_session) as session:
        beating = session.query(models.TrialHeartbeatModel.trial_id)
        rows = (
            session.query(models.TrialModel.trial_id)
            .filter(models.TrialModel.study_id == study_id)
            .filter(models.TrialModel.state == TrialState.RUNNING)
            .filter(models.TrialModel.trial_id.not_in(beating))
            .all()
        )
    return [trial_id for (trial_id,) in rows]


@contextmanager
def trials_read_once(study: optuna.Study) -> Iterator[None]:
    """While in the block, this thread reads the study's trials from one read of the storage.

    TPE with `constant_liar` reads every trial of the study, running ones included, for each parameter
    it samples, bypassing Optuna's per-ask cache (`Study._get_trials(use_cache=False)`); on a database
    storage each read reloads every running trial with its intermediate values and attributes: a stack
    of 10 paid about 9 reads a trial, of 10 running trials each. Sampling one trial in this block reads
    the study once; the trial's own parameters, which the sampler writes as it goes, are not in that
    read. It is a mode of the study's `WrappedStorage` (this thread's `get_all_trials` of the study
    serves the read), and the read is the study's per-ask cache for this thread meanwhile
    (`Study._thread_local.cached_all_trials`, what samplers read with `use_cache=True`), as it was before
    the block afterwards: another thread (a figures thread reading the same study) reads the storage as
    before. A storage lrsearch did not open is read as Optuna reads it.
    """
    wrapper = _wrapper_of(study)
    if wrapper is None:
        yield
        return
    study_id = study._study_id
    read = _ReadOnce(study_id, wrapper.get_all_trials(study_id, deepcopy=False))
    per_ask = study._thread_local  # Optuna's per-thread cache of the study's trials, reset by each ask
    before = per_ask.cached_all_trials
    per_ask.cached_all_trials = read.trials
    try:
        with _mode(wrapper, read):
            yield
    finally:
        now = per_ask.cached_all_trials
        if now is read.trials:
            per_ask.cached_all_trials = before
        elif any(now is served for served in read.served):  # an ask in the block reset it: it stays unread
            per_ask.cached_all_trials = None


class _ReadOnce:
    """The mode of `trials_read_once`: the study's trials, from one read."""

    def __init__(self, study_id: int, trials: list[FrozenTrial]) -> None:
        self.study_id, self.trials = study_id, trials
        self.served: list[list[FrozenTrial]] = []  # the whole study as served, uncopied

    def get_all_trials(
        self,
        below: Callable[..., list[FrozenTrial]],
        study_id: int,
        deepcopy: bool,
        states: Container[TrialState] | None,
    ) -> list[FrozenTrial]:
        if study_id != self.study_id:
            return below(study_id, deepcopy, states)
        chosen = [t for t in self.trials if states is None or t.state in states]
        if not deepcopy and states is None:
            self.served.append(chosen)
        return copy.deepcopy(chosen) if deepcopy else chosen


class OwnTrialsRead:
    """While in the block, this thread reads the study's trials without reloading the ones it runs itself.

    On a database storage every read of the study (the budget's count, `study.ask`'s look for queued
    trials, the sampler's read, the pruner's) reloads every unfinished trial with its parameters,
    intermediate values and attributes: a stack of K pays K trial loads a read, many reads an epoch.
    The trials this worker runs are the ones it writes: Optuna's `Trial` keeps a copy of each
    (`_cached_frozen_trial`) as it suggests, reports and sets attributes, and `report_all` and
    `set_user_attrs` keep it too. So a read here asks the database for the states of the study's
    trials (one light query), loads a finished trial once (it no longer changes), loads every other
    worker's unfinished trial as before, and takes each of `own()`'s trials that the database still
    holds as RUNNING from its copy, as of the read. System and user attributes that samplers and pruners
    write straight to the storage for a trial (`study._storage.set_trial_system_attr`) are copied onto
    the trial's copy as they are written. `get_trial` of one of its running trials (`study.tell` reads the
    trial it ends) is its copy too, after a light query of its state, and a trial it has just created is
    read back as created. It is a mode of the study's `WrappedStorage` for this thread: another thread
    (the figures thread) reads the storage as before; any other storage is read as before. The finished
    trials it loads it also hands to Optuna's own cache of the study, which the command shares with its
    in-process worker: the figures thread, the summary and the export then load none of them again.
    """

    def __init__(self, study: optuna.Study, own: Callable[[], Iterable[optuna.Trial]]) -> None:
        self._study, self._own = study, own
        self._backend = _database(study)
        self._wrapper = _wrapper_of(study) if self._backend is not None else None
        self._finished: dict[int, FrozenTrial] = {}  # by trial id
        self._created: dict[int, FrozenTrial] = {}  # created by this thread, not read back yet

    def __enter__(self) -> OwnTrialsRead:
        if self._wrapper is not None:
            self._wrapper.open_mode(self)
        return self

    def __exit__(self, error_type: type[BaseException] | None, *exc: object) -> None:
        if self._wrapper is not None:
            self._wrapper.close_mode(self)
            if error_type is None:  # the trials told since the last read too; after an error, no further query
                from optuna.storages._rdb import models

                states = self._states(models.TrialModel.study_id == self._study._study_id)
                _keep_in_optuna_cache(self._wrapper.wrapped, self._study._study_id, states, self._finished)

    # The storage's calls this mode serves (`below`: the call as served without it).
    def create_new_trial(self, below: Callable[..., int], study_id: int, template_trial: FrozenTrial | None) -> int:
        """`study.ask` creates a trial, then reads it back whole (`Trial.__init__`): the trial as
        created is what that read returns (no one else writes to it yet). Not a trial made from a
        template: a WAITING one (a retry) is read when asked, after the ask made it RUNNING."""
        created_id = below(study_id, template_trial)
        if template_trial is None:
            created = _as_created(self._wrapper.wrapped if self._wrapper else None, created_id)
            if created is not None:
                self._created[created_id] = created
        return created_id

    def get_all_trials(
        self,
        below: Callable[..., list[FrozenTrial]],
        study_id: int,
        deepcopy: bool,
        states: Container[TrialState] | None,
    ) -> list[FrozenTrial]:
        if study_id != self._study._study_id:
            return below(study_id, deepcopy, states)
        chosen = [t for t in self.read() if states is None or t.state in states]
        return copy.deepcopy(chosen) if deepcopy else chosen

    def get_trial(self, below: Callable[[int], FrozenTrial], stored_id: int) -> FrozenTrial:
        if stored_id in self._finished:
            return self._finished[stored_id]
        if stored_id in self._created:
            return _snapshot(self._created.pop(stored_id))
        own = next((trial for trial in self._own() if trial._trial_id == stored_id), None)
        if own is not None and self._state(stored_id) == TrialState.RUNNING:
            return _snapshot(own._cached_frozen_trial)
        trial = below(stored_id)
        if trial.state.is_finished():
            self._finished[stored_id] = trial
        return trial

    def set_trial_system_attr(self, below: Callable[..., None], stored_id: int, key: str, value: Any) -> None:
        below(stored_id, key, value)
        self._copied(stored_id, "set_trial_system_attr", key, value)

    def set_trial_user_attr(self, below: Callable[..., None], stored_id: int, key: str, value: Any) -> None:
        below(stored_id, key, value)
        self._copied(stored_id, "set_trial_user_attr", key, value)

    def _copied(self, stored_id: int, write: str, key: str, value: Any) -> None:
        for trial in self._own():
            if trial._trial_id == stored_id:
                _copy_attr(trial, write, key, value)

    def _state(self, stored_id: int) -> TrialState | None:
        from optuna.storages._rdb import models

        return self._states(models.TrialModel.trial_id == stored_id).get(stored_id)

    def _states(self, which: Any) -> dict[int, TrialState]:
        from optuna.storages._rdb.storage import _create_scoped_session

        assert self._backend is not None
        with _create_scoped_session(self._backend.scoped_session) as session:
            return _trial_states(session, which)

    def read(self) -> list[FrozenTrial]:
        """The study's trials, by number, as the storage holds them now."""
        from optuna.storages._rdb import models

        assert self._backend is not None and self._wrapper is not None
        study_id = self._study._study_id
        states = self._states(models.TrialModel.study_id == study_id)
        own = {trial._trial_id: trial for trial in self._own()}
        local = {i: own[i] for i, state in states.items() if i in own and state == TrialState.RUNNING}
        wanted = {i for i in states if i not in self._finished and i not in local}
        # Those wanted, and any trial added since the light query (ids above all it saw, so none of `local`).
        newest = max(states, default=-1)
        loaded = self._backend._get_trials(study_id, None, wanted, newest) if wanted else []
        self._finished.update((t._trial_id, t) for t in loaded if t.state.is_finished())
        _keep_in_optuna_cache(self._wrapper.wrapped, study_id, states, self._finished)
        unfinished = [t for t in loaded if not t.state.is_finished()]
        trials = [*self._finished.values(), *unfinished, *(_snapshot(t._cached_frozen_trial) for t in local.values())]
        return sorted(trials, key=lambda t: t.number)


def _as_created(storage: BaseStorage | None, created_id: int) -> FrozenTrial | None:
    """The trial Optuna's `_CachedStorage` keeps of one it has just created (what its database returned
    on creating it); None for another storage."""
    from optuna.storages._cached_storage import _CachedStorage

    if not isinstance(storage, _CachedStorage):
        return None
    with storage._lock:
        study_id, number = storage._trial_id_to_study_id_and_number[created_id]
        return storage._studies[study_id].trials[number]


def _keep_in_optuna_cache(
    storage: BaseStorage, study_id: int, states: Mapping[int, TrialState], finished: Mapping[int, FrozenTrial]
) -> None:
    """Put the finished trials a worker has loaded into Optuna's own cache of the study
    (`_CachedStorage`, shared by the study objects of the command's process), leaving it as Optuna's own
    read of the study would: its other readers (the figures thread, the command's summary and export)
    then load only the trials that changed since, not every trial of the study again.

    Optuna's cache loads the trials it lists as unfinished and every trial above its last finished id;
    `states` is one read of all the study's trials, so each one it names that is not cached finished is
    listed as unfinished (to be loaded), and the ids it saw are all accounted for.
    """
    from optuna.storages._cached_storage import _CachedStorage, _StudyInfo

    if not isinstance(storage, _CachedStorage) or not states:
        return
    with storage._lock:
        study = storage._studies.setdefault(study_id, _StudyInfo())
        storage._add_trials_to_cache(study_id, [trial for i, trial in finished.items() if i in states])
        cached = {trial._trial_id for trial in study.trials.values() if trial.state.is_finished()}
        study.unfinished_trial_ids = (study.unfinished_trial_ids | set(states)) - cached
        study.last_finished_trial_id = max(study.last_finished_trial_id, max(states))


def _trial_states(session: Any, which: Any) -> dict[int, TrialState]:
    """Trial id -> state of the trials `which` selects: one light query, no trial loaded whole."""
    from optuna.storages._rdb import models

    return dict(session.query(models.TrialModel.trial_id, models.TrialModel.state).filter(which).all())


def _snapshot(trial: FrozenTrial) -> FrozenTrial:
    """The trial as it is now, as a read returns it: its mappings copied, so later writes don't show."""
    copied = copy.copy(trial)
    copied.params, copied.distributions = dict(trial.params), dict(trial.distributions)
    copied.user_attrs, copied.system_attrs = dict(trial.user_attrs), dict(trial.system_attrs)
    copied.intermediate_values = dict(trial.intermediate_values)
    return copied


def report_all(study: optuna.Study, reports: Sequence[tuple[optuna.Trial, int, float]]) -> None:
    """Each `trial.report(value, step)` of `reports`, written in one transaction on a database storage.

    A stack's trials report their epochs together, and each `Trial.report` is a transaction of its own
    with two queries (the trial's state, the step's row) before its insert. Here the trials' states are
    one query, the steps already stored another, and the new rows one insert, as Optuna's
    `RDBStorage._set_trial_intermediate_value_without_commit` writes them (a step stored already is
    overwritten, a finished trial refused), in the session Optuna's own `_create_scoped_session` opens
    and commits; the trial's cached copy is kept as `Trial.report` keeps it. Other storages get
    `trial.report` itself.
    """
    fresh = [
        (t, int(step), float(v)) for t, step, v in reports if step not in t._cached_frozen_trial.intermediate_values
    ]
    backend = _database(study)
    if backend is None:
        for trial, step, value in fresh:
            trial.report(value, step)
        return
    if fresh:
        _insert_intermediate_values(backend, [(trial._trial_id, step, value) for trial, step, value in fresh])
    for trial, step, value in fresh:
        trial._cached_frozen_trial.intermediate_values[step] = value


def _insert_intermediate_values(backend: RDBStorage, rows: Sequence[tuple[int, int, float]]) -> None:
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    values = models.TrialIntermediateValueModel
    trial_ids = {trial_id for trial_id, _, _ in rows}
    with _create_scoped_session(backend.scoped_session, True) as session:
        found = _trial_states(session, models.TrialModel.trial_id.in_(trial_ids))
        for trial_id in trial_ids:
            if trial_id not in found:
                raise KeyError(f"No trial with trial_id {trial_id} exists.")  # as find_or_raise_by_id says
            backend.check_trial_is_updatable(trial_id, found[trial_id])
        stored = []
        for trial_id, step, value in rows:
            number, kind = values.intermediate_value_to_stored_repr(value)
            stored.append(
                {"trial_id": trial_id, "step": step, "intermediate_value": number, "intermediate_value_type": kind}
            )
        if _upsert(backend, session, values, stored, ("trial_id", "step")):
            return
        existing = session.query(values).filter(
            values.trial_id.in_(trial_ids), values.step.in_({step for _, step, _ in rows})
        )
        by_step = {(row.trial_id, row.step): row for row in existing.all()}
        for row in stored:
            old = by_step.get((row["trial_id"], row["step"]))
            if old is None:
                session.add(values(**row))
            else:
                old.intermediate_value = row["intermediate_value"]
                old.intermediate_value_type = row["intermediate_value_type"]


def set_user_attrs(study: optuna.Study, trial: optuna.Trial, attrs: Mapping[str, Any]) -> None:
    """`trial.set_user_attr(key, value)` for each of `attrs`, in one transaction on a database storage (a
    trial's RunSpec, device and curves are several attributes: one commit, not one each)."""
    with writes_together(study, trial):
        for key, value in attrs.items():
            trial.set_user_attr(key, value)


@contextmanager
def writes_together(study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
    """While in the block, this thread's writes of the trial's parameters and attributes (the sampler's,
    `trial.set_user_attr`'s), and of the study's system attributes (the dashboard's note of the trial),
    are held back, and written in one transaction as the block ends, error or not, on a database
    storage; any other storage writes them as they come. A block inside another for the same trial
    joins it.

    Starting a trial wrote its worker, then each parameter the sampler suggested, then its RunSpec,
    each a transaction of its own with a query or two before it: about nine commits a trial. The
    held-back writes are Optuna's own (`RDBStorage._set_trial_param_without_commit`,
    `_set_trial_attr_without_commit`), in the session its `_create_scoped_session` opens and commits;
    the trial's own copy is kept as its writes would keep it, so this worker's reads of it
    (`OwnTrialsRead`) see them at once, and others see them when the block ends. It is a mode of the
    study's `WrappedStorage` for this thread (another thread's writes, and this thread's writes of
    other trials, are written as they come).
    """
    backend = _database(study)
    wrapper = _wrapper_of(study) if backend is not None else None
    stored_id = trial._trial_id
    if wrapper is None or any(isinstance(m, _HeldBack) and m.trial_id == stored_id for m in wrapper.open_modes()):
        yield
        return
    held = _HeldBack(study._study_id, trial)
    try:
        with _mode(wrapper, held):
            yield
    finally:
        if held.queue:
            _write_all(backend, stored_id, held.queue)


class _HeldBack:
    """The mode of `writes_together`: the trial's writes (and the study's system attributes), queued."""

    def __init__(self, study_id: int, trial: optuna.Trial) -> None:
        self.study_id, self.trial, self.trial_id = study_id, trial, trial._trial_id
        self.queue: list[tuple[str, tuple[Any, ...]]] = []

    def set_trial_param(self, below: Callable[..., None], trial_id: int, *args: Any) -> None:
        if trial_id != self.trial_id:
            return below(trial_id, *args)
        self.queue.append(("set_trial_param", args))
        return None

    def set_trial_user_attr(self, below: Callable[..., None], trial_id: int, key: str, value: Any) -> None:
        self._attr(below, "set_trial_user_attr", trial_id, key, value)

    def set_trial_system_attr(self, below: Callable[..., None], trial_id: int, key: str, value: Any) -> None:
        self._attr(below, "set_trial_system_attr", trial_id, key, value)

    def _attr(self, below: Callable[..., None], write: str, trial_id: int, key: str, value: Any) -> None:
        if trial_id != self.trial_id:
            below(trial_id, key, value)
            return
        self.queue.append((write, (key, value)))
        _copy_attr(self.trial, write, key, value)  # as OwnTrialsRead keeps a copy that others wrote to

    def set_study_system_attr(self, below: Callable[..., None], study_id: int, key: str, value: Any) -> None:
        if study_id != self.study_id:
            below(study_id, key, value)
            return
        self.queue.append(("set_study_system_attr", (key, value)))


def _copy_attr(trial: optuna.Trial, write: str, key: str, value: Any) -> None:
    """An attribute written to the storage for `trial` (by `write`), kept on the trial's own copy too."""
    where = {"set_trial_user_attr": "user_attrs", "set_trial_system_attr": "system_attrs"}[write]
    getattr(trial._cached_frozen_trial, where)[key] = value


def _write_all(backend: RDBStorage, trial_id: int, queue: Sequence[tuple[str, tuple[Any, ...]]]) -> None:
    """The held-back writes as Optuna writes each (`_set_trial_param_without_commit`,
    `_set_trial_attr_without_commit`, `set_study_system_attr`), with the trial's state checked once, the
    parameters' earlier distributions in the study read in one query rather than one each, and the rows
    of each table written in one statement."""
    import json

    import sqlalchemy
    from optuna import distributions
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from sqlalchemy import func

    params, study_attrs = [], {}
    attrs: dict[Any, dict[str, Any]] = {models.TrialUserAttributeModel: {}, models.TrialSystemAttributeModel: {}}
    for name, args in queue:  # a key written twice keeps its last value, as writing it twice does
        if name == "set_trial_param":
            params.append(args)
        elif name == "set_study_system_attr":
            study_attrs[args[0]] = args[1]
        else:
            user = name == "set_trial_user_attr"
            attrs[models.TrialUserAttributeModel if user else models.TrialSystemAttributeModel][args[0]] = args[1]
    with _create_scoped_session(backend.scoped_session, True) as session:
        found = session.query(models.TrialModel.study_id, models.TrialModel.state).filter(
            models.TrialModel.trial_id == trial_id
        )
        study_id, state = found.one_or_none() or (None, None)
        if state is None:
            raise KeyError(f"No trial with trial_id {trial_id} exists.")  # as find_or_raise_by_id says
        backend.check_trial_is_updatable(trial_id, state)
        if params:
            param = models.TrialParamModel
            earlier = (
                session.query(param.param_name, func.min(param.distribution_json))
                .join(models.TrialModel)
                .filter(models.TrialModel.study_id == study_id)
                .filter(param.param_name.in_({name for name, _, _ in params}))
                .group_by(param.param_name)
            )
            known = {name: distributions.json_to_distribution(text) for name, text in earlier.all()}
            rows = []
            for name, value, distribution in params:
                if name in known:  # every stored distribution of a name is compatible with the others
                    distributions.check_distribution_compatibility(known[name], distribution)
                known.setdefault(name, distribution)
                text = distributions.distribution_to_json(distribution)
                rows.append({"trial_id": trial_id, "param_name": name, "param_value": value, "distribution_json": text})
            session.execute(sqlalchemy.insert(param), rows)  # a name set twice fails, as Optuna's insert does
        for model, values in attrs.items():
            if not values:
                continue
            rows = [{"trial_id": trial_id, "key": k, "value_json": json.dumps(v)} for k, v in values.items()]
            if not _upsert(backend, session, model, rows, ("trial_id", "key")):
                for key, value in values.items():
                    backend._set_trial_attr_without_commit(session, model, trial_id, key, value)
        if study_attrs:
            model = models.StudySystemAttributeModel
            rows = [{"study_id": study_id, "key": k, "value_json": json.dumps(v)} for k, v in study_attrs.items()]
            if not _upsert(backend, session, model, rows, ("study_id", "key")):
                for row in rows:  # as `RDBStorage.set_study_system_attr` writes each
                    stored = session.query(model).filter_by(study_id=study_id, key=row["key"]).one_or_none()
                    if stored is None:
                        session.add(model(**row))
                    else:
                        stored.value_json = row["value_json"]


def _upsert(backend: RDBStorage, session: Any, model: Any, rows: list[dict[str, Any]], keys: tuple[str, ...]) -> bool:
    """`rows` inserted in one statement, a row whose `keys` are stored already overwriting it, on SQLite
    and PostgreSQL (as Optuna's insert-or-update of each row leaves them); False on another database,
    which writes nothing."""
    import sqlite3

    from sqlalchemy.dialects import postgresql, sqlite

    dialect = backend.engine.name
    if dialect != "postgresql" and not (dialect == "sqlite" and sqlite3.sqlite_version_info >= (3, 24, 0)):
        return False
    # The rows as parameters, not in the statement: its compiled form is SQLAlchemy's cached one each time.
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(model)
    updated = {column: insert.excluded[column] for column in rows[0] if column not in keys}
    session.execute(
        insert.on_conflict_do_update(index_elements=[getattr(model, key) for key in keys], set_=updated), rows
    )
    return True


def _database(study: optuna.Study) -> RDBStorage | None:
    """The study's RDBStorage (Optuna wraps it in its `_CachedStorage`, whose writes pass straight
    through to it) when the fast path runs; None for any other storage, or on the public path."""
    if not _fast_path():
        return None
    backend = backend_of(study)
    return backend if isinstance(backend, RDBStorage) else None
