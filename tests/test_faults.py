"""Faults a long search meets: a journal cut off mid-write, a full disk, two commands on one study, a user's
model that raises, a user's task named by a file rather than the command, a worker gone silent, and runs long
enough that what they keep in memory matters. CLI behaviour is checked on real processes and real storages."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import TINY, running_trial
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

import lrsearch
from lrsearch.base.errors import ConfigError
from lrsearch.engines.lone import MAX_STEP_LRS, train
from lrsearch.engines.stacked_mlp import StackedTrainer
from lrsearch.problem.data import load_data
from lrsearch.problem.schedules import SCHEDULES, Budget
from lrsearch.problem.space import _Namespaced
from lrsearch.problem.spec import DataSpec, ModelSpec, OptimizerSpec, RunSpec, ScheduleSpec
from lrsearch.searching.progress import TrialProgress
from lrsearch.store.optuna_private import fail_stale_trials, trial_id
from lrsearch.store.records import FAIL_REASON, WORKER_ATTR
from lrsearch.store.storage import exclusive_search, open_storage
from lrsearch.trials.budget import BUDGET_ATTR, trials_of_run

LRSEARCH = Path(sys.executable).parent / "lrsearch"


def _config(folder: Path, **study: object) -> Path:
    """The tiny problem as a search config, without the dashboard's pictures."""
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY | {"study": {"figures": False, **study}}))
    return path


def _user_task_config(folder: Path, **study: object) -> Path:
    """A search config for a user's task: the tiny problem's training settings (its data is the task's)."""
    path = folder / "task.yaml"
    path.write_text(yaml.safe_dump({"train": TINY["train"], "study": {"figures": False, **study}}))
    return path


def _lrsearch(*args: object, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LRSEARCH, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def _one_error_line(stderr: str) -> str:
    """The single `Error: ...` line of a command's stderr (and no traceback anywhere)."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, stderr
    return errors[0]


def _journal(path: Path) -> JournalStorage:
    """Optuna's own reader of a journal file (not lrsearch's)."""
    return JournalStorage(JournalFileBackend(str(path)))


def _assert_every_line_is_json(path: Path) -> None:
    *lines, last = path.read_bytes().split(b"\n")
    assert last == b"", f"{path} ends in a partial line: {last[-80:]!r}"
    for line in lines:
        json.loads(line)


# --- journal files -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_journal_cut_off_mid_record_is_repaired_by_the_next_run(tmp_path):
    config = _config(tmp_path)
    first = _lrsearch("optimize", "--config", config, "--storage", "j.log", "--trials", 6, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    journal = tmp_path / "j.log"
    with journal.open("r+b") as file:  # a write cut off: the last record loses its end and its newline
        file.truncate(journal.stat().st_size - 40)
    assert not journal.read_bytes().endswith(b"\n")

    second = _lrsearch("optimize", "--config", config, "--storage", "j.log", "--trials", 3, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "Traceback" not in second.stderr
    assert "dropped an unfinished last record" in second.stderr  # said, not silent
    exported = _lrsearch("export", "--storage", "j.log", "-o", "b.yaml", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert (tmp_path / "b.yaml").exists()

    _assert_every_line_is_json(journal)
    trials = optuna.load_study(study_name="default", storage=_journal(journal)).trials
    assert len(trials) == 9
    assert [t.state.is_finished() for t in trials[6:]] == [True] * 3  # the second run's three


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a 300 KiB file system of its own (tmpfs), for a search to fill."""
    folder = tmp_path / "disk"
    folder.mkdir()
    try:
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(folder)], capture_output=True, text=True
        )
    except FileNotFoundError:
        pytest.skip("no mount command here: cannot make a small file system to fill")
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.slow
def test_a_full_disk_ends_a_journal_search_in_one_line_and_leaves_the_journal_readable(small_disk, tmp_path):
    journal = small_disk / "j.log"
    # About 4 KB a trial: 300 trials need more than the disk has.
    run = _lrsearch("optimize", "--config", _config(tmp_path), "--storage", journal, "--trials", 300, cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    error = _one_error_line(run.stderr)
    assert error.startswith("Error: the study's storage failed: No space left on device"), error

    _assert_every_line_is_json(journal)
    trials = optuna.load_study(study_name="default", storage=_journal(journal)).trials
    assert 0 < len(trials) < 300
    _assert_fate_as_said(error, trials)


def _assert_fate_as_said(error: str, trials: list[optuna.trial.FrozenTrial]) -> None:
    """The error says how many running trials ended FAIL and how many could not be marked failed: the
    storage must show as many of each."""
    ended = re.search(r"(\d+) running trial\(s\) ended FAIL", error)
    stuck = re.search(r"(\d+) running trial\(s\) could not be marked failed", error)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == (int(ended.group(1)) if ended else 0), error
    assert all(t.user_attrs[FAIL_REASON].startswith("the storage failed: ") for t in failed)
    running = [t for t in trials if t.state == TrialState.RUNNING]
    assert len(running) == (int(stuck.group(1)) if stuck else 0), error


@pytest.mark.slow
@pytest.mark.parametrize("stack", ["1", "auto"])
def test_a_full_disk_ends_an_sqlite_search_in_one_line(small_disk, tmp_path, stack):
    url = f"sqlite:///{small_disk}/s.db"
    config = _config(tmp_path)
    run = _lrsearch("optimize", "--config", config, "--storage", url, "--trials", 300, "--stack", stack, cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    error = _one_error_line(run.stderr)
    assert error.startswith("Error: the study's storage failed: database or disk is full"), error

    # Read a copy: opening the full one would need room for SQLite's own files.
    copy = tmp_path / "copy"
    copy.mkdir()
    for file in small_disk.glob("s.db*"):
        if file.is_file():  # not the study's lock folder, s.db.locks
            shutil.copy(file, copy)
    _assert_fate_as_said(error, optuna.load_study(study_name="default", storage=f"sqlite:///{copy}/s.db").trials)


# --- two commands on one study -------------------------------------------------------------------------


@pytest.mark.slow
def test_a_second_search_of_a_running_study_is_refused_and_writes_nothing(tmp_path):
    url = f"sqlite:///{tmp_path}/studies.db"
    config = _config(tmp_path, storage=url)
    # A run of some seconds, so the second arrives while it runs: stacked and pruned, the tiny search now
    # ends within the two seconds the second command takes to start.
    command = ["optimize", "--config", config, "--epochs", 60, "--stack", 1, "--pruner", "none"]
    first = subprocess.Popen(
        [LRSEARCH, *map(str, command + ["--trials", 30])],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    running_trial(url, epochs_done=1)
    budget = optuna.load_study(study_name="default", storage=url).user_attrs[BUDGET_ATTR]

    second = _lrsearch(*command, "--trials", 1, cwd=tmp_path)
    assert second.returncode == 2, second.stdout + second.stderr
    error = _one_error_line(second.stderr)
    assert error.startswith("Error: --study-name: study 'default' is busy: another `lrsearch optimize` is running it")
    assert second.stdout == ""
    assert optuna.load_study(study_name="default", storage=url).user_attrs[BUDGET_ATTR] == budget

    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    trials = optuna.load_study(study_name="default", storage=url).trials
    assert len(trials) == 30 and all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert {t.user_attrs[WORKER_ATTR].rsplit(":", 1)[1] for t in trials} == {str(first.pid)}
    assert "30 trials:" in stdout


@pytest.mark.slow
def test_a_search_of_a_postgres_study_that_another_search_holds_is_refused(postgres_url, tmp_path):
    command = ["optimize", "--config", _config(tmp_path), "--storage", postgres_url, "--trials", 1]
    with exclusive_search(postgres_url, "default"):  # as a running `lrsearch optimize` holds it
        refused = _lrsearch(*command, cwd=tmp_path)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "is busy: another `lrsearch optimize` is running it" in _one_error_line(refused.stderr)
        assert optuna.get_all_study_names(postgres_url) == []  # nothing written
    admitted = _lrsearch(*command, cwd=tmp_path)  # the lock went with its holder
    assert admitted.returncode == 0, admitted.stderr
    assert len(optuna.load_study(study_name="default", storage=postgres_url).trials) == 1


# --- a user's task --------------------------------------------------------------------------------------

_TASK = """
import torch
from torch import nn
from torch.nn import functional as F

import lrsearch


def build():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=generator)
    y = (x[:, 0] > 0).long()
    return lrsearch.Task(model=MODEL, train=(x[:140], y[:140]), val=(x[140:], y[140:]), loss=F.cross_entropy)
"""

# From its third epoch on, the model gives one output for two classes: cross_entropy raises IndexError.
FAILING_TASK = (
    _TASK
    + """

class Shrinking(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2))
        self.evaluations = 0

    def forward(self, x):
        self.evaluations += not self.training  # one evaluation a finished epoch
        out = self.net(x)
        return out[:, :1] if self.training and self.evaluations >= 2 else out


MODEL = Shrinking
"""
)

# Writes a marker file when it is imported: it shows whether lrsearch ran the task's code.
MARKED_TASK = (
    _TASK
    + """
from pathlib import Path

Path(__file__).with_name("imported").write_text("the task's code ran")
MODEL = lambda: nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2))
"""
)


@pytest.mark.slow
def test_a_user_model_raising_an_index_error_fails_its_trials_and_the_run_says_why(tmp_path):
    (tmp_path / "failing.py").write_text(FAILING_TASK)
    url = f"sqlite:///{tmp_path}/s.db"
    config = _user_task_config(tmp_path, storage=url)
    run = _lrsearch("optimize", "--config", config, "--task", "failing.py:build", "--trials", 3, cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    assert _one_error_line(run.stderr) == (
        "Error: none of the 3 trials of this run completed (3 failed, 0 pruned); "
        "the first failure: IndexError: Target 1 is out of bounds."
    )
    trials = optuna.load_study(study_name="failing.build", storage=url).trials
    assert [t.state for t in trials] == [TrialState.FAIL] * 3  # the search went on after the first
    assert all(t.user_attrs[FAIL_REASON].startswith("IndexError: ") for t in trials)
    assert all(len(t.intermediate_values) == 2 for t in trials)  # two epochs reported before it raised


# From its second epoch on, the model reads a file of the user's that is not there.
MISSING_FILE_TASK = (
    _TASK
    + """

class Reading(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2))
        self.evaluations = 0

    def forward(self, x):
        self.evaluations += not self.training
        if self.training and self.evaluations >= 1:
            open("their_data.csv").close()
        return self.net(x)


MODEL = Reading
"""
)


@pytest.mark.slow
@pytest.mark.parametrize("stack", [1, 3], ids=["lone", "stacked"])
def test_a_user_s_missing_file_fails_their_trials_not_the_storage(tmp_path, stack):
    (tmp_path / "reading.py").write_text(MISSING_FILE_TASK)
    url = f"sqlite:///{tmp_path}/s.db"
    config = _user_task_config(tmp_path, storage=url)
    run = _lrsearch(
        "optimize", "--config", config, "--task", "reading.py:build", "--trials", 3, "--stack", stack, cwd=tmp_path
    )
    reason = "FileNotFoundError: [Errno 2] No such file or directory: 'their_data.csv'"
    assert run.returncode == 1 and "storage" not in run.stderr, run.stderr
    assert _one_error_line(run.stderr) == (
        f"Error: none of the 3 trials of this run completed (3 failed, 0 pruned); the first failure: {reason}"
    )
    trials = optuna.load_study(study_name="reading.build", storage=url).trials
    assert [t.state for t in trials] == [TrialState.FAIL] * 3  # the search went on after the first
    assert all(t.user_attrs[FAIL_REASON] == reason for t in trials)
    assert all(len(t.intermediate_values) == 1 for t in trials)  # one epoch reported before it raised


def _write(folder: Path, name: str, content: dict) -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(content))
    return path


# A task named by a file, not by the command: each refused with exit 2 before its code runs.
NOT_NAMED = {
    "train of os:abort": (["train", "--config", "@run_abort"], "os:abort"),
    "train of a file's task": (["train", "--config", "@run_marked"], "marked.py:build"),
    "optimize of a file's task": (["optimize", "--config", "@search_marked"], "marked.py:build"),
}
FILES = {
    "@run_abort": {"data": {"task": "os:abort"}, "epochs": 2},
    "@run_marked": {"data": {"task": "marked.py:build"}, "epochs": 2},
    "@search_marked": {"data": {"task": "marked.py:build"}, "train": {"epochs": 2}, "study": {"trials": 1}},
}


@pytest.mark.parametrize("case", list(NOT_NAMED))
def test_a_task_a_file_names_runs_only_when_the_command_names_it(case, tmp_path):
    (tmp_path / "marked.py").write_text(MARKED_TASK)
    args, task = NOT_NAMED[case]
    args = [str(_write(tmp_path, f"{a[1:]}.yaml", FILES[a])) if a in FILES else a for a in args]
    run = _lrsearch(*args, cwd=tmp_path)
    assert run.returncode == 2, (run.returncode, run.stderr)  # not aborted (-6), not run
    error = _one_error_line(run.stderr)
    assert error.endswith(f"if you trust it, name it on the command: --task {task}"), error
    assert not (tmp_path / "imported").exists()
    assert not (tmp_path / "studies").exists()


@pytest.mark.slow
def test_a_worker_runs_a_study_s_own_task_only_when_named(tmp_path):
    (tmp_path / "marked.py").write_text(MARKED_TASK)
    url = f"sqlite:///{tmp_path}/s.db"
    config = _user_task_config(tmp_path, storage=url)
    made = _lrsearch("optimize", "--config", config, "--task", "marked.py:build", "--trials", 2, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    (tmp_path / "imported").unlink()

    refused = _lrsearch("worker", "--study-name", "marked.build", "--storage", url, cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "--task marked.py:build" in _one_error_line(refused.stderr)
    assert not (tmp_path / "imported").exists()

    named = _lrsearch(
        "worker", "--study-name", "marked.build", "--storage", url, "--task", "marked.py:build", cwd=tmp_path
    )
    assert named.returncode == 0, named.stderr
    assert (tmp_path / "imported").exists()
    assert len(optuna.load_study(study_name="marked.build", storage=url).trials) == 2  # the budget was spent


def test_the_python_api_runs_a_config_file_s_task_only_when_named(tmp_path):
    (tmp_path / "marked.py").write_text(MARKED_TASK)
    task = f"{tmp_path}/marked.py:build"
    study = {"storage": f"sqlite:///{tmp_path}/s.db", "figures": False, "trials": 2}
    config = _write(tmp_path, "cfg.yaml", {"data": {"task": task}, "train": {"epochs": 2}, "study": study})
    with pytest.raises(ConfigError, match=re.escape(f"name it on the command: --task {task}")):
        lrsearch.search(str(config))
    assert not (tmp_path / "imported").exists()

    result = lrsearch.search(str(config), task=task)
    assert (tmp_path / "imported").exists()
    assert len(result.study.trials) == 2 and result.best.data.task == task


# --- a worker gone silent ---------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
@pytest.mark.fast_path
def test_a_trial_whose_worker_went_silent_fails_with_the_reason_and_its_retry_does_not_carry_it(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/s.db", heartbeat=1)
    study = optuna.create_study(study_name="silent", storage=storage)
    trial = study.ask()
    trial.suggest_float("lr", 0.01, 0.1)
    trial.set_user_attr(WORKER_ATTR, "host:123")
    storage.record_heartbeat(trial_id(trial))
    fail_stale_trials(study)
    assert [t.state for t in study.trials] == [TrialState.RUNNING]  # its heartbeat is fresh

    deadline = time.monotonic() + 30
    while len(study.trials) == 1 and time.monotonic() < deadline:  # three missed heartbeats of 1 s, at least
        time.sleep(0.25)
        fail_stale_trials(study)
    failed, retry = study.trials
    assert failed.state == TrialState.FAIL
    assert failed.user_attrs[FAIL_REASON] == "worker host:123 stopped sending heartbeats: it died, or lost the storage"
    assert retry.state == TrialState.WAITING and retry.params == failed.params
    assert FAIL_REASON not in retry.user_attrs
    fail_stale_trials(study)
    assert len(study.trials) == 2  # failed and queued once


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
@pytest.mark.fast_path
def test_a_trial_whose_worker_died_before_its_first_heartbeat_fails_and_is_retried_at_once(tmp_path):
    # A worker asks for a trial and records its first heartbeat under the admission lock; killed in
    # between (a CI run saw a pool torn down there), its trial had no heartbeat to go stale, stayed
    # RUNNING for ever, and every other worker waited for its retry.
    storage = open_storage(f"sqlite:///{tmp_path}/s.db", heartbeat=60)
    study = optuna.create_study(study_name="orphan", storage=storage)
    beating = study.ask()
    storage.record_heartbeat(trial_id(beating))
    orphan = study.ask()
    orphan.suggest_float("lr", 0.01, 0.1)
    orphan.set_user_attr(WORKER_ATTR, "host:123")
    fail_stale_trials(study)  # the next holder of the lock
    states = {t.number: t.state for t in study.trials}
    assert states == {0: TrialState.RUNNING, 1: TrialState.FAIL, 2: TrialState.WAITING}  # no grace period
    failed, retry = study.trials[1:]
    assert failed.user_attrs[FAIL_REASON] == "worker host:123 died before the trial's first heartbeat"
    assert retry.params == failed.params and FAIL_REASON not in retry.user_attrs


# --- what a run counts -------------------------------------------------------------------------------------


def _add(study: optuna.Study, state: TrialState, retry_of: int | None = None) -> None:
    retried = {} if retry_of is None else {"failed_trial": retry_of, "retry_history": [retry_of]}
    value = 1.0 if state == TrialState.COMPLETE else None
    study.add_trial(optuna.create_trial(state=state, value=value, system_attrs=retried))


def test_a_run_counts_a_retried_trial_once_and_not_the_retries_of_older_trials():
    study = optuna.create_study()
    _add(study, TrialState.COMPLETE)  # 0: an earlier run's
    _add(study, TrialState.FAIL)  # 1: an earlier run's, its worker dead
    first = len(study.trials)
    _add(study, TrialState.WAITING, retry_of=1)  # 2: its retry, queued by this run
    _add(study, TrialState.COMPLETE)  # 3
    _add(study, TrialState.FAIL)  # 4: this run's, its worker dead
    _add(study, TrialState.COMPLETE, retry_of=4)  # 5: its retry
    assert [t.number for t in trials_of_run(study.trials, first)] == [3, 5]
    assert [t.number for t in trials_of_run(study.trials, 0)] == [0, 2, 3, 5]


def test_the_progress_bar_never_counts_more_than_its_total_after_a_resume_with_a_stale_trial():
    study = optuna.create_study()
    _add(study, TrialState.COMPLETE)
    _add(study, TrialState.FAIL)  # running when the run began; failed as stale since
    bar = TrialProgress(2, study, before=2)
    steps = [
        (TrialState.COMPLETE, 1),  # the retry of the earlier run's trial
        (TrialState.FAIL, None),  # this run's, its worker died
        (TrialState.COMPLETE, 3),
        (TrialState.COMPLETE, None),
    ]
    shown = []
    for state, retry_of in steps:
        _add(study, state, retry_of)
        bar.refresh()
        shown.append(bar.bar.rich.tasks[0].completed)
    assert shown == [0, 1, 1, 2]
    assert bar.bar.rich.tasks[0].total == 2


# --- memory on long runs -------------------------------------------------------------------------------------


def _one_cycle(epochs: int, batch_size: int) -> RunSpec:
    data = DataSpec(**TINY["data"])
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    steps = -(-int(TINY["data"]["n_samples"] * 0.6) // batch_size)
    params = SCHEDULES["OneCycleLR"].suggest(_Namespaced(trial, "OneCycleLR"), Budget(epochs, steps))
    return RunSpec(
        data=data,
        model=ModelSpec(hidden=4),
        optimizer=OptimizerSpec(name="sgd", momentum=0.9),
        lr=0.05,
        schedule=ScheduleSpec(name="OneCycleLR", params=params),
        epochs=epochs,
        batch_size=batch_size,
    )


# (epochs, batch size, cap): 30 epochs of 120 steps, capped at 2,000 LRs; more epochs than the cap allows
# LRs (a smaller cap, for speed), one LR an epoch.
LONG_RUNS = {"steps over the cap": (30, 2, MAX_STEP_LRS), "epochs over the cap": (40, 32, 25)}


@pytest.mark.parametrize("case", list(LONG_RUNS))
def test_a_per_batch_schedule_keeps_a_bounded_number_of_step_lrs(case, monkeypatch):
    epochs, batch_size, cap = LONG_RUNS[case]
    monkeypatch.setattr("lrsearch.engines.lone.MAX_STEP_LRS", cap)
    spec = _one_cycle(epochs, batch_size)
    data = load_data(spec.data, seed=0)
    steps = data.steps_per_epoch(batch_size)
    assert steps * epochs > cap  # every step would be more than the cap
    alone = train(spec, data).epochs

    trainer = StackedTrainer(data, spec)
    trainer.add("one", spec)
    trainer.add("two", spec.model_copy(update={"lr": 0.02}))
    for _ in range(epochs):
        trainer.train_epoch()
    for records in [alone, *(member.history for member in trainer.members)]:
        kept = [len(record.step_lrs) for record in records]
        assert sum(kept) <= max(cap, epochs) and min(kept) >= 1  # every epoch still has its picture's points
        assert all(record.step_lrs[0] == record.lr for record in records)  # the epoch's first step among them
    assert [r.step_lrs for r in trainer.members[0].history] == [r.step_lrs for r in alone]


def test_a_stack_keeps_only_the_batch_orders_of_the_epochs_its_trials_are_at():
    spec = _one_cycle(60, 32)
    data = load_data(spec.data, seed=0)
    trainer = StackedTrainer(data, spec)
    trainer.add(0, spec)
    held = []
    for epoch in range(60):
        if epoch in (10, 20):  # trials joining later are at other epochs
            trainer.add(epoch, spec)
        trainer.train_epoch()
        held.append(len(trainer._orders))
    assert max(held) <= len(trainer) == 3
    assert held[25] == 3  # one order for each trial's epoch, no more
