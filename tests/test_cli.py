from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
import yaml
from conftest import running_trial
from optuna.trial import TrialState
from typer.testing import CliRunner

from lrsearch.base.paths import file_part
from lrsearch.cli import app
from lrsearch.problem.build import load_run_spec
from lrsearch.store.certificate import CERTIFICATE_ATTR
from lrsearch.store.records import PRUNED_REASON

runner = CliRunner()


def _storage(config_file: Path) -> str:
    return yaml.safe_load(config_file.read_text())["study"]["storage"]


def test_optimize_then_replay_reproduces_the_best_trial(tiny_config_file, tmp_path):
    best_yaml = tmp_path / "best.yaml"
    result = runner.invoke(app, ["optimize", "--config", str(tiny_config_file), "--export", str(best_yaml)])
    assert result.exit_code == 0, result.output
    assert "4 trials:" in result.output and "best trial: #" in result.output and "top " in result.output
    assert f"best run written to {best_yaml}" in result.output
    storage = _storage(tiny_config_file)
    assert f"lrsearch train --config {best_yaml} --study-name default --storage {storage}" in result.output

    study = optuna.load_study(study_name="default", storage=_storage(tiny_config_file))
    assert load_run_spec(best_yaml).model_dump(mode="json") == study.best_trial.user_attrs["run_spec"]

    replay = runner.invoke(app, ["train", "--config", str(best_yaml)])
    assert replay.exit_code == 0, replay.output
    assert re.search(r"^Epoch \[1/4\], Learning Rate: [0-9.e-]+, Train Loss", replay.output, re.M)
    replayed = float(re.search(r"final val loss: ([0-9.]+)", replay.output).group(1))
    assert replayed == pytest.approx(study.best_value, abs=1e-6)
    assert "constant LR" in replay.output and "StepLR(10, 0.1), SGD lr 0.1" in replay.output


def test_an_in_memory_search_names_a_replay_that_needs_no_study(tiny_config_file, tmp_path):
    best_yaml = tmp_path / "best.yaml"
    result = runner.invoke(
        app,
        ["optimize", "--config", str(tiny_config_file), "--storage", "sqlite:///:memory:", "--export", str(best_yaml)],
    )
    assert result.exit_code == 0, result.output
    # The study ends with the command: the replay names none.
    assert f"replay it beside the baselines: lrsearch train --config {best_yaml}\n" in result.output


def test_export_writes_the_best_trial(tiny_config_file, tmp_path):
    runner.invoke(app, ["optimize", "--config", str(tiny_config_file), "--trials", "2"])
    out = tmp_path / "exported.yaml"
    result = runner.invoke(
        app, ["export", "--study-name", "default", "--storage", _storage(tiny_config_file), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="default", storage=_storage(tiny_config_file))
    assert load_run_spec(out).model_dump(mode="json") == study.best_trial.user_attrs["run_spec"]


def test_rerun_resumes_the_study(tiny_config_file):
    for _ in range(2):
        assert runner.invoke(app, ["optimize", "--config", str(tiny_config_file), "--trials", "2"]).exit_code == 0
    assert len(optuna.load_study(study_name="default", storage=_storage(tiny_config_file)).trials) == 4


def test_a_run_whose_trials_were_all_pruned_beside_better_ones_is_no_error(capsys):
    # `optimize --trials 2` on a study: under the quartile both end pruned about half the time.
    from typer import Exit

    from lrsearch.cli import EXIT_FAULT, _fail_if_nothing_completed

    def run(earlier: list[optuna.trial.FrozenTrial], reasons: list[str]) -> optuna.Study:
        study = optuna.create_study()
        for trial in earlier:
            study.add_trial(trial)
        for reason in reasons:
            attrs = {PRUNED_REASON: reason}
            study.add_trial(optuna.trial.create_trial(state=TrialState.PRUNED, user_attrs=attrs))
        return study

    completed = optuna.trial.create_trial(value=0.3, intermediate_values={1: 0.4, 2: 0.3})
    by_pruner = ["pruned at epoch 5 with val loss 0.9", "pruned at epoch 5 with val loss 0.8"]
    _fail_if_nothing_completed(run([completed], by_pruner), before=1)
    assert capsys.readouterr().out.strip() == (
        "the pruner ended all 2 trials of this run: the study's completed trials were better"
    )
    # Nothing completed in the whole study, or a run that diverged: the search found nothing, and says why.
    for earlier, reasons, why in (
        ([], by_pruner, ""),
        ([completed], [by_pruner[0], "diverged: train loss became nan at epoch 2"], "; the first divergence: train"),
    ):
        with pytest.raises(Exit) as ended:
            _fail_if_nothing_completed(run(earlier, reasons), before=len(earlier))
        assert ended.value.exit_code == EXIT_FAULT
        assert f"Error: none of the 2 trials of this run completed (0 failed, 2 pruned){why}" in capsys.readouterr().err


def _bad_yaml(tmp_path: Path, text: str | bytes) -> str:
    path = tmp_path / "bad.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return str(path)


BAD_INPUTS = {
    "unknown sampler": (
        ["optimize", "--sampler", "bayes"],
        "--sampler: Input should be 'tpe', 'random', 'gp' or 'qmc'",
    ),
    "unknown pruner": (["optimize", "--pruner", "asha"], "--pruner: Input should be 'quartile', 'median'"),
    "zero trials": (["optimize", "--trials", "0"], "--trials: Input should be greater than or equal to 1"),
    "negative trials": (["optimize", "--trials", "-4"], "--trials: Input should be greater than or equal to 1"),
    "trials not a number": (["optimize", "--trials", "many"], "Invalid value for '--trials'"),
    "missing config": (["optimize", "--config", "{tmp}/none.yaml"], "none.yaml: cannot read: No such file"),
    "malformed config": (["optimize", "--config", "@malformed"], "not valid YAML at line"),
    "wrong type in config": (["optimize", "--config", "@wrongtype"], "train.epochs: Input should be a valid integer"),
    "unknown schedule in config": (
        ["optimize", "--config", "@schedule"],
        "search.schedules: unknown schedule 'Cosine'",
    ),
    "unreachable storage": (
        ["optimize", "--storage", "postgresql://lrsearch@127.0.0.1:9/none"],
        "--storage: cannot open 'postgresql://lrsearch@127.0.0.1:9/none'",
    ),
    "bad device": (["optimize", "--devices", "tpu"], "--devices: devices must be auto or a list like cpu or cuda:0"),
    "several processes on a private storage": (
        ["optimize", "--jobs", "2", "--storage", "sqlite:///:memory:"],
        "--jobs: worker processes need a storage they share",
    ),
    "no jobs": (["optimize", "--jobs", "0"], "--jobs: Input should be greater than or equal to 1"),
    # A field of two types is one problem, with both ways to mend it (not "and 1 more problem").
    "no stack": (
        ["optimize", "--stack", "0"],
        "--stack: Input should be greater than or equal to 1, or input should be 'auto' (got '0')",
    ),
    "two bad fields": (["optimize", "--stack", "0", "--trials", "0"], "(got 0) (and 1 more problem)"),
    "a number or a range": (["optimize", "--config", "@momentum"], "search.momentum: Input should be a valid number"),
    "worker for a missing study": (
        ["worker", "--study-name", "nope", "--storage", "sqlite:///{tmp}/s.db"],
        "--storage: no study file at",
    ),
    "missing study to export": (["export", "--study-name", "nope"], "--storage: no study file at studies/lrsearch.db"),
    "unknown schedule to replay": (["train", "--config", "@replay"], "schedule.name: unknown schedule 'Cosine'"),
    "config not text": (["optimize", "--config", "@binary"], "bad.yaml: not a text file (UTF-8): byte 1 is 0x96"),
    "replay config not text": (["train", "--config", "@binary"], "bad.yaml: not a text file (UTF-8)"),
    # A misspelt field is the error named (not the required one it leaves missing), with what it meant.
    "misspelt nested field": (
        ["optimize", "--config", "@misspelt"],
        "search.lr.hihg: unknown field, did you mean 'high'? (search.lr takes: low, high, log)",
    ),
    "misspelt field beside a flag": (
        ["optimize", "--config", "@certify_epoch", "--certify"],
        "bad.yaml: study.certify_epoch: unknown field, did you mean 'certify_epochs'?",
    ),
    "misspelt field of a number or a range": (
        ["optimize", "--config", "@momentum_range"],
        "bad.yaml: search.momentum.hihg: unknown field, did you mean 'high'? (search.momentum takes: low, high",
    ),
    "misspelt run field": (["train", "--config", "@epochz"], "epochz: unknown field, did you mean 'epochs'?"),
    "an exported run to search with": (
        ["optimize", "--config", "@exported"],
        "bad.yaml: this is an exported run, not a search config: `lrsearch train --config",
    ),
    "a search config to replay": (
        ["train", "--config", "@searching"],
        "bad.yaml: this is a search config, not an exported run: `lrsearch optimize --config",
    ),
    "schedules for runs of no epochs": (
        ["schedulers", "--epochs", "0"],
        "--epochs: Input should be greater than or equal to 1",
    ),
    "schedules for runs too long": (
        ["schedulers", "--epochs", "2000000"],
        "--epochs: Input should be less than or equal",
    ),
    "replay on an unknown device": (
        ["train", "--config", "@short", "--device", "tpu"],
        "--device: 'tpu' is not a device here; use auto, cpu, cuda or cuda:N",
    ),
}
FILES = {
    "@malformed": "train: {epochs: [1, 2}\n",
    "@wrongtype": "train: {epochs: twenty}\n",
    "@schedule": "search: {schedules: [StepLR, Cosine]}\n",
    "@replay": "schedule: {name: Cosine}\n",
    "@binary": b"a\x96\xff\x00\x81 not UTF-8",
    "@short": "epochs: 1\n",
    "@momentum": "search: {momentum: x}\n",
    "@misspelt": "search: {lr: {low: 1.0e-3, hihg: 0.3}}\n",
    "@certify_epoch": "study: {certify_epoch: 100}\n",
    "@momentum_range": "search: {momentum: {low: 0.1, hihg: 0.9}}\n",
    "@epochz": "lr: 0.1\nepochz: 3\n",
    "@exported": "lr: 0.1\nschedule: {name: StepLR, params: {step_size: 5}}\n",
    "@searching": "train: {epochs: 3}\nsearch: {lr: {low: 0.001}}\n",
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args, message = BAD_INPUTS[case]
    args = [_bad_yaml(tmp_path, FILES[a]) if a in FILES else a.format(tmp=tmp_path) for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and message in errors[0], result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "studies").exists()  # no study file was created


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["optimize", "--devices", "cpu,cuda"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "Error: --devices: cuda is not available here (no CUDA device); use auto or cpu"
    assert not (tmp_path / "studies").exists()


def test_another_problem_leaves_the_stored_study_alone(tiny_config_file):
    assert runner.invoke(app, ["optimize", "--config", str(tiny_config_file), "--trials", "1"]).exit_code == 0
    result = runner.invoke(app, ["optimize", "--config", str(tiny_config_file), "--epochs", "9"])
    assert result.exit_code == 2
    assert "study 'default' was made with train.epochs=4, not 9" in result.stderr
    assert len(optuna.load_study(study_name="default", storage=_storage(tiny_config_file)).trials) == 1


def test_a_search_of_another_task_goes_to_a_study_named_after_it(tiny_config_file, tmp_path, monkeypatch):
    """The README's commands in order: `optimize`, then `optimize --task digits`, neither naming a study."""
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["optimize", "--config", str(tiny_config_file), "--trials", "1"]).exit_code == 0
    other = tmp_path / "other.yaml"
    other.write_text(
        yaml.safe_dump(
            {"data": {"n_samples": 200}, "train": {"epochs": 2}}
            | {"study": yaml.safe_load(tiny_config_file.read_text())["study"]}
        )
    )
    result = runner.invoke(app, ["optimize", "--config", str(other), "--trials", "1", "--task", "moons"])
    assert result.exit_code == 0, result.output
    assert "study 'moons' in" in result.output and (tmp_path / "studies" / "moons-best.yaml").is_file()
    storage = _storage(tiny_config_file)
    assert sorted(optuna.get_all_study_names(storage)) == ["default", "moons"]
    assert optuna.load_study(study_name="moons", storage=storage).trials[0].user_attrs["run_spec"]["data"]["task"] == (
        "moons"
    )


@pytest.mark.parametrize("kind", ["symbolic link", "character device", "FIFO"])
def test_an_export_onto_anything_but_a_regular_file_is_refused_before_the_search(kind, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "target.yaml").write_text("kept")
    (tmp_path / "link.yaml").symlink_to("target.yaml")
    os.mkfifo(tmp_path / "fifo")
    path = {"symbolic link": "link.yaml", "character device": "/dev/null", "FIFO": "fifo"}[kind]
    result = runner.invoke(app, ["optimize", "--export", path, "--trials", "1"])  # a FIFO once blocked here
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"Error: --export: {path} is a {kind}") and result.stderr.count("\n") == 1
    assert not (tmp_path / "studies").exists()  # refused before the search
    assert (tmp_path / "link.yaml").is_symlink() and (tmp_path / "target.yaml").read_text() == "kept"


def test_schedulers_lists_the_registry_with_ranges():
    from lrsearch.problem.schedules import SCHEDULES

    result = runner.invoke(app, ["schedulers", "--epochs", "30"])
    assert result.exit_code == 0
    for name in SCHEDULES:
        assert re.search(rf"^{name}  \(steps every (batch|epoch|epoch on the val loss)\)$", result.output, re.M)
    assert "- step_size in [1, 30]" in result.output


def test_help_does_not_import_torch():
    code = "import sys, lrsearch.cli; sys.exit('torch' in sys.modules or 'optuna' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.slow
def test_installed_command_and_optuna_cli_read_the_same_study(tiny_config_file, tmp_path):
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    lrsearch = Path(sys.executable).parent / "lrsearch"
    run = subprocess.run(
        [lrsearch, "optimize", "--config", tiny_config_file, "--trials", "6", "--study-name", "cli"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "studies" / "cli-best.yaml").exists()
    optuna_cli = Path(sys.executable).parent / "optuna"
    listed = subprocess.run(
        [optuna_cli, "trials", "--study-name", "cli", "--storage", _storage(tiny_config_file), "-f", "yaml"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert len(yaml.safe_load(listed.stdout)) == 6


@pytest.mark.slow
def test_after_a_command_the_study_file_alone_holds_the_whole_study(tiny_config_file, tmp_path):
    # SQLite keeps the last commits in a write-ahead log beside the file until the command closes it.
    lrsearch = Path(sys.executable).parent / "lrsearch"
    command = [
        lrsearch,
        "optimize",
        "--config",
        tiny_config_file,
        "--trials",
        "3",
        "--study-name",
        "whole",
        "--certify",
    ]
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    study_file = Path(_storage(tiny_config_file).removeprefix("sqlite:///"))
    assert not study_file.with_name(study_file.name + "-wal").exists()
    copied = tmp_path / "elsewhere" / "copied.db"
    copied.parent.mkdir()
    copied.write_bytes(study_file.read_bytes())  # the file alone, as a user copies it
    study = optuna.load_study(study_name="whole", storage=f"sqlite:///{copied}")
    assert [trial.state.is_finished() for trial in study.trials] == [True] * 3
    assert CERTIFICATE_ATTR in study.user_attrs  # written last


@pytest.mark.slow
@pytest.mark.parametrize(("jobs", "stack"), [(1, 1), (2, 1), (1, 4)])
def test_ctrl_c_stops_cleanly_and_a_rerun_resumes(tiny_config_file, tmp_path, jobs, stack):
    lrsearch = Path(sys.executable).parent / "lrsearch"
    # Tiny trials of 400 epochs last about a second: long enough for the Ctrl-C to land mid-trial.
    command = [lrsearch, "optimize", "--config", tiny_config_file, "--trials", "500", "--epochs", "400"]
    command += ["--jobs", str(jobs), "--stack", str(stack)]
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().startswith("study 'default'")  # the search has begun
    running_trial(_storage(tiny_config_file), epochs_done=1)
    process.send_signal(signal.SIGINT)  # to the command only; it tells its workers
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted after" in stdout

    study = optuna.load_study(study_name="default", storage=_storage(tiny_config_file))
    states = [t.state for t in study.trials]
    assert 1 <= states.count(TrialState.FAIL) <= jobs * stack and TrialState.RUNNING not in states
    for failed in (t for t in study.trials if t.state == TrialState.FAIL):
        assert failed.user_attrs["fail_reason"].startswith("Interrupted: stopped")

    rerun = subprocess.run(
        command[:4] + ["--trials", "2", "--epochs", "400"], cwd=tmp_path, capture_output=True, text=True
    )
    assert rerun.returncode == 0, rerun.stderr
    assert len(optuna.load_study(study_name="default", storage=_storage(tiny_config_file)).trials) == len(states) + 2


def test_a_worker_s_bad_flag_is_named(tiny_config_file):
    assert runner.invoke(app, ["optimize", "--config", str(tiny_config_file), "--trials", "1"]).exit_code == 0
    result = runner.invoke(app, ["worker", "--storage", _storage(tiny_config_file), "--jobs", "0"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "Error: --jobs: Input should be greater than or equal to 1 (got 0)"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"epochs": 30}, "was searched with train.epochs=4, but the config has 30"),
        ({"seed": 7}, "was searched with seed=0, but the config has 7"),
        ({"data": {"task": "moons"}}, "was searched with data.task='classification', but the config has 'moons'"),
    ],
    ids=["epochs", "seed", "data"],
)
def test_a_replay_of_another_problem_is_not_recorded_in_the_study(tiny_config_file, tmp_path, change, message):
    best_yaml = tmp_path / "best.yaml"
    args = ["optimize", "--config", str(tiny_config_file), "--trials", "1", "--export", str(best_yaml)]
    assert runner.invoke(app, args).exit_code == 0
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump(yaml.safe_load(best_yaml.read_text()) | change))
    storage = _storage(tiny_config_file)
    result = runner.invoke(app, ["train", "--config", str(other), "--study-name", "default", "--storage", storage])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        f"Error: --study-name: study 'default' {message}; a replay must train the study's problem"
    )
    assert "Epoch [" not in result.output  # refused before training
    assert "lrsearch_replay" not in optuna.load_study(study_name="default", storage=storage).user_attrs


def test_a_replay_of_the_study_s_problem_is_recorded(tiny_config_file, tmp_path):
    best_yaml = tmp_path / "best.yaml"
    args = ["optimize", "--config", str(tiny_config_file), "--trials", "1", "--export", str(best_yaml)]
    assert runner.invoke(app, args).exit_code == 0
    storage = _storage(tiny_config_file)
    replay = ["train", "--config", str(best_yaml), "--study-name", "default", "--storage", storage, "--no-baselines"]
    result = runner.invoke(app, replay)
    assert result.exit_code == 0, result.output
    assert "lrsearch_replay" in optuna.load_study(study_name="default", storage=storage).user_attrs


# Each case would have trained, or written outside its folder, before the checks: the tiny problem keeps a
# missed check short. "{tmp}" is the test's folder (also the working directory); "@name" a file of CHECKED_FILES.
CHECKED_BEFORE_ANY_WORK = {
    "study name climbing out": (["optimize", "--study-name", "../../etc/x"], "--study-name: '../../etc/x' would name"),
    "hidden study name": (["optimize", "--study-name", ".x"], "or give --export PATH"),
    "export to a folder": (["optimize", "--export", "{tmp}"], "--export: {tmp} is a folder"),
    "export under a file": (["optimize", "--export", "file.txt/out.yaml"], "--export: cannot write file.txt/out.yaml"),
    "export where no file can go": (["optimize", "--export", "/proc/x/y.yaml"], "--export: cannot write /proc/x"),
    "negative seed": (["optimize", "--seed", "-1"], "--seed: Input should be greater than or equal to 0"),
    "seed past 2**31 - 1": (["optimize", "--seed", "2147483648"], "--seed: Input should be less than or equal to"),
    "infinite lr bound": (["optimize", "--config", "@inf_lr"], "search.lr.high: Input should be a finite number"),
    "nan momentum": (
        ["optimize", "--config", "@nan_momentum"],
        "search.momentum: Input should be a finite number, or input should be a valid dictionary or instance of "
        "Range (got nan)",
    ),
    "negative weight decay": (["optimize", "--config", "@weight_decay"], "search.weight_decay: weight_decay must be"),
    "infinite timeout": (["optimize", "--timeout", "inf"], "--timeout: Input should be a finite number"),
    "pinned unknown schedule": (["optimize", "--config", "@fixed_schedule"], "search.fixed: schedule='Nope' is not"),
    "pinned gamma out of range": (
        ["optimize", "--config", "@fixed_gamma"],
        "search.fixed: StepLR.gamma=5.0 is outside its searched range [0.05, 0.9]",
    ),
    "pinned optimizer not searched": (
        ["optimize", "--config", "@fixed_optimizer"],
        "search.fixed: optimizer='lion' is not one of search.optimizers (sgd)",
    ),
    "pinned momentum not searched": (["optimize", "--config", "@fixed_momentum"], "search.fixed: momentum is not"),
    "export -o to a folder": (["export", "-o", "{tmp}"], "--output: {tmp} is a folder"),
    "export -o under a file": (["export", "-o", "file.txt/best.yaml"], "--output: cannot write file.txt/best.yaml"),
    "report -o under a file": (["report", "-o", "file.txt/r.html", "--png"], "--output: cannot write file.txt/r.html"),
    "replay step size 0": (["train", "--config", "@step_size_0"], "schedule.params: StepLR(step_size=0, gamma=0.5)"),
    "replay nan gamma": (["train", "--config", "@nan_gamma"], "the LR becomes nan in epoch 3"),
    "replay unknown parameter": (["train", "--config", "@unknown_param"], "StepLR has no parameter 'foo'"),
    "replay negative seed": (["train", "--config", "@replay_seed"], "seed: Input should be greater than or equal to 0"),
}
_TINY_YAML = "data: {n_samples: 400, n_features: 8, n_informative: 4}\nmodel: {hidden: 8}\ntrain: {epochs: 2}\n"
_ONE_TRIAL = "study: {trials: 1}\n"
CHECKED_FILES = {
    "@inf_lr": _TINY_YAML + _ONE_TRIAL + "search: {lr: {low: 0.01, high: .inf}}\n",
    "@nan_momentum": _TINY_YAML + _ONE_TRIAL + "search: {momentum: .nan}\n",
    "@weight_decay": _TINY_YAML + _ONE_TRIAL + "search: {weight_decay: -0.1}\n",
    "@fixed_schedule": _TINY_YAML + _ONE_TRIAL + "search: {fixed: {schedule: Nope}}\n",
    "@fixed_gamma": _TINY_YAML + _ONE_TRIAL + "search: {fixed: {StepLR.gamma: 5.0}}\n",
    "@fixed_optimizer": _TINY_YAML + _ONE_TRIAL + "search: {fixed: {optimizer: lion}}\n",
    "@fixed_momentum": _TINY_YAML + _ONE_TRIAL + "search: {fixed: {momentum: 0.5}}\n",
    "@step_size_0": "epochs: 3\nschedule: {name: StepLR, params: {step_size: 0, gamma: 0.5}}\n",
    "@nan_gamma": "epochs: 3\nschedule: {name: StepLR, params: {step_size: 2, gamma: .nan}}\n",
    "@unknown_param": "epochs: 3\nschedule: {name: StepLR, params: {step_size: 2, gamma: 0.5, foo: 1}}\n",
    "@replay_seed": "seed: -1\n",
}


@pytest.mark.parametrize("case", list(CHECKED_BEFORE_ANY_WORK))
def test_checked_before_any_work_one_line_exit_2_nothing_written(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("kept")
    args, message = CHECKED_BEFORE_ANY_WORK[case]
    args = [_checked_file(tmp_path, a) if a in CHECKED_FILES else a.format(tmp=tmp_path) for a in args]
    if args[0] == "optimize" and "--config" not in args:
        args += ["--config", _checked_file(tmp_path, "@tiny")]
    before = sorted(tmp_path.rglob("*"))
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: "), result.stderr
    assert message.format(tmp=tmp_path) in result.stderr and "Traceback" not in result.output
    assert sorted(tmp_path.rglob("*")) == before  # no study, no export, no folder
    assert not Path("/etc/x-best.yaml").exists()


def _checked_file(tmp_path: Path, name: str) -> str:
    path = tmp_path / f"{name[1:]}.yaml"
    path.write_text(CHECKED_FILES.get(name, _TINY_YAML + _ONE_TRIAL))
    return str(path)


def test_commands_that_read_a_study_take_any_stored_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = _checked_file(tmp_path, "@tiny")
    name = "../a/b"
    made = runner.invoke(app, ["optimize", "--config", config, "--study-name", name, "--export", "best.yaml"])
    assert made.exit_code == 0, made.output
    exported = runner.invoke(app, ["export", "--study-name", name, "-o", "again.yaml"])
    assert exported.exit_code == 0, exported.output
    assert load_run_spec(tmp_path / "again.yaml") == load_run_spec(tmp_path / "best.yaml")
    # The lock files are named by a digest, in one folder beside the study file: nothing climbed out.
    studies = tmp_path / "studies"
    folders = sorted(p.name for p in studies.iterdir() if p.is_dir())
    assert not (tmp_path.parent / "a").exists() and folders == ["artifacts", "lrsearch.db.locks"]
    locks = {p.name for p in (studies / "lrsearch.db.locks").iterdir()}
    roles = ("", "\0figures", "\0search")  # admission, figures, the running search
    assert locks == {f"{file_part(name + role)}.lock" for role in roles}
