from __future__ import annotations

import math

import optuna
import pytest

from lrsearch.store.optuna_private import backend_of, storage_of, trials_read_once
from lrsearch.store.storage import open_storage
from lrsearch.trials.samplers import make_sampler


def _sampled(storage_url: str, read_once: bool) -> tuple[list[dict], int]:
    """A TPE (constant liar) study of 24 trials asked three at a time, as a stack asks them: the params
    it sampled, and how often it read all the study's trials while sampling."""
    study = optuna.create_study(storage=open_storage(storage_url), sampler=make_sampler("tpe", 0))
    storage, reads, sampling = storage_of(study), [0], [False]
    storage = getattr(storage, "wrapped", storage)  # the reads of Optuna's storage, behind lrsearch's wrapper
    read = storage.get_all_trials

    def counting(*args, **kwargs):
        reads[0] += sampling[0]
        return read(*args, **kwargs)

    storage.get_all_trials = counting
    while len(study.trials) < 24:
        trials = [study.ask() for _ in range(3)]
        sampling[0] = True
        for trial in trials:  # all three are running while each is sampled
            with trials_read_once(study) if read_once else _nothing():
                trial.suggest_float("x", -5, 5)
                if trial.suggest_categorical("kind", ["a", "b"]) == "a":
                    trial.suggest_float("a", 0, 1)
                trial.suggest_float("y", 1e-3, 1, log=True)
        sampling[0] = False
        for trial in trials:
            study.tell(trial, (trial.params["x"] - 1) ** 2 + trial.params.get("a", 0.5))
    return [t.params for t in study.trials], reads[0]


def _as_optuna_made_it(storage: optuna.storages.BaseStorage) -> None:
    """Nothing patched onto Optuna's live storage (nor onto the database behind its cache), and no mode of
    lrsearch's wrapper around it left open when the blocks have ended."""
    from lrsearch.store.optuna_private import WrappedStorage

    if isinstance(storage, WrappedStorage):
        assert storage.open_modes() == []
        storage = storage.wrapped
    assert not set(WrappedStorage._MODAL) & set(vars(storage))
    assert "_create_new_trial" not in vars(getattr(storage, "_backend", storage))


class _nothing:
    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc: object) -> None:
        pass


@pytest.mark.fast_path
def test_sampling_from_one_read_samples_what_reading_each_time_does(tmp_path):
    every_time, reads_every_time = _sampled(f"sqlite:///{tmp_path}/a.db", read_once=False)
    once, reads_once = _sampled(f"sqlite:///{tmp_path}/b.db", read_once=True)
    assert once == every_time
    assert reads_once == len(once) < reads_every_time  # one read a trial


@pytest.mark.fast_path
def test_the_block_ends_with_the_study_reading_its_storage_again(tmp_path):
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path}/c.db"))
    with trials_read_once(study):
        study.enqueue_trial({"x": 1.0})  # written, but not in the block's read
        assert study.get_trials() == []
    assert len(study.get_trials()) == 1
    assert "_get_trials" not in vars(study)


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "journal", "memory"])
def test_reports_and_attributes_written_together_land_as_one_at_a_time_would(tmp_path, kind, request):
    from lrsearch.store.optuna_private import report_all, set_user_attrs
    from lrsearch.store.storage import open_storage

    url = {"sqlite": f"sqlite:///{tmp_path}/s.db", "journal": str(tmp_path / "j.log"), "memory": None}.get(kind)
    if kind == "postgresql":
        url = request.getfixturevalue("postgres_url")
    study = optuna.create_study(storage=None if url is None else open_storage(url))
    trials = [study.ask() for _ in range(3)]
    report_all(study, [(trial, 1, 0.5 + i) for i, trial in enumerate(trials)])
    report_all(study, [(trials[0], 2, 0.25), (trials[0], 1, 9.0)])  # a step reported again is ignored, as report does
    set_user_attrs(study, trials[1], {"run_spec": {"lr": 0.1}, "device": "cpu"})
    stored = {t.number: t for t in study.get_trials(deepcopy=False)}
    assert stored[0].intermediate_values == {1: 0.5, 2: 0.25} and stored[2].intermediate_values == {1: 2.5}
    assert stored[1].user_attrs == {"run_spec": {"lr": 0.1}, "device": "cpu"}
    assert trials[0].should_prune() is False  # the trial's own copy knows its reports too
    study.tell(trials[0], 0.25)
    assert study.best_trial.intermediate_values == {1: 0.5, 2: 0.25}
    report_all(study, [(trials[2], 2, float("inf")), (trials[2], 3, float("nan"))])  # a diverged epoch's loss
    values = study.get_trials(deepcopy=False)[2].intermediate_values
    assert values[2] == float("inf") and math.isnan(values[3])
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):  # as `report` refuses it
        report_all(study, [(trials[0], 3, 0.1)])
    if url is not None and "://" in url:  # a step another process stored is overwritten, as `report` does
        optuna.storages.RDBStorage(url).set_trial_intermediate_value(trials[1]._trial_id, 4, 1.0)
        report_all(study, [(trials[1], 4, 2.0), (trials[1], 5, 3.0)])
        stored = optuna.storages.RDBStorage(url).get_trial(trials[1]._trial_id).intermediate_values
        assert stored == {1: 1.5, 4: 2.0, 5: 3.0}


@pytest.mark.fast_path
def test_a_worker_reads_the_study_as_stored_without_reloading_its_own_running_trials(tmp_path):
    from lrsearch.store.optuna_private import OwnTrialsRead, report_all

    url = f"sqlite:///{tmp_path}/own.db"
    study = optuna.create_study(study_name="s", storage=open_storage(url))
    other = optuna.load_study(study_name="s", storage=optuna.storages.RDBStorage(url))  # another worker
    mine = [study.ask() for _ in range(3)]
    theirs = [other.ask() for _ in range(2)]
    loads: list[set[int]] = []
    backend = backend_of(study)
    load = backend._get_trials

    def counting(study_id, states, included, greater_than):
        loaded = load(study_id, states, included, greater_than)
        loads.append({t._trial_id for t in loaded})
        return loaded

    backend._get_trials = counting
    with OwnTrialsRead(study, lambda: mine):
        for trial in mine:
            trial.suggest_float("x", 0, 1)
            trial.set_user_attr("worker", "me")
        report_all(study, [(trial, 1, 0.5) for trial in mine])
        storage_of(study).set_trial_system_attr(mine[0]._trial_id, "rung_0", 0.5)  # as pruners write
        theirs[0].report(0.3, 1)
        other.tell(theirs[1], 0.1)
        other.tell(mine[2], state=optuna.trial.TrialState.FAIL)  # ended by another worker: read as stored
        loads.clear()
        mine.append(study.ask())  # read back as created, not loaded
        study.enqueue_trial({"x": 0.25})  # WAITING, as a retried trial is: asked, it is read as RUNNING
        mine.append(study.ask())
        for trial in mine[-2:]:
            assert trial._cached_frozen_trial == optuna.storages.RDBStorage(url).get_trial(trial._trial_id)
        assert mine[-1]._cached_frozen_trial.state == optuna.trial.TrialState.RUNNING
        for _ in range(2):
            assert study.get_trials() == optuna.load_study(study_name="s", storage=url).get_trials()
            fresh = optuna.storages.RDBStorage(url)
            assert [storage_of(study).get_trial(t._trial_id) for t in mine + theirs] == [
                fresh.get_trial(t._trial_id) for t in mine + theirs
            ]
            assert study.get_trials(states=(optuna.trial.TrialState.RUNNING,))[0].system_attrs == {"rung_0": 0.5}
    running_mine = {trial._trial_id for trial in mine[:2] + mine[3:4]}
    assert loads and all(not (ids & running_mine) for ids in loads)
    assert [theirs[1]._trial_id in ids for ids in loads] == [True] + [False] * (len(loads) - 1)  # once finished
    _as_optuna_made_it(storage_of(study))


@pytest.mark.fast_path
def test_a_trial_s_writes_held_together_land_at_the_block_s_end_as_one_at_a_time_would(tmp_path):
    from lrsearch.store.optuna_private import writes_together

    url = f"sqlite:///{tmp_path}/w.db"
    study = optuna.create_study(study_name="s", storage=open_storage(url), sampler=make_sampler("tpe", 0))
    other = optuna.storages.RDBStorage(url)  # what another process sees
    trial, neighbour = study.ask(), study.ask()

    def stored(t: optuna.Trial) -> optuna.trial.FrozenTrial:
        return other.get_trial(t._trial_id)

    storage_of(study).set_study_system_attr(study._study_id, "note:2", "an older note")
    with pytest.raises(RuntimeError, match="model failed"), writes_together(study, trial):
        trial.set_user_attr("worker", "me")
        x = trial.suggest_float("x", 0, 1)
        kind = trial.suggest_categorical("kind", ["a", "b"])
        with writes_together(study, trial):  # joins the block around it
            trial.set_user_attr("run", {"lr": 0.1})
        storage_of(study).set_trial_system_attr(trial._trial_id, "sampler", [1, 2])  # as samplers write
        for key in ("note:1", "note:2"):  # as the trial's dashboard note is written
            storage_of(study).set_study_system_attr(study._study_id, key, f"{key} of trial {trial.number}")
        assert other.get_study_system_attrs(study._study_id) == {"note:2": "an older note"}
        neighbour.set_user_attr("worker", "another")  # another trial's write is not held back
        assert stored(neighbour).user_attrs == {"worker": "another"}
        assert stored(trial).params == {} and stored(trial).user_attrs == {}  # nothing yet, for others
        assert trial.params == {"x": x, "kind": kind}  # the trial's own copy has them at once
        raise RuntimeError("model failed")  # what was written before an error is still stored
    assert stored(trial).params == {"x": x, "kind": kind}
    assert stored(trial).user_attrs == {"worker": "me", "run": {"lr": 0.1}}
    assert stored(trial).system_attrs == {"sampler": [1, 2]}
    assert other.get_study_system_attrs(study._study_id) == {key: f"{key} of trial 0" for key in ("note:1", "note:2")}
    _as_optuna_made_it(storage_of(study))


def test_writes_held_together_on_a_journal_land_as_they_come(tmp_path):
    from lrsearch.store.optuna_private import writes_together

    study = optuna.create_study(storage=open_storage(str(tmp_path / "j.log")))
    trial = study.ask()
    with writes_together(study, trial):
        trial.set_user_attr("worker", "me")
        assert study.get_trials()[0].user_attrs == {"worker": "me"}


@pytest.mark.fast_path
def test_a_parameter_held_back_is_refused_as_optuna_refuses_it_and_nothing_of_the_block_lands(tmp_path):
    from lrsearch.store.optuna_private import writes_together

    url = f"sqlite:///{tmp_path}/p.db"
    study = optuna.create_study(storage=open_storage(url))
    first = study.ask()
    first.suggest_float("x", 0, 1)
    second = study.ask()
    with pytest.raises(ValueError, match="different distribution"), writes_together(study, second):
        second.set_user_attr("worker", "me")
        second.suggest_categorical("x", ["a", "b"])  # x was a float in the study: Optuna refuses this
    stored = optuna.storages.RDBStorage(url).get_trial(second._trial_id)
    assert stored.params == {} and stored.user_attrs == {}


def test_a_worker_s_finished_trials_are_not_loaded_again_by_the_other_readers_of_its_process(tmp_path):
    from lrsearch.store.optuna_private import OwnTrialsRead

    url = f"sqlite:///{tmp_path}/shared.db"
    command = optuna.create_study(study_name="s", storage=open_storage(url))
    worker = optuna.load_study(study_name="s", storage=storage_of(command))  # the command's own worker
    other = optuna.load_study(study_name="s", storage=optuna.storages.RDBStorage(url))  # another process
    assert command.get_trials() == []  # the command's cache of the study exists before the worker's block
    theirs = [other.ask() for _ in range(2)]
    other.tell(theirs[0], 3.0)
    mine: list[optuna.Trial] = []
    with OwnTrialsRead(worker, lambda: mine):
        mine += [worker.ask() for _ in range(3)]
        for trial in mine:
            trial.suggest_float("x", 0, 1)
        worker.tell(mine[0], 1.0)  # its tell reads the finished trial back
        worker.tell(mine[1], state=optuna.trial.TrialState.PRUNED)
        assert len(worker.get_trials()) == 5
        other.tell(theirs[1], 0.5)  # finished by another process after the worker's last read
    loads: list[set[int]] = []
    backend = backend_of(command)
    load = backend._get_trials

    def counting(*args, **kwargs):
        loaded = load(*args, **kwargs)
        loads.append({t._trial_id for t in loaded})
        return loaded

    backend._get_trials = counting
    for _ in range(2):
        assert command.get_trials() == optuna.load_study(study_name="s", storage=url).get_trials()
    assert loads[0] == {mine[2]._trial_id, theirs[1]._trial_id}  # not the finished ones it loaded already
    assert loads[1] == {mine[2]._trial_id}  # the one still running, as Optuna's cache reads it
    assert [storage_of(command).get_trial(t._trial_id) for t in mine + theirs] == [
        optuna.storages.RDBStorage(url).get_trial(t._trial_id) for t in mine + theirs
    ]


@pytest.mark.parametrize("kind", ["sqlite", "journal", "memory"])
def test_a_study_s_backend_is_the_storage_it_was_opened_with(tmp_path, kind):
    from optuna.storages import InMemoryStorage, JournalStorage, RDBStorage

    from lrsearch.store.optuna_private import WrappedStorage, fast_path_on

    url = {"sqlite": f"sqlite:///{tmp_path}/b.db", "journal": str(tmp_path / "b.log"), "memory": "sqlite:///:memory:"}
    storage = open_storage(url[kind])
    study = optuna.create_study(storage=storage)
    made = {"sqlite": RDBStorage, "journal": JournalStorage, "memory": InMemoryStorage}[kind]
    if fast_path_on():  # the study holds lrsearch's wrapper, around the storage Optuna made
        assert isinstance(storage, WrappedStorage) and storage_of(study) is storage
        assert isinstance(backend_of(study), made) and not isinstance(storage, made)
    else:  # nothing of lrsearch's between
        assert backend_of(study) is storage
    assert backend_of(optuna.load_study(study_name=study.study_name, storage=storage)) is backend_of(study)
    assert optuna.load_study(study_name=study.study_name, storage=backend_of(study)).trials == []


@pytest.mark.parametrize(
    ("version", "env", "on"),
    [
        ("5.1.0", None, True),
        ("5.1.7", None, True),
        ("5.2.0", None, False),
        ("6.0.0", None, False),
        ("5.1.0", "0", False),
    ],
)
def test_the_fast_path_runs_only_on_the_optuna_releases_the_suite_ran_it_on(monkeypatch, version, env, on):
    from lrsearch.store.optuna_private import FAST_PATH_ENV, fast_path_on

    monkeypatch.delenv(FAST_PATH_ENV, raising=False)
    if env is not None:
        monkeypatch.setenv(FAST_PATH_ENV, env)
    assert fast_path_on(version) is on


def test_an_unknown_optuna_release_takes_the_public_path_with_one_line_and_stores_the_same(
    monkeypatch, tmp_path, caplog
):
    """A release the suite never ran: nothing of Optuna's tables is written by lrsearch, reports and
    attributes arrive through Optuna's own calls, and the user is told once."""
    from lrsearch.store import optuna_private
    from lrsearch.store.optuna_private import FAST_PATH_ENV, OwnTrialsRead, WrappedStorage, report_all, set_user_attrs

    monkeypatch.delenv(FAST_PATH_ENV, raising=False)
    monkeypatch.setattr(optuna, "__version__", "9.0.0")
    monkeypatch.setattr(optuna_private._fast_path, "said", False, raising=False)
    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 's.db'}"))
    storage = storage_of(study)
    trials = [study.ask() for _ in range(3)]
    with caplog.at_level("WARNING", logger="lrsearch"), OwnTrialsRead(study, lambda: trials):
        assert optuna_private._database(study) is None
        assert not isinstance(storage, WrappedStorage)  # Optuna's own storage, nothing of lrsearch's around it
        _as_optuna_made_it(storage)
        report_all(study, [(trial, 1, float(i)) for i, trial in enumerate(trials)])
        for i, trial in enumerate(trials):
            set_user_attrs(study, trial, {"i": i, "name": f"t{i}"})
    lines = [r.getMessage() for r in caplog.records if "not one lrsearch was tested with" in r.getMessage()]
    assert len(lines) == 1 and "9.0.0" in lines[0]
    stored = optuna.load_study(study_name=study.study_name, storage=f"sqlite:///{tmp_path / 's.db'}").trials
    assert [t.intermediate_values for t in stored] == [{1: 0.0}, {1: 1.0}, {1: 2.0}]
    assert [t.user_attrs for t in stored] == [{"i": i, "name": f"t{i}"} for i in range(3)]
