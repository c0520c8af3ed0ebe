"""Certification at the length a user trains for: every candidate's LR chosen at that length, labels
that name the runs they trained, each run measured at its last and its best val epoch, a line when the
runs overfit, and one answer in the export, the replay and the study."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml
from conftest import TINY
from typer.testing import CliRunner

import lrsearch
from lrsearch.certification.certify import certify, overfit_line
from lrsearch.certification.controls import CLASSIC
from lrsearch.certification.horizon import PILOT, HorizonRule, lr_area
from lrsearch.cli import app
from lrsearch.engines.lone import train
from lrsearch.problem.config import SearchConfig
from lrsearch.problem.data import load_data
from lrsearch.problem.spec import DataSpec, RunSpec, ScheduleSpec
from lrsearch.store.certificate import Candidate

SEARCH_EPOCHS, LONG = 12, 24  # StepLR(10, 0.1) stretched to 24 epochs steps at 20: a run of its own


def _config(tmp_path) -> SearchConfig:
    settings = copy.deepcopy(TINY)
    settings["train"]["epochs"] = SEARCH_EPOCHS
    storage = f"sqlite:///{tmp_path}/long.db"
    return SearchConfig.model_validate(
        settings | {"study": {"storage": storage, "name": "long", "trials": 4, "certify": False, "figures": False}}
    )


@pytest.fixture(scope="module")
def long_certificate(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("long")
    config = _config(tmp_path)
    study = lrsearch.search(config).study
    return study, config, certify(study, config, device=torch.device("cpu"), seeds=2, top=1, epochs=LONG), tmp_path


@pytest.mark.slow
def test_every_label_names_the_run_it_trained(long_certificate):
    _, _, certificate, _ = long_certificate
    runs = {c.label: c.run for c in certificate.candidates}
    assert all(run.epochs == LONG for run in runs.values())
    literal = next(run for label, run in runs.items() if label.startswith("StepLR(10, 0.1), lr"))
    assert literal.schedule.params["step_size"] == 10  # the name's promise, at any length
    stretched = next(run for label, run in runs.items() if label.startswith("StepLR(20, 0.1) (StepLR(10, 0.1)"))
    assert stretched.schedule.params["step_size"] == 20
    searched = [c for c in certificate.candidates if c.kind == "searched"]
    assert searched and all(f"stretched to {LONG} epochs" in c.label for c in searched)
    classic = runs[CLASSIC]
    assert (classic.lr, classic.optimizer.name, classic.optimizer.momentum) == (0.1, "sgd", 0.0)


@pytest.mark.slow
def test_every_lr_is_chosen_at_the_certified_length_among_the_lrs_tried_there(long_certificate):
    _, _, certificate, _ = long_certificate
    swept = certificate.controls + certificate.searched_lrs
    assert len(certificate.searched_lrs) == 1
    for sweep in swept:
        # The pilot is swept at 5 LRs or more; the others start at 3 around what the horizon rule predicts.
        assert sweep.chosen in sweep.lrs and len(sweep.lrs) >= (5 if sweep.name == PILOT else 3)
        finite = {lr: loss for lr, loss in zip(sweep.lrs, sweep.val_losses, strict=True) if loss is not None}
        assert sweep.chosen == min(finite, key=finite.get)
        candidate = next(c for c in certificate.candidates if c.label.startswith(sweep.name + ", lr"))
        assert candidate.run.lr == sweep.chosen and candidate.run.epochs == LONG
    assert certificate.horizon.endswith(f"fitted on {PILOT}") and f"LRs at {LONG} epochs" in certificate.horizon


@pytest.mark.slow
def test_best_epoch_figures_are_the_minimum_of_each_run_s_val_curve(long_certificate):
    _, config, certificate, _ = long_certificate
    data = load_data(config.data, config.study.seed)
    candidate = next(c for c in certificate.candidates if c.diverged is None)
    for i, seed in enumerate(certificate.seeds):
        alone = train(candidate.run.model_copy(update={"seed": seed}), data, evaluate_test=True)
        curve = [epoch.val_loss for epoch in alone.epochs]
        assert candidate.best_val_loss[i] == pytest.approx(min(curve), abs=1e-5)
        assert candidate.best_epoch[i] == curve.index(min(curve)) + 1
        assert candidate.val_loss[i] == pytest.approx(curve[-1], abs=1e-5)
    mean_curve = candidate.val_curve
    assert len(mean_curve) == LONG and mean_curve[-1] == pytest.approx(sum(candidate.val_loss) / 2, abs=1e-5)


def _with_curve(curve: list[float], label: str = "linear decay to zero, lr 0.1") -> Candidate:
    run = lrsearch.RunSpec(epochs=len(curve)).model_dump(mode="json")
    return Candidate(label=label, kind="control", spec=run, val_loss=[curve[-1]] * 2, val_curve=curve)


def test_a_val_curve_that_rises_over_the_last_part_of_the_run_is_said_to_overfit():
    rising = _with_curve([1.0, 0.6, 0.5, 0.45, 0.47, 0.5, 0.55, 0.6, 0.62, 0.65])
    assert rising.overfits() == (4, 0.45, 0.65)
    line = overfit_line([rising], rising.label, "last", 10)
    assert line.startswith("the runs overfit: the recommended run's val loss is lowest at epoch 4 of 10")
    assert "--judge best" in line


@pytest.mark.parametrize(
    "curve",
    [
        [1.0, 0.8, 0.6, 0.5, 0.45, 0.42, 0.41, 0.40, 0.39, 0.38],  # still improving
        [1.0, 0.6, 0.5, 0.45, 0.451, 0.452, 0.45, 0.452, 0.453, 0.455],  # flat: within 2%
        [1.0, 0.8, 0.6, 0.5, 0.45, 0.42, 0.41, 0.40, 0.38, 0.40],  # lowest in the last fifth
    ],
)
def test_a_curve_that_keeps_improving_or_stays_flat_does_not_overfit(curve):
    candidate = _with_curve(curve)
    assert candidate.overfits() is None and overfit_line([candidate], candidate.label, "last", 10) is None


@pytest.mark.slow
def test_export_replay_and_study_agree_on_the_certified_run_and_its_length(long_certificate, monkeypatch):
    study, config, certificate, tmp_path = long_certificate
    monkeypatch.chdir(tmp_path)
    storage = config.study.storage
    runner = CliRunner()
    exported = runner.invoke(app, ["export", "--study-name", "long", "--storage", storage, "-o", "best.yaml"])
    assert exported.exit_code == 0, exported.output
    spec = lrsearch.load_run_spec("best.yaml")
    block = yaml.safe_load((tmp_path / "best.yaml").read_text())["certificate"]
    assert spec == certificate.recommended_candidate.run and spec.epochs == LONG
    assert block["recommended"] == certificate.recommended and block["epochs"] == LONG
    replay = runner.invoke(app, ["train", "--config", "best.yaml", "--study-name", "long", "--storage", storage])
    assert replay.exit_code == 0, replay.output  # the certificate's length is the study's problem too
    controls = [c.label for c in certificate.candidates if c.kind == "control" and c.label != certificate.recommended]
    for label in controls:  # the baselines are the certificate's controls, at their tuned LRs
        assert label[:30] in replay.output
    assert f"{certificate.recommended[:30]}" in replay.output
    stored = study.user_attrs["lrsearch_replay"]
    assert stored["spec"]["epochs"] == LONG and len(stored["runs"]) == len(controls) + 1

    other = spec.model_copy(update={"epochs": LONG + 1})
    (tmp_path / "other.yaml").write_text(other.to_yaml())
    refused = runner.invoke(app, ["train", "--config", "other.yaml", "--study-name", "long", "--storage", storage])
    assert refused.exit_code == 2
    assert f"train.epochs={SEARCH_EPOCHS} (and certified at {LONG}), but the config has {LONG + 1}" in refused.output


def test_a_replay_takes_from_a_certificate_block_only_what_a_control_sets():
    """The exported YAML's certificate block may be hand-edited: a replay's baselines take a control's
    optimizer, LR and schedule from it and nothing else, and none at all once the run's length was edited."""
    from lrsearch.certification.baselines import baseline_specs

    spec = lrsearch.RunSpec(epochs=30)
    control = {"kind": "control", "run": {"lr": 0.01, "schedule": {"name": "none", "params": {}}, "epochs": 30}}
    hostile = control | {"run": control["run"] | {"seed": 99, "data": {"task": "digits"}}}
    block = {"epochs": 30, "recommended": "rec", "candidates": {"constant, lr 0.01": hostile, "rec": control}}
    baselines = baseline_specs(spec, block)
    assert list(baselines) == ["constant, lr 0.01"]  # the recommended one is the replayed run itself
    assert baselines["constant, lr 0.01"] == spec.model_copy(
        update={"lr": 0.01, "schedule": lrsearch.RunSpec().schedule.model_copy(update={"name": "none"})}
    )
    edited = baseline_specs(spec.model_copy(update={"epochs": 40}), block)
    assert list(edited) == ["constant LR (sgd, lr 0.1)", "StepLR(10, 0.1), SGD lr 0.1"]  # no certified controls


def test_the_horizon_rule_moves_each_lr_by_its_own_lr_area():
    # Fitted where the pilot's best LR fell 8x over a 5x longer run: a schedule whose LR area grows 5x
    # moves as far, one whose area hardly grows (the literal StepLR(10, 0.1)) hardly moves.
    rule = HorizonRule.fit(PILOT, short_lr=0.08, long_lr=0.01, area_ratio=5.0)
    assert rule.predict(0.2, 5.0) == pytest.approx(0.025)
    assert rule.predict(0.2, 1.0) == pytest.approx(0.2)
    assert HorizonRule.fit(PILOT, short_lr=0.08, long_lr=0.08, area_ratio=5.0).predict(0.2, 5.0) == 0.2
    run = RunSpec(data=DataSpec(**TINY["data"]), epochs=20, lr=0.1)
    constant = run.model_copy(update={"schedule": ScheduleSpec(name="none")})
    literal = run.model_copy(update={"schedule": ScheduleSpec(name="StepLR", params={"step_size": 10, "gamma": 0.1})})
    longer = {"epochs": 100}
    assert lr_area(constant.model_copy(update=longer)) / lr_area(constant) == pytest.approx(5.0)
    assert lr_area(literal.model_copy(update=longer)) / lr_area(literal) == pytest.approx(1.0, abs=0.02)
    assert lr_area(literal.stretched(100)) / lr_area(literal) == pytest.approx(5.0)
