"""The few places lrsearch reaches into Optuna's private attributes, each with why, so that an Optuna
upgrade that moves them breaks here and nowhere else (torch's are in `base.torch_private`, optuna-dashboard's
stored formats in `dashboard_formats`).

The fast path (one read of the study per sampled trial, a worker's own trials read from their copies,
a stack's reports and a trial's attributes written in one transaction through Optuna's own table models)
runs only on the Optuna releases the test suite ran it on (`TESTED_OPTUNA`): a release that changes its
tables must never write a user's study wrongly. On any other release, or with
`LRSEARCH_OPTUNA_FAST_PATH=0`, Optuna's public API serves: slower, the same results.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
import warnings
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, RDBStorage
from optuna.trial import FrozenTrial, TrialState

from lrsearch.store.records import FAIL_REASON, WORKER_ATTR

# The Optuna releases (major.minor) whose private storage internals the suite ran the fast path on.
TESTED_OPTUNA = ("5.1",)
FAST_PATH_ENV = "LRSEARCH_OPTUNA_FAST_PATH"  # "0": always the public path; "1": the fast path on any release
_log = logging.getLogger("lrsearch")


def fast_path_on(version: str | None = None) -> bool:
    """Whether the fast path runs with this Optuna release (default: the installed one; see the module's
    docstring)."""
    wanted = os.environ.get(FAST_PATH_ENV)
    if wanted in {"0", "1"}:
        return wanted == "1"
    return ".".join((version or optuna.__version__).split(".")[:2]) in TESTED_OPTUNA


def _fast_path() -> bool:
    on = fast_path_on()
    if not on and os.environ.get(FAST_PATH_ENV) != "0" and not getattr(_fast_path, "said", False):
        _fast_path.said = True  # type: ignore[attr-defined]
        _log.warning(
            "Optuna %s is not one lrsearch was tested with (%s): its storage is used through Optuna's public "
            "API, slower with the same results",
            optuna.__version__,
            ", ".join(f"{v}.x" for v in TESTED_OPTUNA),
        )
    return on


def storage_of(study: optuna.Study) -> BaseStorage:
    """The study's storage: Optuna has no public handle on it, and ask-and-tell workers must send their
    trials' heartbeats themselves (Optuna sends them only inside `study.optimize`); a FrozenTrial's
    artifacts are listed from it too (a FrozenTrial knows no storage)."""
    return study._storage


def backend_of(study: optuna.Study) -> BaseStorage:
    """The storage the study was opened with: Optuna wraps a database storage in its `_CachedStorage`,
    whose cache belongs to one study object (another study object on the same storage wraps it anew)."""
    from optuna.storages._cached_storage import _CachedStorage

    storage = storage_of(study)
    return storage._backend if isinstance(storage, _CachedStorage) else storage


def trial_id(trial: optuna.Trial) -> int:
    """The storage's id of a trial (its number is per study; heartbeats are recorded by id)."""
    return trial._trial_id


def fail_stale_trials(study: optuna.Study) -> None:
    """Optuna's `fail_stale_trials`, but each trial it fails says why in `fail_reason`.

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
    for stale in storage._get_stale_trial_ids(study._study_id):  # no public way to list them
        try:
            worker = storage.get_trial(stale).user_attrs.get(WORKER_ATTR, "unknown")
            reason = f"worker {worker} stopped sending heartbeats: it died, or lost the storage"
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


@contextmanager
def trials_read_once(study: optuna.Study) -> Iterator[None]:
    """While in the block, this thread reads the study's trials from one read of the storage.

    TPE with `constant_liar` reads every trial of the study, running ones included, for each parameter
    it samples, bypassing Optuna's per-ask cache (`Study._get_trials(use_cache=False)`); on a database
    storage each read reloads every running trial with its intermediate values and attributes: a stack
    of 10 paid about 9 reads a trial, of 10 running trials each. Sampling one trial in this block reads
    the study once; the trial's own parameters, which the sampler writes as it goes, it filters out of
    what it reads. `Study._get_trials` is what samplers, search spaces and `Study.get_trials` read
    through, so it is replaced for the block, on this study object and for this thread only (a figures
    thread reading the same study reads the storage as before).
    """
    if not _fast_path():
        yield
        return
    owner = threading.get_ident()
    trials = storage_of(study).get_all_trials(study._study_id, deepcopy=False)
    read = study._get_trials

    def get_trials(
        deepcopy: bool = True, states: Container[TrialState] | None = None, use_cache: bool = False
    ) -> list[FrozenTrial]:
        if threading.get_ident() != owner:
            return read(deepcopy, states, use_cache)
        chosen = [t for t in trials if states is None or t.state in states]
        return copy.deepcopy(chosen) if deepcopy else chosen

    study._get_trials = get_trials  # type: ignore[method-assign]
    try:
        yield
    finally:
        del study._get_trials


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
    read back as created. Another thread (the figures thread) reads the storage as before; any other
    storage is read as before. The finished trials it loads it also hands to Optuna's own cache of the
    study, which the command shares with its in-process worker: the figures thread, the summary and the
    export then load none of them again.
    """

    def __init__(self, study: optuna.Study, own: Callable[[], Iterable[optuna.Trial]]) -> None:
        self._study, self._own = study, own
        self._storage = storage_of(study)
        self._backend = _database(study)
        self._owner = threading.get_ident()
        self._finished: dict[int, FrozenTrial] = {}  # by trial id
        self._created: dict[int, FrozenTrial] = {}  # created by this thread, not read back yet
        self._patched = ("get_all_trials", "get_trial", "set_trial_system_attr", "set_trial_user_attr")

    def __enter__(self) -> OwnTrialsRead:
        if self._backend is not None:
            self._before = {name: vars(self._storage).get(name) for name in self._patched}
            read, get, write_system, write_user = (getattr(self._storage, name) for name in self._patched)
            self._storage.get_all_trials = self._reader(read)
            self._storage.get_trial = self._getter(get)
            self._storage.set_trial_system_attr = self._writer(write_system, "set_trial_system_attr")
            self._storage.set_trial_user_attr = self._writer(write_user, "set_trial_user_attr")
            self._backend_before = {"_create_new_trial": vars(self._backend).get("_create_new_trial")}
            self._backend._create_new_trial = self._creator(self._backend._create_new_trial)
        return self

    def __exit__(self, error_type: type[BaseException] | None, *exc: object) -> None:
        if self._backend is not None:
            _restore(self._storage, self._before)
            _restore(self._backend, self._backend_before)
            if error_type is None:  # the trials told since the last read too; after an error, no further query
                from optuna.storages._rdb import models

                states = self._states(models.TrialModel.study_id == self._study._study_id)
                _keep_in_optuna_cache(self._storage, self._study._study_id, states, self._finished)

    def _creator(self, create: Callable[..., FrozenTrial]) -> Callable[..., FrozenTrial]:
        """`study.ask` creates a trial, then reads it back whole (`Trial.__init__`): the trial as
        created is what that read returns (no one else writes to it yet). Not a trial made from a
        template: a WAITING one (a retry) is read when asked, after the ask made it RUNNING."""

        def create_new_trial(study_id: int, template_trial: FrozenTrial | None = None) -> FrozenTrial:
            created = create(study_id, template_trial)
            if template_trial is None and threading.get_ident() == self._owner:
                self._created[created._trial_id] = created
            return created

        return create_new_trial

    def _reader(self, read: Callable[..., list[FrozenTrial]]) -> Callable[..., list[FrozenTrial]]:
        def get_all_trials(
            study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
        ) -> list[FrozenTrial]:
            if threading.get_ident() != self._owner or study_id != self._study._study_id:
                return read(study_id, deepcopy, states)
            chosen = [t for t in self.read() if states is None or t.state in states]
            return copy.deepcopy(chosen) if deepcopy else chosen

        return get_all_trials

    def _getter(self, get: Callable[[int], FrozenTrial]) -> Callable[[int], FrozenTrial]:
        def get_trial(stored_id: int) -> FrozenTrial:
            if threading.get_ident() != self._owner:
                return get(stored_id)
            if stored_id in self._finished:
                return self._finished[stored_id]
            if stored_id in self._created:
                return _snapshot(self._created.pop(stored_id))
            own = next((trial for trial in self._own() if trial._trial_id == stored_id), None)
            if own is not None and self._state(stored_id) == TrialState.RUNNING:
                return _snapshot(own._cached_frozen_trial)
            trial = get(stored_id)
            if trial.state.is_finished():
                self._finished[stored_id] = trial
            return trial

        return get_trial

    def _state(self, stored_id: int) -> TrialState | None:
        from optuna.storages._rdb import models

        return self._states(models.TrialModel.trial_id == stored_id).get(stored_id)

    def _states(self, which: Any) -> dict[int, TrialState]:
        from optuna.storages._rdb.storage import _create_scoped_session

        assert self._backend is not None
        with _create_scoped_session(self._backend.scoped_session) as session:
            return _trial_states(session, which)

    def _writer(self, write: Callable[[int, str, Any], None], name: str) -> Callable[[int, str, Any], None]:
        def set_attr(stored_id: int, key: str, value: Any) -> None:
            write(stored_id, key, value)
            if threading.get_ident() == self._owner:
                for trial in self._own():
                    if trial._trial_id == stored_id:
                        _copy_attr(trial, name, key, value)

        return set_attr

    def read(self) -> list[FrozenTrial]:
        """The study's trials, by number, as the storage holds them now."""
        from optuna.storages._rdb import models

        assert self._backend is not None
        study_id = self._study._study_id
        states = self._states(models.TrialModel.study_id == study_id)
        own = {trial._trial_id: trial for trial in self._own()}
        local = {i: own[i] for i, state in states.items() if i in own and state == TrialState.RUNNING}
        wanted = {i for i in states if i not in self._finished and i not in local}
        # Those wanted, and any trial added since the light query (ids above all it saw, so none of `local`).
        newest = max(states, default=-1)
        loaded = self._backend._get_trials(study_id, None, wanted, newest) if wanted else []
        self._finished.update((t._trial_id, t) for t in loaded if t.state.is_finished())
        _keep_in_optuna_cache(self._storage, study_id, states, self._finished)
        unfinished = [t for t in loaded if not t.state.is_finished()]
        trials = [*self._finished.values(), *unfinished, *(_snapshot(t._cached_frozen_trial) for t in local.values())]
        return sorted(trials, key=lambda t: t.number)


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


_TRIAL_WRITES = ("set_trial_param", "set_trial_user_attr", "set_trial_system_attr")
_together = threading.local()  # .queues: trial id -> the writes its open block holds back


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
    (`OwnTrialsRead`) see them at once, and others see them when the block ends.
    """
    backend = _database(study)
    queues = vars(_together).setdefault("queues", {})
    stored_id = trial._trial_id
    if backend is None or stored_id in queues:
        yield
        return
    storage, owner, queue = storage_of(study), threading.get_ident(), []
    before = {name: vars(storage).get(name) for name in (*_TRIAL_WRITES, "set_study_system_attr")}

    def held_back(name: str, write: Callable[..., None]) -> Callable[..., None]:
        def write_later(trial_id: int, *args: Any) -> None:
            if trial_id != stored_id or threading.get_ident() != owner:
                return write(trial_id, *args)
            queue.append((name, args))
            if name != "set_trial_param":  # as OwnTrialsRead keeps a copy that others wrote to
                _copy_attr(trial, name, *args)
            return None

        return write_later

    write_study_attr = storage.set_study_system_attr

    def study_attr_later(study_id: int, key: str, value: Any) -> None:
        if study_id != study._study_id or threading.get_ident() != owner:
            return write_study_attr(study_id, key, value)
        queue.append(("set_study_system_attr", (key, value)))
        return None

    queues[stored_id] = queue
    for name in _TRIAL_WRITES:
        setattr(storage, name, held_back(name, getattr(storage, name)))
    storage.set_study_system_attr = study_attr_later
    try:
        yield
    finally:
        _restore(storage, before)
        del queues[stored_id]
        if queue:
            _write_all(backend, stored_id, queue)


def _copy_attr(trial: optuna.Trial, write: str, key: str, value: Any) -> None:
    """An attribute written to the storage for `trial` (by `write`), kept on the trial's own copy too."""
    where = {"set_trial_user_attr": "user_attrs", "set_trial_system_attr": "system_attrs"}[write]
    getattr(trial._cached_frozen_trial, where)[key] = value


def _restore(storage: BaseStorage, before: Mapping[str, Any]) -> None:
    """Put back the storage's methods as a block found them (a block inside another keeps the outer one's)."""
    for name, previous in before.items():
        if previous is None:
            vars(storage).pop(name, None)
        else:
            setattr(storage, name, previous)


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
