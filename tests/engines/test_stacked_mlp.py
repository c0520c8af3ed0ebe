from __future__ import annotations

import itertools
import math

import optuna
import pytest
import torch
from conftest import TINY
from optuna.trial import TrialState

from lrsearch.engines.lone import train
from lrsearch.engines.stacked_mlp import StackedTrainer
from lrsearch.problem.config import SearchConfig
from lrsearch.problem.schedules import SCHEDULES, Budget
from lrsearch.problem.space import _Namespaced
from lrsearch.problem.spec import ModelSpec, OptimizerSpec, RunSpec, ScheduleSpec
from lrsearch.searching.workers import run_here
from lrsearch.trials.objective import Objective
from lrsearch.trials.pruners import PRUNERS

EPOCHS = 6
OPTIMIZERS = {
    "sgd": OptimizerSpec(name="sgd", momentum=0.9),
    "sgd-nesterov-decay": OptimizerSpec(name="sgd", momentum=0.9, nesterov=True, weight_decay=1e-3),
    "sgd-plain": OptimizerSpec(name="sgd", momentum=0.0),
    "adam-decay": OptimizerSpec(name="adam", momentum=0.9, weight_decay=1e-3),
    "adamw-decay": OptimizerSpec(name="adamw", momentum=0.85, weight_decay=1e-2),
}
# OneCycleLR cycles the momentum, so it needs some; the rest take every optimizer.
CASES = [
    (schedule, optimizer)
    for schedule, optimizer in itertools.product(SCHEDULES, OPTIMIZERS)
    if not (schedule == "OneCycleLR" and optimizer == "sgd-plain")
]


def _spec(tiny_data_spec, schedule: str, optimizer: str, seed: int, lr: float | None = None) -> RunSpec:
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()
    steps = -(-int(TINY["data"]["n_samples"] * 0.6) // 32)
    params = SCHEDULES[schedule].suggest(_Namespaced(trial, schedule), Budget(EPOCHS, steps))
    default_lr = 0.01 if optimizer.startswith("adam") else 0.2
    return RunSpec(
        data=tiny_data_spec,
        model=ModelSpec(hidden=16),
        optimizer=OPTIMIZERS[optimizer],
        lr=lr or default_lr,
        schedule=ScheduleSpec(name=schedule, params=params),
        epochs=EPOCHS,
        batch_size=32,
        seed=seed % 3,  # trials of one stack with seeds of their own: own initial weights and batch order
    )


def _train_stack(trainer: StackedTrainer, epochs: int) -> dict[object, list]:
    outcomes: dict[object, list] = {}
    for _ in range(epochs):
        for outcome in trainer.train_epoch():
            outcomes.setdefault(outcome.key, []).append(outcome)
    return outcomes


@pytest.fixture(scope="module")
def stacked_run(tiny_data_module):
    data, data_spec = tiny_data_module
    specs = {case: _spec(data_spec, *case, seed=index) for index, case in enumerate(CASES)}
    trainer = StackedTrainer(data, next(iter(specs.values())))
    for case, spec in specs.items():
        trainer.add(case, spec)
    return specs, _train_stack(trainer, EPOCHS)


@pytest.fixture(scope="module")
def tiny_data_module():
    from lrsearch.problem.data import load_data
    from lrsearch.problem.spec import DataSpec

    spec = DataSpec(**TINY["data"])
    return load_data(spec, seed=0), spec


@pytest.mark.parametrize("case", CASES, ids=["/".join(case) for case in CASES])
def test_a_stacked_trial_equals_the_same_trial_trained_alone(stacked_run, tiny_data_module, case):
    specs, outcomes = stacked_run
    alone = train(specs[case], tiny_data_module[0]).epochs
    stacked = [outcome.record for outcome in outcomes[case]]
    assert [r.epoch for r in stacked] == list(range(1, EPOCHS + 1))
    assert [r.lr for r in stacked] == [r.lr for r in alone]  # the real scheduler drove both
    assert [r.step_lrs for r in stacked] == [r.step_lrs for r in alone]  # what the trial's picture shows
    for mine, theirs in zip(stacked, alone, strict=True):
        assert mine.val_loss == pytest.approx(theirs.val_loss, abs=1e-6)
        assert mine.train_loss == pytest.approx(theirs.train_loss, abs=1e-6)
        assert mine.val_score == pytest.approx(theirs.val_score, abs=1e-6)
    assert outcomes[case][-1].finished


def test_a_trial_joining_a_running_stack_still_equals_itself_alone(tiny_data_module):
    data, data_spec = tiny_data_module
    first, second, third = (_spec(data_spec, s, o, seed=i) for i, (s, o) in enumerate(CASES[::20][:3]))
    trainer = StackedTrainer(data, first)
    trainer.add("first", first)
    trainer.add("second", second)
    early = _train_stack(trainer, 2)
    trainer.remove("second")  # e.g. pruned after two epochs
    trainer.add("third", third)  # the freed slot is refilled at once
    late = _train_stack(trainer, EPOCHS - 2)
    assert [o.record.val_loss for o in early["first"] + late["first"]] == pytest.approx(
        [r.val_loss for r in train(first, data).epochs], abs=1e-6
    )
    assert [o.record.val_loss for o in late["third"]] == pytest.approx(
        [r.val_loss for r in train(third, data).epochs[: EPOCHS - 2]], abs=1e-6
    )


def test_a_diverging_trial_does_not_poison_its_neighbours(tiny_data_module):
    data, data_spec = tiny_data_module
    calm = _spec(data_spec, "StepLR", "sgd", seed=1)
    wild = _spec(data_spec, "none", "sgd", seed=2, lr=1e5)
    trainer = StackedTrainer(data, calm)
    trainer.add("calm", calm)
    trainer.add("wild", wild)
    first = trainer.train_epoch()
    assert first[1].diverged is not None and first[1].diverged.startswith("train loss became nan")
    trainer.remove("wild")
    rest = _train_stack(trainer, EPOCHS - 1)["calm"]
    stacked = [first[0].record.val_loss] + [o.record.val_loss for o in rest]
    assert all(math.isfinite(v) for v in stacked)
    assert stacked == pytest.approx([r.val_loss for r in train(calm, data).epochs], abs=1e-6)


def test_a_stacked_search_refills_its_slots_and_each_trial_replays(tiny_data_module):
    data, _ = tiny_data_module
    config = SearchConfig.model_validate(TINY | {"study": {"pruner": "median"}})
    # A seeded sampler: unseeded, the trials differ on every run, and one run failed once (not reproduced).
    study = optuna.create_study(
        sampler=optuna.samplers.TPESampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )
    objective = Objective(config, data, torch.device("cpu"))
    largest = []

    def watch(study, trial):
        largest.append(sum(t.state == TrialState.RUNNING for t in study.get_trials(deepcopy=False)))

    ran = run_here(study, objective, 12, stack=4, callbacks=[watch])
    assert ran == 12 and len(study.trials) == 12
    assert {t.state for t in study.trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert TrialState.PRUNED in {t.state for t in study.trials}
    assert max(largest) == 3  # after one of 4 ends, 3 still run and the slot is refilled at once
    for trial in (t for t in study.trials if t.state == TrialState.COMPLETE):
        spec = RunSpec.model_validate(trial.user_attrs["run_spec"])
        assert train(spec, data).final.val_loss == pytest.approx(trial.value, abs=1e-6)
        assert trial.user_attrs["val_loss"] == pytest.approx(list(trial.intermediate_values.values()), abs=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_stacked_trials_equal_lone_trials_on_cuda(tiny_data_module):
    from lrsearch.problem.data import load_data

    data_spec = tiny_data_module[1]
    data = load_data(data_spec, seed=0, device="cuda")
    specs = {case: _spec(data_spec, *case, seed=index) for index, case in enumerate(CASES)}
    trainer = StackedTrainer(data, next(iter(specs.values())), "cuda")
    for case, spec in specs.items():
        trainer.add(case, spec)
    outcomes = _train_stack(trainer, EPOCHS)
    worst = 0.0
    for case, spec in specs.items():
        alone = [r.val_loss for r in train(spec, data, "cuda").epochs]
        stacked = [o.record.val_loss for o in outcomes[case]]
        worst = max(worst, max(abs(a - b) for a, b in zip(alone, stacked, strict=True)))
    print(f"largest val-loss difference on CUDA over {len(specs)} trials x {EPOCHS} epochs: {worst:.3g}")
    assert worst <= 1e-6


@pytest.mark.parametrize("pruner", [name for name in PRUNERS if name != "none"])
def test_the_epoch_view_prunes_as_the_trials_themselves_would(tmp_path, pruner):
    """Two trials of one stack judged after each epoch from one read of the study, against the same two
    judged by `trial.should_prune()` in a twin study (pruners keep state, so each study is asked once)."""
    from lrsearch.store.storage import open_storage
    from lrsearch.trials.loop import _EpochView
    from lrsearch.trials.pruners import make_pruner

    def judged(folder: str, with_view: bool) -> list[tuple[bool, bool]]:
        storage = open_storage(f"sqlite:///{tmp_path}/{folder}.db")
        study = optuna.create_study(storage=storage, study_name="twin", pruner=make_pruner(pruner, 20))
        for index in range(8):
            trial = study.ask()
            for step in range(1, 21):
                trial.report(1.0 / step + 0.01 * math.sin(3 * index + step), step)
                trial.should_prune()
            study.tell(trial, 1.0 / 20)
        worse, better = study.ask(), study.ask()
        answers = []
        for step in range(1, 21):
            worse.report(5.0 + step, step)
            better.report(0.5 / step, step)
            if with_view:
                view = _EpochView(study)
                answers.append((view.should_prune(worse), view.should_prune(better)))
            else:
                answers.append((worse.should_prune(), better.should_prune()))
        return answers

    answers = judged("view", with_view=True)
    assert answers == judged("trial", with_view=False)
    assert any(w for w, _ in answers) and not any(b for _, b in answers)


def test_a_stacked_trial_s_test_figures_are_its_lone_run_s(stacked_run, tiny_data_module):
    data, _ = tiny_data_module
    specs, _ = stacked_run
    trainer = StackedTrainer(data, next(iter(specs.values())))
    chosen = list(specs)[:3]
    for case in chosen:
        trainer.add(case, specs[case])
    _train_stack(trainer, EPOCHS)
    for case in chosen:
        alone = train(specs[case], data, evaluate_test=True)
        loss, score = trainer.test(case)
        assert loss == pytest.approx(alone.test_loss, abs=1e-6) and score == pytest.approx(alone.test_score, abs=1e-6)
