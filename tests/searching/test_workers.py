from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from conftest import TINY, running_trial
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from lrsearch.problem.config import SearchConfig
from lrsearch.searching.workers import plan_workers
from lrsearch.store.records import FAIL_REASON, WORKER_ATTR
from lrsearch.store.storage import open_storage
from lrsearch.trials.budget import BUDGET_ATTR, add_to_budget, counted_trials, next_move

LRSEARCH = Path(sys.executable).parent / "lrsearch"


def _finished_trial(study: optuna.Study, state: TrialState) -> optuna.trial.FrozenTrial:
    trial = study.ask()
    trial.suggest_float("lr", 0.01, 0.1)
    study.tell(trial, 1.0 if state == TrialState.COMPLETE else None, state=state)
    return study.trials[-1]


def test_a_retry_takes_the_place_of_the_trial_it_retries():
    study = optuna.create_study()
    _finished_trial(study, TrialState.COMPLETE)
    stale = _finished_trial(study, TrialState.FAIL)  # as a dead worker's trial becomes
    assert counted_trials(study.trials) == 2
    RetryHeartbeatStaleTrialCallback(max_retry=3)(study, stale)  # what the heartbeat check does
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.WAITING]
    assert counted_trials(study.trials) == 2
    assert study.trials[2].params == stale.params


def test_next_move_follows_the_budget():
    study = optuna.create_study()
    assert next_move(study, wait_for_running=True) == "run"  # no budget: until the timeout
    assert add_to_budget(study, 2) == 2
    _finished_trial(study, TrialState.COMPLETE)
    assert next_move(study, wait_for_running=True) == "run"
    running = study.ask()
    assert next_move(study, wait_for_running=True) == "wait"  # its worker may die: stay for the retry
    assert next_move(study, wait_for_running=False) == "done"  # journal files have no heartbeat
    study.tell(running, 0.5)
    assert next_move(study, wait_for_running=True) == "done"
    assert add_to_budget(study, 3) == 5 and study.user_attrs[BUDGET_ATTR]["first"] == 2
    assert next_move(study, wait_for_running=True) == "run"


def test_workers_take_devices_in_turn_and_sample_with_their_own_seeds():
    config = SearchConfig.model_validate({"study": {"seed": 5}})  # the one seed a user sets
    devices = [torch.device("cuda", 0), torch.device("cuda", 1)]
    setups = plan_workers(config, jobs=3, devices=devices, joining=False, stop_file=None)
    assert [s.device for s in setups] == ["cuda:0", "cuda:1", "cuda:0"]
    assert [s.sampler_seed for s in setups] == [5, 6, 7]
    joining = plan_workers(config, jobs=2, devices=devices, joining=True, stop_file=None)
    assert [s.sampler_seed for s in joining] == [None, None]


def _config_file(folder: Path, storage: str, **study: object) -> Path:
    path = folder / "search.yaml"
    path.write_text(yaml.safe_dump(TINY | {"study": {"storage": storage, **study}}))
    return path


def _lrsearch(*args: object, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LRSEARCH, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def _assert_exactly(study: optuna.Study, trials: int) -> collections.Counter:
    """Check the study holds exactly `trials` distinct finished trials; count them by worker."""
    assert len(study.trials) == trials
    assert sorted(t.number for t in study.trials) == list(range(trials))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    # Each worker samples with its own seed: no two trials of the search are the same.
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == trials
    assert {t.user_attrs["device"] for t in study.trials} == {"cpu"}
    return collections.Counter(t.user_attrs[WORKER_ATTR] for t in study.trials)


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["sqlite", "journal", "postgresql"])
def test_four_workers_finish_exactly_the_budget(storage, tmp_path, request):
    url = request.getfixturevalue("postgres_url") if storage == "postgresql" else None
    url = url or {"sqlite": f"sqlite:///{tmp_path}/studies.db", "journal": f"{tmp_path}/studies.log"}[storage]
    config = _config_file(tmp_path, url)
    run = _lrsearch("optimize", "--config", config, "--jobs", 4, "--trials", 100, "--devices", "cpu", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr and "locked" not in run.stderr and "[W " not in run.stderr, run.stderr
    assert "4 workers on cpu, cpu, cpu, cpu" in run.stdout
    ran = _assert_exactly(optuna.load_study(study_name="default", storage=open_storage(url)), 100)
    assert len(ran) == 4, ran


@pytest.mark.slow
def test_a_worker_on_another_machine_joins_the_study(postgres_url, tmp_path):
    """The README's two-machine recipe, with two folders standing in for two machines."""
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    config = _config_file(first, postgres_url, trials=40)
    optimize = subprocess.Popen(
        # One trial at a time on machine A, so that its 40 trials outlast machine B's start-up.
        [
            LRSEARCH,
            "optimize",
            "--config",
            config,
            "--epochs",
            "12",
            "--pruner",
            "none",
            "--stack",
            "1",
            "--no-certify",
        ],
        cwd=first,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert optimize.stdout.readline().startswith("study 'default'")  # the study exists now
    joined = _lrsearch("worker", "--storage", postgres_url, "--study-name", "default", "--jobs", 2, cwd=second)
    stdout, stderr = optimize.communicate(timeout=300)
    assert optimize.returncode == 0 and joined.returncode == 0, stderr + joined.stderr
    study = optuna.load_study(study_name="default", storage=postgres_url)
    ran = _assert_exactly(study, 40)
    # Machine A's own process (--jobs 1 runs in it) and machine B's worker both ran trials. Which of B's
    # two processes did is up to timing: one that started late can find the budget spent.
    on_a = {worker for worker in ran if worker.endswith(f":{optimize.pid}")}
    assert len(on_a) == 1 and len(ran) > 1, ran
    # The worker needs no config file; all it writes is its trials' pictures (see `study.artifacts`).
    assert [p.name for p in (second / "studies").iterdir()] == ["artifacts"]


@pytest.mark.slow
@pytest.mark.parametrize("stack", ["1", "3"])  # one trial at a time (Optuna's heartbeat), stacked (ours)
@pytest.mark.fast_path
def test_a_killed_worker_s_trial_is_failed_and_retried(tmp_path, stack):
    url = f"sqlite:///{tmp_path}/studies.db"
    config = _config_file(tmp_path, url, heartbeat=1)
    command = [LRSEARCH, "optimize", "--config", config, "--jobs", 2, "--trials", 6, "--pruner", "none"]
    command += ["--stack", stack]
    command += ["--epochs", "150"]  # trials long enough to be caught mid-way
    process = subprocess.Popen(list(map(str, command)), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    victim = running_trial(url, epochs_done=2)
    os.kill(int(victim.user_attrs[WORKER_ATTR].rsplit(":", 1)[1]), signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr.decode()
    assert b"a worker process died" in stderr

    study = optuna.load_study(study_name="default", storage=url)
    killed = study.trials[victim.number]
    assert killed.state == TrialState.FAIL
    assert killed.user_attrs[FAIL_REASON].startswith(
        f"worker {victim.user_attrs[WORKER_ATTR]} stopped sending heartbeats: "
    )
    retries = [t for t in study.trials if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed.number]
    assert retries and retries[-1].state == TrialState.COMPLETE and retries[-1].params == killed.params
    assert FAIL_REASON not in retries[-1].user_attrs  # its predecessor's reason is not its own
    assert counted_trials(study.trials) == 6
    replaced = {n for t in study.trials for n in RetryHeartbeatStaleTrialCallback.retry_history(t)}
    assert all(t.state == TrialState.COMPLETE for t in study.trials if t.number not in replaced)
