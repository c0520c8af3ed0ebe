"""Certification: intervals as scipy computes them, seeds, the seeds engine, the controls, the verdict,
and a certificate carried through export, train, report and the dashboard."""

from __future__ import annotations

import html
import math
import os
import re
import subprocess
import sys

import numpy as np
import optuna
import pytest
import torch
import yaml
from conftest import TINY
from optuna.trial import TrialState
from scipy import stats
from typer.testing import CliRunner

import lrsearch
from lrsearch.base.stats import mean_interval, paired_difference, t_quantile, t_tail
from lrsearch.certification.certify import _Trainer, _Tunable, certify
from lrsearch.certification.controls import CLASSIC
from lrsearch.certification.race import _p_worse
from lrsearch.certification.verdict import judge
from lrsearch.cli import app
from lrsearch.engines.lone import LoneEngine, train
from lrsearch.engines.seeds import SeedsEngine, fresh_seeds, search_seeds
from lrsearch.engines.stacked_mlp import StackedTrainer
from lrsearch.problem.build import load_run_spec
from lrsearch.problem.config import SearchConfig
from lrsearch.problem.controls import CONTROLS, controls_for, schedule_params
from lrsearch.problem.data import load_data
from lrsearch.problem.lr_walk import best_lr, next_lr
from lrsearch.problem.schedules import SCHEDULES
from lrsearch.problem.spec import CERTIFICATE_KEY, DataSpec, ModelSpec, RunSpec, ScheduleSpec
from lrsearch.searching.study import open_study
from lrsearch.searching.workers import run_here
from lrsearch.store.certificate import CERTIFICATE_ATTR, Candidate, stored_certificate
from lrsearch.store.records import CONTROL_ATTR, RUN_SPEC, TrialRecord
from lrsearch.views.dashboard import best_note
from lrsearch.views.summary import current_certificate, export_best

runner = CliRunner()


# --- intervals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [[0.41, 0.43, 0.40, 0.47, 0.44], [1.0, 3.0], [2.5, 2.4, 2.6]])
def test_the_interval_of_a_mean_is_student_s_t_as_scipy_computes_it(values):
    interval = mean_interval(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert interval.mean == pytest.approx(np.mean(values))
    assert (interval.low, interval.high) == pytest.approx((low, high))
    assert interval.half_width == pytest.approx((high - low) / 2)


def test_a_paired_difference_is_scipy_s_paired_t_interval():
    control, winner = [0.50, 0.52, 0.49, 0.55, 0.51], [0.47, 0.50, 0.47, 0.51, 0.50]
    interval = paired_difference(control, winner)
    expected = stats.ttest_rel(control, winner).confidence_interval(0.95)
    assert (interval.low, interval.high) == pytest.approx((expected.low, expected.high))
    assert interval.excludes_zero() and interval.mean > 0
    # Paired by seed, the shared noise cancels: unpaired, the same numbers are within noise.
    unpaired = stats.ttest_ind(control, winner).confidence_interval(0.95)
    assert unpaired.low < 0 < unpaired.high


@pytest.mark.parametrize("degrees", [1, 2, 9, 1000])
def test_the_t_distribution_is_scipy_s(degrees):
    for probability in (0.5, 0.9, 0.975, 1e-6):
        assert t_quantile(probability, degrees) == pytest.approx(stats.t.ppf(probability, degrees), rel=1e-9)
    for statistic in (-40.0, -1.5, 0.0, 2.2, 1e6):
        assert t_tail(statistic, degrees) == pytest.approx(stats.t.sf(statistic, degrees), rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("n", [2, 3, 10])
def test_the_race_s_p_value_is_scipy_s_one_sided_paired_t_test(n):
    rng = np.random.default_rng(n)
    for _ in range(20):
        losses, leader = rng.normal(0.3, 0.02, n), rng.normal(0.3, 0.02, n)
        expected = stats.ttest_rel(losses, leader, alternative="greater").pvalue
        assert _p_worse(list(losses), list(leader)) == pytest.approx(expected, rel=1e-9)


@pytest.mark.slow
def test_a_certified_search_imports_no_scipy_stats(tiny_config_file, tmp_path):
    # scipy.stats took 0.6 s to import, 5% of the certified default command (base.stats).
    script = """
import runpy, sys
sys.argv = ["lrsearch", "optimize", "--config", sys.argv[1], "--trials", "4", "--certify"]
try:
    runpy.run_module("lrsearch", run_name="__main__")
except SystemExit as end:
    assert not end.code, end.code
print("scipy.stats imported:", "scipy.stats" in sys.modules)
"""
    command = [sys.executable, "-c", script, str(tiny_config_file)]
    env = os.environ | {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    for _ in range(2):  # the first makes the data with scikit-learn, which imports scipy.stats; the second loads it
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    assert "certified:" in done.stdout and done.stdout.strip().splitlines()[-1] == "scipy.stats imported: False"


def test_equal_values_have_a_zero_width_interval_and_one_value_none():
    assert mean_interval([0.3, 0.3, 0.3]).half_width == 0
    assert mean_interval([0.3]).low is None and not mean_interval([0.3]).excludes_zero()
    with pytest.raises(ValueError, match="finite"):
        mean_interval([0.3, math.nan])


# --- seeds -------------------------------------------------------------------------------------


def test_fresh_seeds_are_reproducible_distinct_and_none_the_search_trained_at():
    seeds = fresh_seeds(7, 20, avoid=3)
    assert seeds == fresh_seeds(7, 20, avoid=3) and len(set(seeds)) == 20
    assert not set(seeds) & set(search_seeds(7, 3))
    assert seeds != fresh_seeds(8, 20, avoid=3)
    assert all(0 <= seed < 2**31 for seed in seeds)


@pytest.fixture(scope="module")
def tiny():
    spec = DataSpec(**TINY["data"])
    return load_data(spec, seed=0), spec


def _run(data_spec: DataSpec, schedule: ScheduleSpec, lr: float = 0.1, epochs: int = 4, seed: int = 0) -> RunSpec:
    return RunSpec(data=data_spec, model=ModelSpec(hidden=16), lr=lr, schedule=schedule, epochs=epochs, seed=seed)


@pytest.mark.parametrize("engine", ["stacked", "lone"])
def test_a_trial_at_s_seeds_reports_the_mean_of_s_lone_runs_at_those_seeds(tiny, engine):
    data, data_spec = tiny
    spec = _run(data_spec, ScheduleSpec(name="CosineAnnealingLR", params={"T_max": 4}), seed=5)
    alone = [train(spec.model_copy(update={"seed": seed}), data) for seed in search_seeds(5, 3)]
    inner = StackedTrainer(data, spec) if engine == "stacked" else LoneEngine(data, "cpu")
    seeds = SeedsEngine(inner, 3)
    seeds.add("trial", spec)
    for epoch in range(4):
        (outcome,) = seeds.train_epoch()
        expected = sum(run.epochs[epoch].val_loss for run in alone) / 3
        assert outcome.record.val_loss == pytest.approx(expected, abs=1e-6)
        assert outcome.finished == (epoch == 3)
    # The seeds differ: each is its own draw of initial weights and batch order.
    assert len({run.final.val_loss for run in alone}) == 3
    test_loss, _ = seeds.test("trial")
    lone_tests = [train(spec.model_copy(update={"seed": s}), data, evaluate_test=True).test_loss for s in (5, 6, 7)]
    assert test_loss == pytest.approx(sum(lone_tests) / 3, abs=1e-6)


def test_one_diverging_seed_ends_the_trial_diverged_and_says_which(tiny):
    data, data_spec = tiny
    spec = _run(data_spec, ScheduleSpec(name="none"), lr=1e6)
    seeds = SeedsEngine(StackedTrainer(data, spec), 2)
    seeds.add("trial", spec)
    (outcome,) = seeds.train_epoch()
    assert outcome.record is None and re.search(r"became (nan|inf).*\(seed 1 of 2\)", outcome.diverged)


def test_a_search_at_two_seeds_stores_the_mean_val_loss_of_its_trials(tiny, tmp_path):
    data, _ = tiny
    config = SearchConfig.model_validate(
        # A file of its own: the in-memory storage is one per process, where an earlier test's study may live.
        TINY | {"search": {"seeds_per_trial": 2}, "study": {"storage": f"sqlite:///{tmp_path}/s.db", "pruner": "none"}}
    )
    study = open_study(config)
    from lrsearch.trials.objective import Objective

    run_here(study, Objective(config, data, torch.device("cpu")), 3, stack=3)
    for trial in study.trials:
        spec = RunSpec.model_validate(trial.user_attrs["run_spec"])
        runs = [train(spec.model_copy(update={"seed": seed}), data) for seed in (0, 1)]
        assert trial.value == pytest.approx(sum(r.final.val_loss for r in runs) / 2, abs=1e-6)


# --- stretching schedules ----------------------------------------------------------------------


def _lrs(spec: RunSpec) -> list[float]:
    """The LR at the start of each epoch, stepped as the run steps it (one step an epoch)."""
    from lrsearch.problem.build import LoadedSchedule

    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=spec.lr)
    schedule = LoadedSchedule(spec)
    scheduler = schedule.build(optimizer, steps_per_epoch=1)
    lrs = []
    for _ in range(spec.epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.after_batch(scheduler)
        schedule.after_epoch(scheduler, 1.0)
    return lrs


@pytest.mark.parametrize(
    "schedule",
    [
        ScheduleSpec(name="StepLR", params={"step_size": 5, "gamma": 0.5}),
        ScheduleSpec(name="MultiStepLR", params={"milestones": [5, 15], "gamma": 0.1}),
        ScheduleSpec(name="ExponentialLR", params={"gamma": 0.8}),
        ScheduleSpec(name="CosineAnnealingLR", params={"T_max": 20}),
        ScheduleSpec(name="PolynomialLR", params={"total_iters": 10, "power": 2.0}),
        ScheduleSpec(
            name="WarmupStableDecay",
            params={"warmup_epochs": 2, "warmup_start_factor": 0.1, "decay_epochs": 5, "final_factor": 0.01},
        ),
    ],
    ids=lambda schedule: schedule.name,
)
def test_a_stretched_schedule_keeps_its_shape_over_the_longer_run(schedule):
    spec = RunSpec(schedule=schedule, epochs=20)
    short, long = _lrs(spec), _lrs(spec.stretched(60))
    assert len(long) == 60
    # Every epoch of the short run is where the long run is at three times that epoch.
    assert [long[3 * epoch] for epoch in range(20)] == pytest.approx(short, rel=1e-6)


def test_every_schedule_can_be_stretched_and_still_builds():
    from lrsearch.problem.build import check_schedule
    from lrsearch.problem.schedules import Budget
    from lrsearch.problem.space import _Namespaced

    for name, schedule in SCHEDULES.items():
        trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask()
        params = schedule.suggest(_Namespaced(trial, name), Budget(20, 10))
        for epochs in (7, 20, 200):
            check_schedule(RunSpec(schedule=ScheduleSpec(name=name, params=params), epochs=20).stretched(epochs), 10)


# --- the verdict -------------------------------------------------------------------------------


def _candidate(label: str, kind: str, val: list[float], test: list[float]) -> Candidate:
    return Candidate(label=label, kind=kind, spec=RunSpec().model_dump(mode="json"), val_loss=val, test_loss=test)


def test_a_winner_ahead_on_every_seed_beats_the_control():
    control = _candidate(
        "linear decay to zero, lr 0.1", "control", [0.50, 0.52, 0.49, 0.55, 0.51], [0.6, 0.62, 0.6, 0.64, 0.61]
    )
    winner = _candidate(
        "#3 OneCycleLR, lr 0.2", "searched", [0.45, 0.47, 0.44, 0.50, 0.46], [0.55, 0.57, 0.55, 0.6, 0.56]
    )
    verdict = judge([winner, control])
    assert verdict["verdict"] == "beats" and verdict["recommended"] == winner.label
    best_control = "(linear decay to zero, lr 0.1)"
    assert verdict["sentence"].startswith(f"#3 OneCycleLR, lr 0.2 beats the best control {best_control} by ")
    assert verdict["sentence"].endswith("test loss (95%, 5 seeds)")


def test_a_difference_within_noise_recommends_the_simpler_schedule():
    control = _candidate("constant, lr 0.1", "control", [0.50, 0.40, 0.55, 0.45, 0.50], [0.5, 0.4, 0.55, 0.45, 0.5])
    winner = _candidate("#1 StepLR, lr 0.1", "searched", [0.45, 0.47, 0.52, 0.48, 0.49], [0.45, 0.47, 0.5, 0.48, 0.5])
    verdict = judge([winner, control])
    assert verdict["verdict"] == "within noise" and verdict["recommended"] == control.label
    assert "is not distinguishable from the best control (constant, lr 0.1)" in verdict["sentence"]
    assert verdict["sentence"].endswith("(95%, 5 seeds); the simpler schedule is recommended")
    # Settled by the race for futility: the sentence says why it stopped short of the cap.
    settled = winner.model_copy(update={"raced": "settled after 5 seeds: #1 StepLR, lr 0.1 had a 3% chance ..."})
    assert judge([settled, control])["sentence"].endswith(
        "(95%, 5 seeds; more seeds were unlikely to show it better); the simpler schedule is recommended"
    )


def test_the_winner_is_chosen_on_val_loss_never_on_test_loss():
    better_val = _candidate("#1 a", "searched", [0.40, 0.41, 0.40], [0.9, 0.9, 0.9])
    better_test = _candidate("#2 b", "searched", [0.50, 0.51, 0.50], [0.1, 0.1, 0.1])
    control = _candidate("constant, lr 0.1", "control", [0.70, 0.71, 0.72], [0.5, 0.5, 0.5])
    verdict = judge([better_test, better_val, control])
    assert verdict["winner"] == "#1 a" and verdict["recommended"] == "#1 a"
    # Val says better, test says worse beyond noise: both are said, and nothing calls it noise.
    assert re.search(
        r"on validation loss, but its test loss is 0\.4 ± \S+ higher \(95%, 3 seeds\)$", verdict["sentence"]
    )
    noisy = _candidate("#1 a", "searched", [0.40, 0.41, 0.40], [0.45, 0.55, 0.5])
    assert "is within noise of the control's" in judge([noisy, control])["sentence"]


def test_the_best_control_is_the_race_s_finalist_even_where_a_tied_one_has_a_lower_mean():
    # The race keeps the most robust of the controls within one standard error (`race`), not the lowest mean.
    settled = "settled after 3 seeds: #1 a had a 2% chance ..."
    finalist = _candidate("linear decay to zero, lr 0.05", "control", [0.401, 0.411, 0.421], [0.3, 0.3, 0.3])
    finalist = finalist.model_copy(update={"raced": settled})
    tied = _candidate("constant, lr 0.01", "control", [0.400, 0.410, 0.420], [0.5, 0.5, 0.5])
    tied = tied.model_copy(update={"raced": "within noise of linear decay to zero, lr 0.05 after 3 seeds; ..."})
    winner = _candidate("#1 a", "searched", [0.45, 0.40, 0.44], [0.4, 0.4, 0.4]).model_copy(update={"raced": settled})
    verdict = judge([winner, tied, finalist])
    assert verdict["best_control"] == verdict["recommended"] == finalist.label


def test_a_control_clearly_ahead_is_recommended():
    control = _candidate("linear decay to zero, lr 0.05", "control", [0.40, 0.41, 0.42], [0.40, 0.41, 0.42])
    winner = _candidate("#0 CyclicLR, lr 0.3", "searched", [0.50, 0.52, 0.51], [0.5, 0.52, 0.51])
    verdict = judge([winner, control])
    assert verdict["verdict"] == "control beats" and verdict["recommended"] == control.label


# --- certification of a real study -------------------------------------------------------------


def _config(tmp_path, **study) -> SearchConfig:
    return SearchConfig.model_validate(
        TINY
        | {"study": {"storage": f"sqlite:///{tmp_path}/c.db", "trials": 6, "certify": False, "figures": False} | study}
    )


@pytest.fixture(scope="module")
def certified(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("certified")
    config = _config(tmp_path)
    result = lrsearch.search(config)
    certificate = certify(result.study, config, device=torch.device("cpu"), seeds=3, top=2)
    return result.study, config, certificate


def test_certification_trains_the_top_trials_and_every_control_at_fresh_seeds(certified):
    study, config, certificate = certified
    searched = [c for c in certificate.candidates if c.kind == "searched"]
    controls = [c for c in certificate.candidates if c.kind == "control"]
    assert [c.trial for c in searched][0] == study.best_trial.number == certificate.answer_trial
    # 4 epochs: no StepLR(10, 0.1); the classic recipe besides the tuned controls
    assert len(searched) == 2 and len(controls) == len(controls_for(4)) + 1 == len(CONTROLS)
    assert CLASSIC in {c.label for c in controls}
    assert certificate.seeds == fresh_seeds(config.study.seed, 3, avoid=1)
    for candidate in certificate.candidates:
        assert len(candidate.val_loss) == len(candidate.test_loss) == 3 and candidate.run.seed == config.study.seed
    assert certificate.recommended in {c.label for c in certificate.candidates}
    assert stored_certificate(study) == certificate


def test_a_certificate_says_when_an_lr_was_chosen_at_the_edge_of_the_search_s_range(tmp_path):
    # An LR range far below the tiny problem's best: every control's walk ends at the range's top.
    narrow = {"search": {"lr": {"low": 1e-5, "high": 1e-4}, "schedules": ["StepLR"]}}
    config = SearchConfig.model_validate(_config(tmp_path).model_dump(mode="json") | narrow)
    study = lrsearch.search(config).study
    certificate = certify(study, config, device=torch.device("cpu"), seeds=2, top=1)
    at_top = [t.name for t in certificate.controls if t.chosen == pytest.approx(1e-4)]
    assert at_top and certificate.edge is not None
    assert certificate.edge.startswith(f"at the edge of the search's LR range: {', '.join(at_top)}")
    assert "the range's highest LR, 0.0001" in certificate.edge and "a wider search.lr" in certificate.edge
    assert certificate.summary()["edge"] == certificate.edge


def test_only_lrs_at_an_end_of_the_range_are_named_at_its_edge():
    from lrsearch.certification.certify import edge_line
    from lrsearch.store.certificate import TunedControl

    def tuned(name: str, chosen: float) -> TunedControl:
        return TunedControl(name=name, lrs=[chosen], val_losses=[0.3], chosen=chosen)

    inside = [tuned("constant", 0.01), tuned("StepLR(10, 0.1)", 0.5)]
    assert edge_line(inside, 0.001, 1.0) is None
    line = edge_line([*inside, tuned("linear decay to zero", 0.001), tuned("warmup-stable-decay", 1.0)], 0.001, 1.0)
    assert line == (
        "at the edge of the search's LR range: linear decay to zero chose the range's lowest LR, 0.001; "
        "warmup-stable-decay chose the range's highest LR, 1; a wider search.lr may find a better LR"
    )


def test_each_control_is_tuned_to_the_best_lr_it_tried(certified):
    study, config, certificate = certified
    low, high = config.search.lr.low, config.search.lr.high
    ran = [TrialRecord.of(t).spec.schedule for t in study.get_trials(states=(TrialState.COMPLETE,))]
    for control in certificate.controls:
        losses = dict(zip(control.lrs, control.val_losses, strict=True))
        assert control.chosen == best_lr(losses)  # the lowest val loss a step below any cliff
        # A control no trial of the search ran starts from 5 LRs; one a searched trial ran, from that trial.
        assert len(control.lrs) >= (3 if CONTROLS[control.name](config.train.epochs) in ran else 5)
        # Its best LR is not at an edge of what it tried, unless the edge is the search's or the cap.
        assert next_lr(control.lrs, control.chosen, low, high) is None or len(control.lrs) == 9
        label = next(c for c in certificate.candidates if c.kind == "control" and c.label.startswith(control.name))
        assert label.run.lr == control.chosen


FIRST_SEEDS_HERE = (101, 102)


def _walk_once(tiny, tmp_path, tried: dict[float, float], short_lr: float | None = None):
    """Tune a constant-LR control whose walk so far is `tried`, each tuned LR's race seeds queued as
    certification queues them; the trainer, the walk and the labels heard."""
    data, data_spec = tiny
    trainer = _Trainer(_config(tmp_path), data, torch.device("cpu"), None)
    constant = _Tunable(
        "constant", None, lambda lr: _run(data_spec, ScheduleSpec(name="none"), lr=lr), [], tried, short_lr=short_lr
    )
    heard = []

    def start_racing(label: str, spec: RunSpec) -> None:
        heard.append(label)
        runs = {(label, seed): spec.model_copy(update={"seed": seed}) for seed in FIRST_SEEDS_HERE}
        trainer.beside_next_round(runs)

    tuned, chosen = trainer.tune([constant], [0], on_chosen=start_racing)
    return trainer, constant, tuned[0], list(chosen), heard


def test_an_open_walk_s_best_lr_races_beside_its_next_step(tiny, tmp_path):
    # Where the step does not move the best LR, that LR's race seeds trained in the step's own round: a
    # round with nothing of its own then trains nothing.
    trainer, constant, tuned, chosen, _ = _walk_once(tiny, tmp_path, {0.025: 5.0, 0.05: 1e-9})  # no run is that good
    label = constant.label(0.05)
    assert tuned.lrs == [0.025, 0.05, 0.1] and chosen == [label]  # one step, and the best stayed
    assert {(label, seed) for seed in FIRST_SEEDS_HERE} <= set(trainer.raced_results)
    trained = trainer.trained
    assert trainer.train_round({}, tested=set()) == {} and trainer.trained == trained


def test_a_step_that_moves_the_best_lr_races_the_new_one(tiny, tmp_path):
    trainer, constant, tuned, chosen, heard = _walk_once(tiny, tmp_path, {0.0125: 50.0, 0.025: 40.0})
    assert tuned.chosen != 0.025 and chosen == [constant.label(tuned.chosen)]
    assert heard[0] == constant.label(0.025)  # raced ahead, and trained for nothing
    trainer.train_round({}, tested=set())
    assert {(chosen[0], seed) for seed in FIRST_SEEDS_HERE} <= set(trainer.raced_results)


def test_at_another_length_nothing_races_ahead_of_a_walk(tiny, tmp_path):
    # There a walk starts from a prediction and moves: racing ahead of it wasted run-epochs (`_walk`).
    trainer, constant, tuned, chosen, heard = _walk_once(tiny, tmp_path, {0.025: 5.0, 0.05: 1e-9}, short_lr=0.05)
    assert heard == chosen == [constant.label(0.05)]  # heard once, when chosen
    assert not {key for key in trainer.raced_results if key[0] == chosen[0]}  # its seeds wait for the next round


def test_a_control_s_figures_are_its_own_runs_at_each_fresh_seed(certified):
    _, config, certificate = certified
    data = load_data(config.data, config.study.seed)
    control = next(c for c in certificate.candidates if c.kind == "control")
    for seed, val_loss, test_loss in zip(certificate.seeds, control.val_loss, control.test_loss, strict=True):
        alone = train(control.run.model_copy(update={"seed": seed}), data, evaluate_test=True)
        assert alone.final.val_loss == pytest.approx(val_loss, abs=1e-5)
        assert alone.test_loss == pytest.approx(test_loss, abs=1e-5)


def test_certification_is_reproducible(certified):
    study, config, certificate = certified
    again = certify(study, config, device=torch.device("cpu"), seeds=3, top=2)
    assert [c.model_dump() for c in again.candidates] == [c.model_dump() for c in certificate.candidates]
    assert again.sentence == certificate.sentence


def test_certify_at_a_longer_length_stretches_every_schedule(certified, tmp_path):
    study, config, _ = certified
    stretched = certify(study, config, device=torch.device("cpu"), seeds=2, top=1, epochs=8)
    assert stretched.epochs == 8 and stretched.search_epochs == 4
    best = RunSpec.model_validate(study.best_trial.user_attrs["run_spec"])
    searched = next(c for c in stretched.candidates if c.kind == "searched")
    # Stretched, at the LR its sweep chose at 8 epochs.
    assert searched.run == best.stretched(8).model_copy(update={"lr": stretched.searched_lrs[0].chosen})
    assert all(c.run.epochs == 8 for c in stretched.candidates)
    # The exported run is at the certified length, and `load_schedule(..., stretch_to=)` stretches the same way.
    path = tmp_path / "best.yaml"
    exported = export_best(study, path)
    assert exported.epochs == 8
    short = tmp_path / "short.yaml"
    best.save(short)
    with pytest.warns(UserWarning, match="chosen at 4"):
        assert lrsearch.load_schedule(short, stretch_to=8).spec == best.stretched(8)
    study.set_user_attr(CERTIFICATE_ATTR, _.model_dump(mode="json"))  # leave the module's certificate in place


def test_a_stale_or_unreadable_certificate_is_not_used(certified, tmp_path):
    study, _, certificate = certified
    try:
        study.set_user_attr(CERTIFICATE_ATTR, certificate.model_dump(mode="json") | {"answer_trial": 10_000})
        assert current_certificate(study) is None
        text = (export_best(study, tmp_path / "stale.yaml"), (tmp_path / "stale.yaml").read_text())[1]
        assert "not certified" in text and CERTIFICATE_KEY not in yaml.safe_load(text)
        for forged in (
            {"seeds": "many"},
            certificate.model_dump(mode="json")
            | {"candidates": [{"label": "x", "kind": "control", "spec": {}, "val_loss": []}]},
            certificate.model_dump(mode="json")
            | {"candidates": [{"label": "x", "kind": "control", "spec": {"lr": -1}, "val_loss": [0.1]}]},
            # An LR sweep whose chosen LR it never tried, or with a loss missing: the report would fail on it.
            certificate.model_dump(mode="json")
            | {"controls": [{"name": "c", "lrs": [0.1, 0.2], "val_losses": [0.5, 0.4], "chosen": 0.3}]},
            certificate.model_dump(mode="json")
            | {"controls": [{"name": "c", "lrs": [0.1, 0.2], "val_losses": [0.5], "chosen": 0.1}]},
            certificate.model_dump(mode="json")
            | {"controls": [{"name": "c", "lrs": [0.1], "val_losses": [None], "chosen": 0.1}]},
        ):
            study.set_user_attr(CERTIFICATE_ATTR, forged)
            assert "unreadable" in stored_certificate(study) and current_certificate(study) is None
    finally:
        study.set_user_attr(CERTIFICATE_ATTR, certificate.model_dump(mode="json"))


def test_a_control_trial_best_in_the_study_keeps_the_certificate_current(certified, tmp_path):
    """A certificate answers for the best searched trial; a control trial ahead of it (a tuned control
    often is) is certified as its control, so export, the dashboard's note and the report still say the
    recommendation. A better searched trial makes the certificate stale."""
    study, config, certificate = certified
    storage = optuna.storages.InMemoryStorage()
    optuna.copy_study(from_study_name=study.study_name, from_storage=config.study.storage, to_storage=storage)
    copy = optuna.load_study(study_name=study.study_name, storage=storage)
    best = copy.best_trial

    def add(value: float, attrs: dict) -> None:
        copy.add_trial(
            optuna.trial.create_trial(
                params=best.params,
                distributions=best.distributions,
                value=value,
                intermediate_values=best.intermediate_values,
                user_attrs=best.user_attrs | attrs,
            )
        )

    add(best.value / 2, {CONTROL_ATTR: "constant"})
    assert TrialRecord.of(copy.best_trial).control == "constant"
    assert current_certificate(copy) == certificate
    exported = yaml.safe_load((export_best(copy, tmp_path / "best.yaml"), (tmp_path / "best.yaml").read_text())[1])
    assert exported[CERTIFICATE_KEY]["recommended"] == certificate.recommended
    assert best_note(copy, copy.get_trials()).startswith(f"## Recommended: {certificate.recommended}")

    add(best.value / 4, {})  # a better searched trial: the certificate no longer answers for the search
    assert current_certificate(copy) is None
    assert best_note(copy, copy.get_trials()).startswith("## Best schedule so far")


def test_a_control_trial_of_a_control_no_longer_raced_is_neither_answer_nor_candidate(certified):
    """A study searched while cosine to zero was a control keeps its control trials: certified again,
    they answer for nothing and race as nothing (`problem.controls` says why cosine left)."""
    study, config, _ = certified
    storage = optuna.storages.InMemoryStorage()
    optuna.copy_study(from_study_name=study.study_name, from_storage=config.study.storage, to_storage=storage)
    copy = optuna.load_study(study_name=study.study_name, storage=storage)
    best = copy.best_trial
    epochs = config.train.epochs
    cosine = best.params | schedule_params(ScheduleSpec(name="CosineAnnealingLR", params={"T_max": epochs}))
    run = TrialRecord.of(best).spec.model_copy(
        update={"schedule": ScheduleSpec(name="CosineAnnealingLR", params={"T_max": epochs})}
    )
    copy.add_trial(
        optuna.trial.create_trial(
            params={key: value for key, value in cosine.items() if key in best.distributions},
            distributions=best.distributions,
            value=best.value / 2,
            intermediate_values=best.intermediate_values,
            user_attrs=best.user_attrs | {CONTROL_ATTR: "cosine to zero", RUN_SPEC: run.model_dump(mode="json")},
        )
    )
    again = certify(copy, config, device=torch.device("cpu"), seeds=3, top=1)
    assert again.answer_trial == best.number  # not the cosine trial, better as it is
    assert [c.trial for c in again.candidates if c.kind == "searched"] == [best.number]


# --- end to end --------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_certificate_survives_export_train_report_and_the_dashboard(tiny_config_file, tmp_path):
    storage = yaml.safe_load(tiny_config_file.read_text())["study"]["storage"]
    best_yaml = tmp_path / "best.yaml"
    result = runner.invoke(
        app, ["optimize", "--config", str(tiny_config_file), "--trials", "6", "--certify", "--export", str(best_yaml)]
    )
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="default", storage=storage)
    certificate = current_certificate(study)
    assert certificate is not None and certificate.sentence in result.output
    assert f"recommended: {certificate.recommended}" in result.output
    # By default the search's answer alone is raced beside the controls (`config.CERTIFY_TOP`).
    assert [c.trial for c in certificate.candidates if c.kind == "searched"] == [certificate.answer_trial]
    assert f"recommended run written to {best_yaml}" in result.output

    exported = yaml.safe_load(best_yaml.read_text())
    assert exported[CERTIFICATE_KEY]["sentence"] == certificate.sentence
    assert exported[CERTIFICATE_KEY]["recommended"] == certificate.recommended
    assert load_run_spec(best_yaml) == certificate.recommended_candidate.run  # the block is not part of the run
    assert lrsearch.load_schedule(best_yaml).name == certificate.recommended_candidate.run.schedule.name

    replay = runner.invoke(app, ["train", "--config", str(best_yaml), "--study-name", "default", "--storage", storage])
    assert replay.exit_code == 0, replay.output

    report = tmp_path / "report.html"
    assert runner.invoke(app, ["report", "--storage", storage, "-o", str(report)]).exit_code == 0
    page = report.read_text()
    assert 'id="certificate"' in page and "Stale" not in page
    assert html.escape(certificate.sentence) in page and 'id="baselines"' in page

    from optuna_dashboard import get_note

    assert get_note(study).startswith(f"## Recommended: {certificate.recommended}")
    import json

    import plotly.graph_objects as go
    from optuna_dashboard._custom_plot_data import get_plotly_graph_objects

    stored = get_plotly_graph_objects(study._storage.get_study_system_attrs(study._study_id))
    figure = json.loads(stored["certificate"])
    go.Figure(figure)  # a figure plotly's own objects accept
    shown = [c for c in certificate.ranked if c.shown_losses is not None]
    assert [trace["name"] for trace in figure["data"][::2]] == [
        c.label + (" (recommended)" if c.label == certificate.recommended else "") for c in shown
    ]
    assert [len(trace["x"]) for trace in figure["data"][::2]] == [len(c.shown_losses) for c in shown]

    # `lrsearch certify` on the stored study certifies again, at other settings, and says so.
    again = runner.invoke(
        app, ["certify", "--storage", storage, "--fresh-seeds", "2", "--top", "2", "--export", str(best_yaml)]
    )
    assert again.exit_code == 0, again.output
    assert "at 2 fresh seeds" in again.output and current_certificate(study).seeds == fresh_seeds(0, 2, avoid=1)
    assert sum(c.kind == "searched" for c in current_certificate(study).candidates) == 2  # the 2 best trials
    # The old name of the count still works, and says it was renamed.
    old = runner.invoke(
        app, ["certify", "--storage", storage, "--seeds", "2", "--top", "1", "--export", str(best_yaml)]
    )
    assert old.exit_code == 0 and "--seeds is now --fresh-seeds" in old.output and "at 2 fresh seeds" in old.output


def test_the_length_a_study_keeps_is_its_certificate_s_when_that_is_not_the_search_s(certified):
    from lrsearch.store.certificate import kept_length

    study, _, certificate = certified
    try:
        assert certificate.epochs == certificate.search_epochs and kept_length(study) is None
        study.set_user_attr(CERTIFICATE_ATTR, certificate.model_dump(mode="json") | {"epochs": 8})
        assert kept_length(study) == 8
        # A stored length is trained at: one out of range makes the certificate unreadable, and keeps nothing.
        study.set_user_attr(CERTIFICATE_ATTR, certificate.model_dump(mode="json") | {"epochs": 10**9})
        assert isinstance(stored_certificate(study), str) and kept_length(study) is None
    finally:
        study.set_user_attr(CERTIFICATE_ATTR, certificate.model_dump(mode="json"))


@pytest.mark.slow
def test_a_study_certified_at_a_length_is_certified_at_it_again_until_another_is_given(tiny_config_file):
    storage = yaml.safe_load(tiny_config_file.read_text())["study"]["storage"]
    search = ["optimize", "--config", str(tiny_config_file), "--certify"]
    first = runner.invoke(app, [*search, "--trials", "4", "--certify-epochs", "6"])
    assert first.exit_code == 0, first.output
    study = optuna.load_study(study_name="default", storage=storage)
    assert stored_certificate(study).epochs == 6
    # More trials, no length given: the study is certified at 6 again, and the command says so.
    more = runner.invoke(app, [*search, "--trials", "2"])
    assert more.exit_code == 0, more.output
    assert "certifying at 6 epochs, the length this study was last certified at" in more.output
    assert "(--certify-epochs N chooses another; the search's is 4)" in more.output
    assert f"recommended: {stored_certificate(study).recommended}, 6 epochs" in more.output
    # A length given chooses: the search's own.
    again = runner.invoke(app, ["certify", "--storage", storage, "--epochs", "4", "--fresh-seeds", "2"])
    assert again.exit_code == 0, again.output
    assert "the length this study was last certified at" not in again.output
    assert stored_certificate(study).epochs == 4
    # Back at the search's length, a plain certify stays there.
    plain = runner.invoke(app, ["certify", "--storage", storage, "--fresh-seeds", "2"])
    assert plain.exit_code == 0 and "last certified at" not in plain.output
    assert stored_certificate(study).epochs == 4


def test_bad_certification_settings_are_one_line_and_exit_2(tiny_config_file):
    storage = yaml.safe_load(tiny_config_file.read_text())["study"]["storage"]
    cases = [
        (["certify", "--storage", storage], "no study file"),
        (["optimize", "--config", str(tiny_config_file), "--seeds-per-trial", "0"], "--seeds-per-trial"),
        (["optimize", "--config", str(tiny_config_file), "--seeds-per-trial", "11"], "--seeds-per-trial"),
        (["optimize", "--config", str(tiny_config_file), "--seeds", "11"], "--seeds-per-trial"),  # the old name
    ]
    for args, expected in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and expected in result.output, result.output
    result = runner.invoke(app, ["certify", "--fresh-seeds", "1"])
    assert result.exit_code == 2 and "--fresh-seeds" in result.output


def test_certify_names_a_stored_study_s_own_task_before_running_it(tmp_path):
    module = tmp_path / "mine.py"
    module.write_text("raise SystemExit('imported')\n")
    config = _config(tmp_path)
    study = open_study(config)
    study.set_user_attr("lrsearch_config", study.user_attrs["lrsearch_config"] | {"data": {"task": f"{module}:build"}})
    result = runner.invoke(app, ["certify", "--storage", config.study.storage])
    assert result.exit_code == 2 and f"name it on the command: --task {module}:build" in result.output


def test_a_stored_certificate_s_text_is_escaped_in_the_report(certified, tmp_path):
    from lrsearch.views.report_page import sections, write_html

    study, _, certificate = certified
    hostile = "<img src=x onerror=alert(1)>"
    candidates = [c.model_copy(update={"label": hostile + c.label}) for c in certificate.candidates]
    forged = certificate.model_copy(
        update={"candidates": candidates, "sentence": hostile, "recommended": candidates[0].label, "device": hostile}
    )
    try:
        study.set_user_attr(CERTIFICATE_ATTR, forged.model_dump(mode="json"))
        path = tmp_path / "report.html"
        write_html(study, [draw() for draw in sections(study)], path)
        page = path.read_text()
        assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    finally:
        study.set_user_attr(CERTIFICATE_ATTR, certificate.model_dump(mode="json"))


def test_the_report_opens_with_the_recommendation_and_marks_a_replay_of_another_run(certified, tmp_path):
    from lrsearch.store.replay import REPLAY_ATTR, replay_record
    from lrsearch.views.report_page import sections, write_html

    study, _, certificate = certified
    recommended = certificate.recommended_candidate.run

    def page_with_replay_of(spec: RunSpec) -> str:
        study.set_user_attr(REPLAY_ATTR, replay_record(spec, "cpu", None, {"run (this run)": "diverged: nan"}))
        path = tmp_path / "report.html"
        write_html(study, [draw() for draw in sections(study)], path)
        return path.read_text()

    try:
        page = page_with_replay_of(recommended.model_copy(update={"seed": 7}))  # another seed: the same run
        opening = f"<strong>Recommended: {html.escape(certificate.recommended)}, {certificate.epochs} epochs</strong>"
        assert opening in page and page.index(opening) < page.index(html.escape(certificate.sentence))
        assert page.index(opening) < page.index('id="summary"')  # before the search's own best trials
        assert "Out of date" not in page
        page = page_with_replay_of(recommended.model_copy(update={"lr": recommended.lr * 2}))
        assert "<strong>Out of date:</strong> this replay trained another run than the certificate recommends" in page
        assert f"({html.escape(certificate.recommended)}, {certificate.epochs} epochs)" in page
    finally:
        study.set_user_attr(REPLAY_ATTR, None)


@pytest.mark.parametrize("width", [100, 160, 240])
def test_the_certificate_table_keeps_every_figure_whole_in_a_terminal_s_width(certified, width):
    from rich.console import Console

    from lrsearch.views.summary import certificate_table

    _, _, certificate = certified
    # One candidate's run failed, with a long reason: it folds in its cell, and every other row stays whole.
    failed = {"val_loss": None, "test_loss": None, "test_score": None, "best_epoch": None}
    failed |= {"best_val_loss": None, "best_test_loss": None, "best_test_score": None}
    failed["diverged"] = "failed: RuntimeError: " + "the reason, " * 20 + "(seed 2 of 3)"
    candidates = [certificate.candidates[0].model_copy(update=failed), *certificate.candidates[1:]]
    console = Console(width=width, record=True)
    console.print(certificate_table(certificate.model_copy(update={"candidates": candidates}), width))
    shown = console.export_text()
    assert max(len(line) for line in shown.splitlines()) <= width and "…" not in shown
    assert "RuntimeError:" in shown and "(seed 2" in shown  # the reason, folded at its spaces
    for candidate in candidates[1:]:
        assert candidate.val.text() in shown and candidate.test.text() in shown
    if width >= 160:  # every column where they fit; in fewer columns the best-epoch figures, then the kind, go
        assert "searched" in shown and "test loss, best val epoch" in shown
