from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from conftest import TINY
from torch.optim.optimizer import register_optimizer_step_pre_hook
from torch.utils.data import DataLoader

import lrsearch
from lrsearch.base.errors import ConfigError
from lrsearch.engines.lone import train
from lrsearch.engines.stacked_func import stackable
from lrsearch.engines.stacked_mlp import StackedTrainer
from lrsearch.problem.build import load_run_spec
from lrsearch.problem.config import load_config
from lrsearch.problem.data import load_data
from lrsearch.problem.schedules import SCHEDULES, Budget
from lrsearch.problem.space import _Namespaced
from lrsearch.problem.spec import DataSpec, ModelSpec, RunSpec, ScheduleSpec
from lrsearch.problem.tasks import BUILTIN_TASKS
from lrsearch.views.dashboard import trial_pictures

REPO = Path(__file__).parents[2]
LRSEARCH = Path(sys.executable).parent / "lrsearch"


def _small(task: str) -> DataSpec:
    """The task at a size that trains in a blink."""
    return DataSpec(task=task, n_samples=300) if "n_samples" in BUILTIN_TASKS[task].defaults else DataSpec(task=task)


@pytest.mark.parametrize("task", list(BUILTIN_TASKS))
def test_every_built_in_task_trains_a_tiny_trial(task):
    spec = RunSpec(data=_small(task), model=ModelSpec(hidden=8), lr=0.05, epochs=2)
    data = load_data(spec.data, seed=0)
    history = train(spec, data, evaluate_test=True)
    assert len(data.train) > len(data.val) > 0 and len(data.test) > 0
    assert all(math.isfinite(r.val_loss) for r in history.epochs)
    if BUILTIN_TASKS[task].kind == "regression":
        assert data.score == "r2" and data.n_outputs == 1 and history.final.val_score <= 1
        assert data.train.y.dtype == torch.float32 and abs(data.train.y.mean().item()) < 1e-5  # standardized
    else:
        assert data.score == "accuracy" and 0 <= history.final.val_score <= 1
        assert data.n_outputs == len(torch.unique(data.train.y))  # every class is in the train split


def test_the_harder_tasks_are_what_they_say():
    assert load_data(DataSpec(task="many-class"), seed=0).n_outputs == 20
    assert load_data(DataSpec(task="digits"), seed=0).n_features == 64
    moons = load_data(DataSpec(task="moons", noise=0.0), seed=0)
    assert moons.n_features == 2 and moons.n_outputs == 2


def _regression_spec(schedule: str) -> RunSpec:
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask()
    params = SCHEDULES[schedule].suggest(_Namespaced(trial, schedule), Budget(4, 8))
    return RunSpec(
        data=DataSpec(task="regression", n_samples=400, n_features=6, n_informative=4),
        model=ModelSpec(hidden=16),
        lr=0.02,
        schedule=ScheduleSpec(name=schedule, params=params),
        epochs=4,
    )


def test_a_stacked_regression_trial_equals_the_same_trial_alone():
    specs = {name: _regression_spec(name) for name in ("OneCycleLR", "ReduceLROnPlateau", "StepLR")}
    data = load_data(specs["StepLR"].data, seed=0)
    trainer = StackedTrainer(data, specs["StepLR"])
    for name, spec in specs.items():
        trainer.add(name, spec)
    stacked: dict[str, list] = {name: [] for name in specs}
    for _ in range(4):
        for outcome in trainer.train_epoch():
            stacked[outcome.key].append(outcome.record)
    for name, spec in specs.items():
        alone = train(spec, data).epochs
        assert [r.val_loss for r in stacked[name]] == pytest.approx([r.val_loss for r in alone], abs=1e-6)
        assert [r.val_score for r in stacked[name]] == pytest.approx([r.val_score for r in alone], abs=1e-6)


def test_a_setting_the_task_does_not_take_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"task": "digits", "n_samples": 100}}))
    with pytest.raises(ConfigError, match=r"data: n_samples: not a setting of task 'digits'"):
        load_config(path)
    with pytest.raises(ConfigError, match=r"--task: unknown task 'mnist'; choose from classification, "):
        load_config(None, {"data.task": "mnist"})


USER_TASK = """
import sys

import torch
from torch import nn
from torch.nn import functional as F

import lrsearch


def build():
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(240, 5, generator=generator)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return lrsearch.Task(
        model=lambda: nn.Sequential(nn.Linear(5, 12), nn.Tanh(), nn.Linear(12, 2)),
        train=(x[:160], y[:160]),
        val=(x[160:200], y[160:200]),
        test=(x[200:], y[200:]),
        loss=F.cross_entropy,
        score="accuracy",
    )


def not_a_task():
    return {"model": None}


def wrong_outputs():
    task = build()
    return lrsearch.Task(model=lambda: nn.Linear(4, 2), train=task.train, val=task.val, loss=task.loss)


def uneven():
    task = build()
    return lrsearch.Task(model=task.model, train=(task.train[0], task.train[1][:5]), val=task.val, loss=task.loss)


class Rows(torch.utils.data.IterableDataset):
    def __init__(self, x, y):
        self.x, self.y = x, y

    def __iter__(self):
        return zip(self.x, self.y)


def endless():
    task = build()
    train = torch.utils.data.DataLoader(Rows(*task.train), batch_size=16)
    return lrsearch.Task(model=task.model, train=train, val=task.val, loss=task.loss)


def exits():
    sys.exit(3)


def model_exits():
    task = build()
    return lrsearch.Task(model=lambda: sys.exit("no model"), train=task.train, val=task.val, loss=task.loss)
"""


def _run(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LRSEARCH, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_a_user_task_is_searched_exported_and_replayed(tmp_path):
    (tmp_path / "my_models.py").write_text(USER_TASK)
    # Two at a time: the model of one's own is trained by the stacked engine (torch.func), and its winner
    # still replays to the value the search recorded.
    args = ("--task", "my_models:build", "--trials", 5, "--epochs", 4, "--stack", 2, "--no-certify")
    search = _run("optimize", *args, cwd=tmp_path)
    assert search.returncode == 0, search.stderr
    assert "2 trials at once each" in search.stdout
    assert "val accuracy" in search.stdout

    # No study named: it is named after the task.
    study = optuna.load_study(study_name="my_models.build", storage=f"sqlite:///{tmp_path}/studies/lrsearch.db")
    assert len(study.trials) == 5 and study.trials[0].user_attrs["run_spec"]["data"]["task"] == "my_models:build"
    assert all(trial_pictures(study, trial) for trial in study.trials)  # the dashboard shows its trials too
    exported = tmp_path / "studies" / "my_models.build-best.yaml"
    assert load_run_spec(exported).data.task == "my_models:build"
    replay = _run("train", "--config", exported, "--task", "my_models:build", cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr
    assert float(re.search(r"final val loss: ([0-9.]+)", replay.stdout).group(1)) == pytest.approx(
        study.best_value, abs=1e-6
    )
    assert "test split (40 rows)" in replay.stdout


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ("nowhere:build", "Error: --task nowhere:build: cannot import 'nowhere': No module named 'nowhere'"),
        ("my_models:missing", "Error: --task my_models:missing: 'my_models' has no function 'missing'"),
        (
            "my_models:not_a_task",
            "Error: --task my_models:not_a_task: not_a_task() returned dict; "
            "expected lrsearch.Task(model=..., train=..., val=..., loss=...)",
        ),
        ("my_models:uneven", "Error: --task my_models:uneven: Task.train: x has 160 rows and y 5; they must match"),
        (
            "my_models:endless",
            "Error: --task my_models:endless: Task.train: its DataLoader's dataset has no length (an IterableDataset "
            "without __len__); schedules are built for the steps of an epoch: give the dataset a __len__, or pass "
            "(x, y) tensors",
        ),
        ("my_models:exits", "Error: --task my_models:exits: exits() called sys.exit(3)"),
        ("my_models:model_exits", "Error: --task my_models:model_exits: model() called sys.exit('no model')"),
        (
            "my_models:wrong_outputs",
            "Error: --task my_models:wrong_outputs: loss(model(x), y) raised RuntimeError: "
            "mat1 and mat2 shapes cannot be multiplied (2x5 and 4x2)",
        ),
    ],
)
def test_a_broken_user_task_is_one_line_and_writes_nothing(tmp_path, task, message):
    (tmp_path / "my_models.py").write_text(USER_TASK)
    run = _run("optimize", "--task", task, "--trials", 2, cwd=tmp_path)
    assert run.returncode == 2 and run.stderr.strip() == message
    assert not (tmp_path / "studies").exists()


def test_the_example_task_trains_reproducibly_from_its_data_loader():
    spec = RunSpec(data=DataSpec(task=f"{REPO}/studies/my_task.py:build"), lr=0.1, epochs=2)
    data = load_data(spec.data, seed=0)
    assert isinstance(data.train, DataLoader) and not data.stackable
    first, second = train(spec, data), train(spec, data)
    assert first.epochs == second.epochs  # the loader's shuffling follows the run's seed
    assert data.score == "f1" and data.hooks.direction == "maximize"  # its one hook: macro F1, maximised
    assert first.final.val_score > 0.5
    assert stackable(data, spec) is None  # a score is measured outside the stacked forward: it still stacks


def test_the_python_api_searches_and_returns_the_result(tmp_path, capsys):
    config = dict(TINY) | {
        "data": {"n_samples": 400},
        "study": {"storage": f"sqlite:///{tmp_path}/api.db", "name": "api"},
    }
    result = lrsearch.search(config, trials=4, task="moons", stack=2, progress=True)
    assert not result.interrupted and len(result.trials) == 4
    assert "4/4" in capsys.readouterr().out  # the progress bar
    assert set(result.trials["state"]) <= {"COMPLETE", "PRUNED"}
    assert result.trials["value"].min() == pytest.approx(result.best_value)
    assert result.best.data.task == "moons" and result.best == RunSpec.model_validate(
        result.study.best_trial.user_attrs["run_spec"]
    )
    # Certified by default: the export is what the certificate recommends.
    certificate = result.certificate
    assert certificate is not None and certificate.answer_trial == result.best_trial.number
    assert result.export(tmp_path / "best.yaml") == certificate.recommended_candidate.run
    with pytest.raises(ConfigError, match="tirals: not a search setting"):
        lrsearch.search(config, tirals=3)


def test_load_schedule_reproduces_a_trial_s_lr_with_any_optimizer(tmp_path):
    config = dict(TINY) | {"study": {"storage": f"sqlite:///{tmp_path}/s.db", "trials": 6}}
    result = lrsearch.search(config, stack=1)
    for trial in result.study.trials:
        if trial.state != optuna.trial.TrialState.COMPLETE:
            continue
        path = tmp_path / f"trial{trial.number}.yaml"
        RunSpec.model_validate(trial.user_attrs["run_spec"]).save(path)
        schedule = lrsearch.load_schedule(path)
        parameter = torch.zeros(3, requires_grad=True)
        optimizer = torch.optim.AdamW([parameter], lr=123.0)  # another optimizer, another LR
        steps = trial.user_attrs["steps_per_epoch"]
        scheduler = schedule.build(optimizer, steps_per_epoch=steps)
        epoch_lrs = []
        for val_loss in trial.user_attrs["val_loss"]:
            epoch_lrs.append(optimizer.param_groups[0]["lr"])
            for _ in range(steps):
                optimizer.step()
                schedule.after_batch(scheduler)
            schedule.after_epoch(scheduler, val_loss)
        assert epoch_lrs == pytest.approx(trial.user_attrs["lr"], rel=1e-12), schedule


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_load_schedule_steps_every_schedule_as_training_did(tiny_data, tiny_data_spec, name, tmp_path):
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=4)).ask()
    steps = tiny_data.steps_per_epoch(32)
    params = SCHEDULES[name].suggest(_Namespaced(trial, name), Budget(4, steps))
    spec = RunSpec(
        data=tiny_data_spec,
        model=ModelSpec(hidden=8),
        lr=0.1,
        schedule=ScheduleSpec(name=name, params=params),
        epochs=4,
    )
    trained: list[float] = []
    hook = register_optimizer_step_pre_hook(
        lambda optimizer, args, kwargs: trained.append(optimizer.param_groups[0]["lr"])
    )
    try:
        history = train(spec, tiny_data)
    finally:
        hook.remove()
    spec.save(tmp_path / "best.yaml")
    schedule = lrsearch.load_schedule(tmp_path / "best.yaml")
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0, momentum=0.9)
    scheduler = schedule.build(optimizer, steps_per_epoch=steps)
    replayed = []
    for record in history.epochs:
        for _ in range(steps):
            replayed.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            schedule.after_batch(scheduler)
        schedule.after_epoch(scheduler, record.val_loss)
    assert replayed == pytest.approx(trained, rel=1e-12)
    assert schedule.step_on in {"batch", "epoch", "metric"} and name in repr(schedule)
