"""The controls tuned in the search: which trials tune them, what they pin, and how certification uses them."""

from __future__ import annotations

import dataclasses
import math

import optuna
import pytest
import torch
from conftest import TINY
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import FrozenTrial, TrialState

import lrsearch
from lrsearch.certification.certify import certify, top_distinct
from lrsearch.engines.factory import spare_trials
from lrsearch.problem.config import SearchConfig
from lrsearch.problem.controls import CONTROLS, controls_for, matched_lr, schedule_params
from lrsearch.problem.lr_walk import best_lr, cliff_lrs, next_lr, walk_step
from lrsearch.problem.space import control_trial_params, sample_run_spec
from lrsearch.store.records import CONTROL_ATTR, CONTROL_CENTRE_ATTR, TrialRecord
from lrsearch.trials.control_trials import FIRST_LRS, STARTUP, ControlTrial, ControlTrials
from lrsearch.trials.pruners import first_pruning_epoch

TRIALS = 30  # room for every control's 2 trials: every other trial after the start-up


def _config(tmp_path, search=None, **study) -> SearchConfig:
    settings = {"storage": f"sqlite:///{tmp_path}/c.db", "trials": TRIALS, "certify": False, "figures": False}
    return SearchConfig.model_validate(TINY | {"search": search or {}, "study": settings | study})


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    config = _config(tmp_path_factory.mktemp("controls"), {"control_trials": 2})
    result = lrsearch.search(config)
    return result.study, config


def test_control_trials_pin_their_control_s_shape_and_take_turns_after_the_sampler_s_start_up(searched):
    study, config = searched
    trials = study.get_trials(deepcopy=False)
    records = [TrialRecord.of(t) for t in trials]
    tuning = [r for r in records if r.control is not None]
    expected = controls_for(config.train.epochs)  # 4 epochs: no StepLR(10, 0.1)
    assert sorted(r.control for r in tuning) == sorted(name for name in expected for _ in range(2))
    for record in tuning:
        assert record.spec.schedule == expected[record.control](config.train.epochs)
        assert record.number >= STARTUP  # none among the sampler's first guesses
        finished_before = [t for t in trials[: record.number] if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        assert finished_before  # asked after trials had finished
    # Its first two LRs: the one matching the best searched trial's mean LR, then half of it.
    for name in expected:
        first, second = sorted((r for r in tuning if r.control == name), key=lambda r: r.number)
        assert second.spec.lr == pytest.approx(max(config.search.lr.low, first.spec.lr / 2))
    # Every other trial after the start-up, at most: the search keeps its share.
    assert len(tuning) <= (TRIALS - STARTUP + 1) // 2 + 1


def test_a_control_trial_is_never_certified_as_a_searched_candidate(searched):
    study, _ = searched
    chosen = {number for number, _ in top_distinct(study, 50)}
    controls = {t.number for t in study.get_trials() if TrialRecord.of(t) and TrialRecord.of(t).control}
    assert controls and not chosen & controls


def test_certification_starts_each_control_from_its_trials_in_the_search(searched):
    study, config = searched
    certificate = certify(study, config, device=torch.device("cpu"), seeds=3, top=1)
    for control in certificate.controls:
        losses = dict(zip(control.lrs, control.val_losses, strict=True))
        for trial in study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED)):
            record = TrialRecord.of(trial)
            if record.control != control.name:
                continue
            assert record.spec.lr in losses  # tried in the search, not trained again
            if trial.state == TrialState.COMPLETE:
                assert losses[record.spec.lr] == pytest.approx(trial.value)
            else:
                assert losses[record.spec.lr] is None  # pruned: worse than any that finished
        finite = {lr: loss for lr, loss in losses.items() if loss is not None}
        assert control.chosen == min(finite, key=finite.get)


def test_no_control_trials_when_turned_off_or_out_of_the_space(tmp_path):
    config = _config(tmp_path, {"control_trials": 0}, trials=14)
    study = lrsearch.search(config).study
    assert not any(TrialRecord.of(t).control for t in study.get_trials())
    narrow = _config(tmp_path, {"schedules": ["none", "StepLR", "OneCycleLR"]})
    assert list(control_trial_params(narrow, 10)) == ["constant"]  # StepLR(10, 0.1) does not fit in 4 epochs
    long = SearchConfig.model_validate({"train": {"epochs": 20}})
    assert set(control_trial_params(long, 10)) == set(CONTROLS)
    assert control_trial_params(long, 10)["StepLR(10, 0.1)"] == schedule_params(CONTROLS["StepLR(10, 0.1)"](20))


@pytest.fixture(scope="module")
def walked(tmp_path_factory):
    config = _config(tmp_path_factory.mktemp("walk"), {"control_trials": 6}, trials=44)
    return lrsearch.search(config).study, config


def test_a_control_s_lr_walks_in_the_search_first_its_matched_lr_and_half_and_twice_it_then_step_by_step(walked):
    study, config = walked
    low, high = config.search.lr.low, config.search.lr.high
    trials = study.get_trials(deepcopy=False)
    epochs = config.train.epochs
    for name, make in controls_for(epochs).items():
        own = [t for t in trials if t.user_attrs.get(CONTROL_ATTR) == name]
        assert len(own) >= len(FIRST_LRS)
        # Never pruned: its walk reads each LR's val loss at the end (a diverged run ends as pruned, saying so).
        assert all(TrialRecord.of(t).pruned_reason.startswith("diverged") for t in own if t.state == TrialState.PRUNED)
        first = own[0]
        before = [
            t
            for t in trials
            if t.state == TrialState.COMPLETE
            and CONTROL_ATTR not in t.user_attrs
            and t.datetime_complete < first.datetime_start
        ]
        answer = TrialRecord.of(min(before, key=lambda t: t.value)).spec
        centre = matched_lr(answer, make(epochs), epochs)
        for trial, factor in zip(own, FIRST_LRS, strict=False):
            assert trial.params["lr"] == pytest.approx(min(high, max(low, centre * factor)))
        for index, trial in enumerate(own[len(FIRST_LRS) :], start=len(FIRST_LRS)):
            earlier = own[:index]
            assert all(t.datetime_complete <= trial.datetime_start for t in earlier)  # it waited for them
            losses = {t.params["lr"]: t.value if t.state == TrialState.COMPLETE else None for t in earlier}
            assert trial.params["lr"] == pytest.approx(walk_step(losses, low, high))
        if len(own) < config.search.control_trials:  # stopped before its quota: its walk had ended
            losses = {t.params["lr"]: t.value if t.state == TrialState.COMPLETE else None for t in own}
            assert walk_step(losses, low, high) is None


def _trial(
    number: int,
    lr: float | None,
    value: float | None,
    control: str | None = None,
    centre: float | None = None,
    pruned: bool = False,
    **attrs,
) -> FrozenTrial:
    """A trial as the plan reads it: a searched one at `lr` of schedule "StepLR" (not a control's run), or a
    control trial (its schedule, "none", is pinned) whose walk started around `centre`; running where it
    has no value, unless `pruned`."""
    state = TrialState.PRUNED if pruned else TrialState.RUNNING if value is None else TrialState.COMPLETE
    own = {CONTROL_ATTR: control, CONTROL_CENTRE_ATTR: centre} if control else {}
    trial = optuna.trial.create_trial(
        state=state,
        value=value,
        params=({"lr": lr} if lr else {})
        | {"schedule": "none" if control or attrs.pop("constant", False) else "StepLR"},
        distributions=({"lr": FloatDistribution(1e-4, 1.0, log=True)} if lr else {}) | {"schedule": SCHEDULE},
        user_attrs=own | attrs,
    )
    trial.number = number
    return trial


SCHEDULE = CategoricalDistribution(["none", "StepLR"])


def test_a_control_s_next_trial_steps_out_from_its_best_lr_waits_for_its_running_one_and_ends_with_its_walk():
    config = SearchConfig.model_validate(TINY | {"search": {"schedules": ["none", "StepLR"], "control_trials": 6}})
    plan = ControlTrials(config, steps_per_epoch=10)
    assert list(plan.params) == ["constant"]
    answer = sample_run_spec(optuna.trial.FixedTrial({"lr": 0.05, "optimizer": "sgd", "schedule": "none"}), config, 10)
    searched = [_trial(n, 0.05, 1.0 - n / 100, run_spec=answer.model_dump(mode="json")) for n in range(10)]
    # The first control trial: at the LR that matches the best searched trial's mean LR (a constant: its LR).
    assert plan.plan(searched, 2) == [ControlTrial("constant", pytest.approx(0.05), pytest.approx(0.05)), None]
    # Its first trial, asked by another worker and not sampled yet: the LR it takes is unknown, so it waits.
    unsampled = searched + [_trial(10, None, None, "constant", 0.05)] + [_trial(11 + n, 0.3, 0.9) for n in range(4)]
    assert plan.plan(unsampled, 2) == [None, None]
    first = [
        _trial(10 + i, 0.05 * f, loss, "constant", 0.05)
        for i, (f, loss) in enumerate(zip(FIRST_LRS, (0.5, 0.4, 0.6), strict=True))
    ]
    grown = searched + first + [_trial(13 + n, 0.3, 0.9) for n in range(4)]
    assert plan.plan(grown, 1) == [
        ControlTrial("constant", pytest.approx(0.0125), 0.05)
    ]  # best at the edge: a step out
    waiting = grown + [_trial(17, 0.0125, None, "constant", 0.05)]
    assert plan.plan(waiting, 3) == [None, None, None]  # it waits for its running trial
    ended = grown + [_trial(17, 0.0125, 0.45, "constant", 0.05)] + [_trial(18 + n, 0.3, 0.9) for n in range(4)]
    assert plan.plan(ended, 3) == [None, None, None]  # 0.025 is surrounded within a step: its walk has ended


def test_spare_slots_take_only_the_trials_that_open_a_walk():
    # When the walks can start, a stack takes all their first LRs at once, beyond its free slots: their
    # next steps wait for them, and the search's end waits for the steps.
    config = SearchConfig.model_validate(TINY | {"search": {"schedules": ["none", "StepLR"], "control_trials": 6}})
    plan = ControlTrials(config, steps_per_epoch=10)
    answer = sample_run_spec(optuna.trial.FixedTrial({"lr": 0.05, "optimizer": "sgd", "schedule": "none"}), config, 10)
    searched = [_trial(n, 0.05, 1.0 - n / 100, run_spec=answer.model_dump(mode="json")) for n in range(20)]
    first = [ControlTrial("constant", pytest.approx(0.05 * f), pytest.approx(0.05)) for f in FIRST_LRS]
    assert plan.plan(searched, 1) == first[:1]
    assert plan.plan(searched, 1, spare=5) == first  # then none: its next LR waits for these
    assert plan.plan(searched, 4, spare=5) == [*first, None]  # a free slot is still the sampler's
    tried = [
        _trial(20 + i, 0.05 * f, loss, "constant", 0.05)
        for i, (f, loss) in enumerate(zip(FIRST_LRS, (0.5, 0.4, 0.6), strict=True))
    ]
    stepping = searched + tried
    assert plan.plan(stepping, 1, spare=5) == [
        ControlTrial("constant", pytest.approx(0.0125), 0.05)
    ]  # a step: no spare
    assert plan.plan(stepping + [_trial(23, 0.0125, None, "constant", 0.05)], 1, spare=5) == [None]


def test_a_spare_slot_takes_no_walk_s_step_where_its_first_lrs_were_clipped_to_fewer():
    search = {"schedules": ["none", "PolynomialLR"], "lr": {"low": 1e-4, "high": 1.0}}
    plan = ControlTrials(SearchConfig.model_validate(TINY | {"search": search}), steps_per_epoch=10)
    assert list(plan.params) == ["constant", "linear decay to zero"]
    answer = sample_run_spec(
        optuna.trial.FixedTrial({"lr": 1.0, "optimizer": "sgd", "schedule": "none"}), plan.config, 10
    )
    searched = [_trial(n, 1.0, 0.9, run_spec=answer.model_dump(mode="json")) for n in range(20)]
    # The constant's first LRs, 1.0 and 0.5 (twice 1.0 is out of range), are done, the best at an edge: it
    # would step to 0.25. Linear decay's walk opens on two (its matched LR 1.6 and twice it clip to 1.0).
    done = [_trial(20, 1.0, 0.5, "constant", 1.0), _trial(21, 0.5, 0.4, "constant", 1.0)]
    opened = plan.plan(searched + done, 1, spare=3)
    centre = opened[0].centre
    assert opened == [ControlTrial("linear decay to zero", lr, centre) for lr in (1.0, centre / 2)]
    stepped = ControlTrial("constant", pytest.approx(0.25), 1.0)
    assert plan.plan(searched + done, 3) == [*opened, stepped]  # in a free slot, the step is taken


def test_a_stack_of_the_built_in_mlp_takes_the_controls_first_lrs_at_once_beyond_its_size(tmp_path, tiny_data):
    study = lrsearch.search(_config(tmp_path, {"control_trials": 3}, stack=4)).study
    spans = [(t.datetime_start, t.datetime_complete) for t in study.trials]
    at_once = max(sum(start <= begun < end for start, end in spans) for begun, _ in spans)
    # The three controls' 9 first LRs, as many as the controls' share of trials lets start at once.
    assert 4 < at_once <= 4 + spare_trials(4, tiny_data) == 6
    own_model = dataclasses.replace(tiny_data, model_factory=lambda: torch.nn.Linear(2, 2))
    assert spare_trials(4, own_model) == 0  # its stack may be as large as the device's memory allows
    assert spare_trials(1, tiny_data) == 0


def test_the_budget_s_end_waits_for_walks_about_to_start_from_a_judged_searched_trial():
    # On 30 trials the quartile had asked them all before a searched trial completed: no walk started in
    # the search, and certification tuned every control from scratch.
    config = SearchConfig.model_validate(TINY | {"search": {"schedules": ["none", "StepLR"]}})
    plan = ControlTrials(config, steps_per_epoch=10)
    pruned = [_trial(n, 0.3, None, pruned=True) for n in range(10)]  # the sampler's start-up, over

    def running(epochs: int) -> FrozenTrial:
        trial = _trial(10, 0.3, None)
        trial.intermediate_values = dict.fromkeys(range(1, epochs + 1), 0.5)
        return trial

    assert first_pruning_epoch(config.study.pruner, config.train.epochs) == 1
    # Past the pruner's first judgement, the trial will complete: 3 of the 5 trials left wait for the
    # constant's first LRs, and this worker asks 2 now (it asks again when a trial of its ends).
    assert plan.plan(pruned + [running(1)], 3, left=5, training=True) == [None, None]
    assert plan.plan(pruned + [running(0)], 3, left=5, training=True) == [None, None, None]  # not judged yet
    # A share too small for a walk's first LRs keeps nothing: a walk of one LR would settle nothing.
    assert plan.plan(pruned + [running(1)], 2, left=2, training=True) == [None, None]


def test_a_control_s_first_lrs_clipped_to_the_lr_range_are_tried_once():
    config = SearchConfig.model_validate(TINY | {"search": {"schedules": ["none"], "lr": {"low": 1e-4, "high": 1.0}}})
    plan = ControlTrials(config, steps_per_epoch=10)
    answer = sample_run_spec(optuna.trial.FixedTrial({"lr": 1.0, "optimizer": "sgd", "schedule": "none"}), config, 10)
    searched = [_trial(n, 1.0, 0.9, run_spec=answer.model_dump(mode="json")) for n in range(10)]
    assert plan.plan(searched, 1) == [ControlTrial("constant", 1.0, 1.0)]
    first = [_trial(10, 1.0, 0.5, "constant", 1.0), _trial(11, 0.5, 0.6, "constant", 1.0)]  # twice 1.0 is out of range
    more = searched + first + [_trial(12 + n, 0.3, 0.9) for n in range(4)]
    assert plan.plan(more, 2) == [None, None]  # best at the range's edge, 2x away from 0.5: its walk has ended


def test_a_searched_trial_that_ran_a_control_s_run_is_a_point_of_its_walk_never_trained_again():
    config = SearchConfig.model_validate(TINY | {"search": {"schedules": ["none", "StepLR"]}})
    plan = ControlTrials(config, steps_per_epoch=10)
    answer = sample_run_spec(optuna.trial.FixedTrial({"lr": 0.05, "optimizer": "sgd", "schedule": "none"}), config, 10)
    best = _trial(9, 0.05, 0.5, run_spec=answer.model_dump(mode="json"), constant=True)  # the best is a constant LR
    searched = [_trial(n, 0.3, 0.9) for n in range(9)] + [best]
    # Its matched LR is the best trial's own: the walk starts from it, at half and twice it.
    assert plan.plan(searched, 1) == [ControlTrial("constant", pytest.approx(0.025), pytest.approx(0.05))]
    first = [_trial(10, 0.025, 0.4, "constant", 0.05), _trial(11, 0.1, 0.6, "constant", 0.05)]
    more = searched + first + [_trial(12 + n, 0.3, 0.9) for n in range(2)]
    assert plan.plan(more, 1) == [ControlTrial("constant", pytest.approx(0.0125), 0.05)]  # not 0.05 again


def test_a_control_trial_of_a_retired_control_is_no_point_of_any_walk():
    # Cosine to zero was a control until measured linear decay's twin; a study searched then keeps its trials.
    config = SearchConfig.model_validate(TINY | {"search": {"schedules": ["none", "StepLR"]}})
    plan = ControlTrials(config, steps_per_epoch=10)
    answer = sample_run_spec(optuna.trial.FixedTrial({"lr": 0.05, "optimizer": "sgd", "schedule": "none"}), config, 10)
    searched = [_trial(n, 0.05, 1.0 - n / 100, run_spec=answer.model_dump(mode="json")) for n in range(10)]
    retired = [_trial(10 + i, lr, 0.3, "cosine to zero", 0.05) for i, lr in enumerate((0.025, 0.05, 0.1))]
    # The constant's walk starts from scratch, at its matched LR, as if the retired trials were not there.
    assert plan.plan(searched + retired, 1) == [ControlTrial("constant", pytest.approx(0.05), pytest.approx(0.05))]


def test_with_the_lr_fixed_a_control_trial_leaves_it_to_the_search_and_stops_at_its_quota():
    config = SearchConfig.model_validate(
        TINY | {"search": {"schedules": ["none"], "control_trials": 2, "fixed": {"lr": 0.05}}}
    )
    plan = ControlTrials(config, steps_per_epoch=10)
    searched = [_trial(n, 0.05, 1.0) for n in range(10)]
    assert plan.plan(searched, 1) == [ControlTrial("constant", None)]
    tried = searched + [_trial(10, 0.05, 0.5, "constant"), _trial(11, 0.05, 0.6, "constant")]
    assert plan.plan(tried + [_trial(12 + n, 0.05, 1.0) for n in range(4)], 2) == [None, None]


def test_next_lr_widens_at_an_edge_and_bisects_a_gap_wider_than_a_step():
    assert next_lr([0.01, 0.02, 0.04], 0.01, 1e-4, 1.0) == pytest.approx(0.005)
    assert next_lr([0.01, 0.02, 0.04], 0.04, 1e-4, 1.0) == pytest.approx(0.08)
    assert next_lr([0.01, 0.02, 0.04], 0.02, 1e-4, 1.0) is None  # surrounded within a step
    # The sampler's picks: 0.003, 0.05, 0.3 — the best's farther neighbour is 16.7x away, halfway is 0.0122.
    assert next_lr([0.003, 0.05, 0.3], 0.05, 1e-4, 1.0) == pytest.approx(math.sqrt(0.003 * 0.05))
    assert next_lr([1e-4, 2e-4], 1e-4, 1e-4, 1.0) is None  # the range's edge


def test_the_best_lr_stays_a_step_below_the_edge_of_stability():
    # Digits certified at 100 epochs: the lowest val loss sat 2x below a run that fell to chance level.
    walked = {0.0047: 0.1073, 0.0094: 0.113, 0.0188: 0.1189, 0.0375: 0.1223, 0.0751: 0.1019, 0.15: 2.4635}
    assert cliff_lrs(walked) == [0.15]
    assert best_lr(walked) == 0.0047
    assert walk_step(walked, 1e-4, 1.0) == pytest.approx(0.0047 / 2)  # and the walk goes on below it
    # A diverged run is a cliff too; an LR more than a step below it is safe.
    assert best_lr({0.01: 0.30, 0.03: 0.25, 0.05: 0.20, 0.1: None}) == 0.03
    # A loss that rises gently with the LR is no cliff: the lowest loss is the best LR, as always.
    gentle = {0.01: 0.30, 0.02: 0.26, 0.04: 0.25, 0.08: 0.31, 0.16: 0.45}
    assert cliff_lrs(gentle) == [] and best_lr(gentle) == 0.04
    # A slow, undertrained run at a low LR does not hide the cliff: each run is judged against the one below.
    assert cliff_lrs(walked | {1e-4: 1.3}) == [0.15] and best_lr(walked | {1e-4: 1.3}) == 0.0047
    # Wine: a bump among small losses is no cliff; the run fallen to chance level (log 3 = 1.10) is one.
    wine = {0.0556: 0.0055, 0.1112: 0.0896, 0.2224: 0.0, 0.2574: 0.0, 0.302: 1.1726}
    assert cliff_lrs(wine) == [0.302] and best_lr(wine) == 0.0556
    # No LR above a cliff is chosen, however well its one run ended.
    assert best_lr({0.01: 0.3, 0.02: 0.2, 0.04: None, 0.08: 0.1}) == 0.01
    # Where every finished LR is within a step below a cliff, the lowest loss is still chosen.
    assert best_lr({0.1: 0.2, 0.15: 0.1, 0.2: 5.0}) == 0.15
    assert best_lr({0.1: None, 0.2: None}) is None


def test_a_walk_waits_for_a_completed_searched_trial_to_start_from():
    # Ten trials pruned at their 5th epoch finish before any completes: the sampler's start-up is over, but
    # no searched trial says where the problem's LRs are. A walk started from a guess (0.00036 on the default
    # study) crawled up 9 LRs, 5 of them certification's rounds.
    config = SearchConfig.model_validate(TINY | {"search": {"schedules": ["none", "StepLR"]}})
    plan = ControlTrials(config, steps_per_epoch=10)
    pruned = [_trial(n, 0.3, None, pruned=True) for n in range(STARTUP)]
    assert plan.plan(pruned, 2) == [None, None]
    answer = sample_run_spec(optuna.trial.FixedTrial({"lr": 0.05, "optimizer": "sgd", "schedule": "none"}), config, 10)
    completed = pruned + [_trial(STARTUP, 0.05, 0.5, run_spec=answer.model_dump(mode="json"))]
    assert plan.plan(completed, 1) == [ControlTrial("constant", pytest.approx(0.05), pytest.approx(0.05))]


def test_the_budget_s_last_trials_wait_for_an_open_walk_while_its_trials_train():
    config = SearchConfig.model_validate(TINY | {"search": {"schedules": ["none", "StepLR"]}})
    plan = ControlTrials(config, steps_per_epoch=10)
    answer = sample_run_spec(optuna.trial.FixedTrial({"lr": 0.05, "optimizer": "sgd", "schedule": "none"}), config, 10)
    searched = [_trial(n, 0.05, 1.0 - n / 100, run_spec=answer.model_dump(mode="json")) for n in range(10)]
    first = [_trial(10 + i, 0.05 * factor, None, "constant", 0.05) for i, factor in enumerate(FIRST_LRS)]
    more = [_trial(13 + n, 0.3, None) for n in range(3)]
    trials = searched + first + more  # the constant's first 3 LRs train; its quota (4) leaves it one more
    # 4 trials left of the budget: 3 searched ones may start, the last is the walk's, once its trials end.
    assert plan.plan(trials, 4, left=4, training=True) == [None, None, None]
    # A worker with nothing to train asks them all: it would wait for a trial that may never end here.
    assert plan.plan(trials, 4, left=4, training=False) == [None] * 4
    # Without a limit, or with room to spare, nothing is held back.
    assert plan.plan(trials, 4, left=None, training=True) == [None] * 4
    assert plan.plan(trials, 4, left=9, training=True) == [None] * 4
    # The walk's trials end, best at the edge: the trial kept for it is its step out.
    ended = searched + [
        _trial(10 + i, 0.05 * factor, loss, "constant", 0.05)
        for i, (factor, loss) in enumerate(zip(FIRST_LRS, (0.5, 0.4, 0.6), strict=True))
    ]
    ended += [_trial(13 + n, 0.3, 0.9) for n in range(6)]
    assert plan.plan(ended, 1, left=1, training=True) == [ControlTrial("constant", pytest.approx(0.0125), 0.05)]


def test_a_walk_not_started_holds_no_trial_back():
    # --trials 11 with a stack of 10: the 11th trial may start at once. Kept for a walk that can start
    # only once 10 trials have finished and a searched one completed, it sat idle, then trained alone.
    config = SearchConfig.model_validate(TINY | {"search": {"schedules": ["none", "StepLR"]}})
    plan = ControlTrials(config, steps_per_epoch=10)
    trials = [_trial(n, 0.3, None, pruned=True) for n in range(5)] + [_trial(5 + n, 0.3, None) for n in range(5)]
    assert plan.plan(trials, 1, left=1, training=True) == [None]


def test_a_retry_queued_before_a_control_trial_is_not_taken_for_one(tiny_data):
    # Optuna hands out the oldest queued trial: here a dead worker's searched trial, queued for a retry
    # before the control trials the plan asks for. It trains as the searched trial it is (the pruner may
    # end it); the control trial queued first is asked next, and it is the one never pruned.
    from lrsearch.trials.loop import _Heartbeats, _Loop
    from lrsearch.trials.objective import Objective

    config = SearchConfig.model_validate(TINY | {"search": {"schedules": ["none", "StepLR"]}})
    objective = Objective(config, tiny_data, torch.device("cpu"))
    study = optuna.create_study()
    answer = sample_run_spec(optuna.trial.FixedTrial({"lr": 0.05, "optimizer": "sgd", "schedule": "none"}), config, 10)
    for n in range(STARTUP):
        study.add_trial(_trial(n, 0.05, 1.0 - n / 100, run_spec=answer.model_dump(mode="json")))
    study.enqueue_trial({"lr": 0.3, "schedule": "StepLR"})  # the retry: queued, no control of its own
    loop = _Loop(study, objective, new_engine=lambda spec: None, callbacks=())
    with _Heartbeats(study, None) as loop.beats:
        loop.ask(2, wait_for_retries=False)  # the plan: the constant's first two LRs
    retry, control = loop.asked
    assert CONTROL_ATTR not in retry.user_attrs and control.user_attrs[CONTROL_ATTR] == "constant"
    assert loop.tuning == {control.number}
