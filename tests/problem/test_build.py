from __future__ import annotations

import warnings

import pytest
import torch
from optuna.trial import FixedTrial

import lrsearch
from lrsearch.base.errors import ConfigError
from lrsearch.problem.build import check_schedule
from lrsearch.problem.schedules import SCHEDULES, Budget, searched_ranges
from lrsearch.problem.spec import OptimizerSpec, RunSpec, ScheduleSpec


def test_users_own_loop_gets_the_exported_schedule(tmp_path):
    path = tmp_path / "best.yaml"
    RunSpec(
        lr=0.3,
        optimizer=OptimizerSpec(name="adam", momentum=0.8),
        schedule=ScheduleSpec(
            name="CyclicLR", params={"div_factor": 4.0, "half_cycle_epochs": 1.0, "mode": "triangular"}
        ),
        epochs=3,
    ).save(path)

    spec = lrsearch.load_run_spec(path)
    model = torch.nn.Linear(4, 2)
    optimizer = lrsearch.build_optimizer(spec, model.parameters())
    scheduler = lrsearch.build_scheduler(spec, optimizer, steps_per_epoch=10)
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["betas"] == (0.8, 0.999)
    assert lrsearch.step_on(spec) == "batch"
    lrs = []
    for _ in range(20):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    # The user's own 10 steps per epoch: one half cycle up from 0.3/4 to 0.3, one down.
    assert lrs[0] == pytest.approx(0.075) and lrs[10] == pytest.approx(0.3) and lrs[19] == pytest.approx(0.0975)


def test_params_that_do_not_fit_the_schedule_are_a_config_error():
    spec = RunSpec(schedule=ScheduleSpec(name="StepLR", params={"step": 3}))
    optimizer = lrsearch.build_optimizer(spec, torch.nn.Linear(2, 2).parameters())
    with pytest.raises(ConfigError, match="schedule.params: not valid for StepLR"):
        lrsearch.build_scheduler(spec, optimizer, steps_per_epoch=5)


def _middle(low, high, choices):
    if choices:
        return choices[-1]
    return (low + high) // 2 if isinstance(low, int) and isinstance(high, int) else (low + high) / 2


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_every_searched_schedule_passes_the_replay_check(name):
    for steps_per_epoch in (1, 7):
        budget = Budget(epochs=6, steps_per_epoch=steps_per_epoch)
        values = {r.name: _middle(r.low, r.high, r.choices) for r in searched_ranges(SCHEDULES[name], budget)}
        params = SCHEDULES[name].suggest(FixedTrial(values), budget)
        check_schedule(RunSpec(epochs=6, schedule=ScheduleSpec(name=name, params=params)), steps_per_epoch)


SCHEDULES_REFUSED = {
    "step size 0": (
        ("StepLR", {"step_size": 0, "gamma": 0.5}),
        "schedule.params: StepLR(step_size=0, gamma=0.5): ZeroDivisionError: integer modulo by zero",
    ),
    "nan gamma": (
        ("StepLR", {"step_size": 2, "gamma": float("nan")}),
        "schedule.params: StepLR(step_size=2, gamma=nan): the LR becomes nan in epoch 3",
    ),
    "negative gamma": (
        ("ExponentialLR", {"gamma": -1.0}),
        "schedule.params: ExponentialLR(gamma=-1.0): the LR becomes -0.1 in epoch 2",
    ),
    "unknown parameter": (
        ("StepLR", {"step_size": 2, "gamma": 0.5, "foo": 1}),
        "schedule.params: StepLR has no parameter 'foo'; it takes step_size, gamma",
    ),
    "a parameter of its own builder missing": (
        ("CyclicLR", {"div_factor": 2.0, "mode": "triangular"}),
        "schedule.params: CyclicLR(div_factor=2.0, mode='triangular'): CyclicLR needs the parameter 'half_cycle",
    ),
    "torch refuses the value": (
        ("ReduceLROnPlateau", {"factor": 2.0, "patience": 1, "threshold": 0.001}),
        "schedule.params: ReduceLROnPlateau(factor=2.0, patience=1, threshold=0.001): not valid for ReduceLROnPlateau",
    ),
    "a string for a number": (
        ("StepLR", {"step_size": "2", "gamma": 0.5}),
        "schedule.params: StepLR(step_size='2', gamma=0.5): TypeError",
    ),
}


@pytest.mark.parametrize(("schedule", "message"), SCHEDULES_REFUSED.values(), ids=SCHEDULES_REFUSED)
def test_replayed_schedules_torch_refuses_or_that_give_bad_lrs_are_one_line(schedule, message):
    name, params = schedule
    with pytest.raises(ConfigError) as raised:
        check_schedule(RunSpec(epochs=5, schedule=ScheduleSpec(name=name, params=params)))
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


def test_a_replayed_spec_is_not_held_to_the_search_ranges(tmp_path):
    path = tmp_path / "edited.yaml"
    path.write_text("epochs: 5\nschedule: {name: StepLR, params: {step_size: 3, gamma: 5.0}}\n")
    assert lrsearch.load_schedule(path).spec.schedule.params["gamma"] == 5.0


def test_a_loaded_schedule_says_how_long_its_run_is(tmp_path):
    path = tmp_path / "best.yaml"
    RunSpec(epochs=7, schedule=ScheduleSpec(name="StepLR", params={"step_size": 2, "gamma": 0.5})).save(path)
    assert lrsearch.load_schedule(path).epochs == 7  # what a loop of one's own runs for
    with pytest.warns(UserWarning, match="at the base LR chosen at 7; `lrsearch certify --epochs 14`"):
        stretched = lrsearch.load_schedule(path, stretch_to=14)
    assert stretched.epochs == 14 and stretched.spec.schedule.params["step_size"] == 4


def _lrs(scheduler, optimizer, epochs: int) -> list[float]:
    lrs = []
    for _ in range(epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def test_stretch_to_means_one_thing_wherever_it_is_given(tmp_path):
    """load_schedule(stretch_to=N), LoadedSchedule.build(stretch_to=N) and build_scheduler(stretch_to=N)
    build the same stretched schedule. The old `epochs=` keeps its old meaning where it was given (a
    user's loop must not change silently), and says it will go."""
    path = tmp_path / "best.yaml"
    spec = RunSpec(epochs=6, lr=0.1, schedule=ScheduleSpec(name="StepLR", params={"step_size": 2, "gamma": 0.5}))
    spec.save(path)
    runs = []
    for build in (
        lambda opt: lrsearch.load_schedule(path, stretch_to=12).build(opt, 1),
        lambda opt: lrsearch.load_schedule(path).build(opt, 1, stretch_to=12),
        lambda opt: lrsearch.build_scheduler(spec, opt, 1, stretch_to=12),
        lambda opt: lrsearch.build_scheduler(spec, opt, 1, 12),  # the old word: spans 12, steps every 2
        lambda opt: lrsearch.load_schedule(path).build(opt, 1, epochs=12),
    ):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            runs.append((_lrs(build(optimizer), optimizer, 12), [type(w.message) for w in caught]))
    stretched = [0.1] * 4 + [0.05] * 4 + [0.025] * 4  # step 2 -> 4
    assert all(lrs == pytest.approx(stretched) for lrs, _ in runs[:3])
    as_searched = [0.1 * 0.5 ** (epoch // 2) for epoch in range(12)]
    assert all(lrs == pytest.approx(as_searched) for lrs, _ in runs[3:])
    assert [FutureWarning in warned for _, warned in runs] == [False, False, False, True, True]
    assert runs[4][1].count(FutureWarning) == 1  # said once, not by each layer


def _two_groups(optimizer_class=torch.optim.SGD):
    head, backbone = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    return optimizer_class([{"params": [head], "lr": 0.1}, {"params": [backbone], "lr": 0.01}])


def test_parameter_groups_keep_their_ratios_to_the_first(tmp_path):
    """A backbone at a tenth of the head's LR stays at a tenth of the searched base LR; asked otherwise,
    every group takes the searched base LR."""
    spec = RunSpec(epochs=4, lr=0.05, schedule=ScheduleSpec(name="StepLR", params={"step_size": 2, "gamma": 0.5}))
    spec.save(tmp_path / "best.yaml")
    schedule = lrsearch.load_schedule(tmp_path / "best.yaml")
    optimizer = _two_groups()
    scheduler = schedule.build(optimizer, steps_per_epoch=1)
    head, backbone = [], []
    for _ in range(4):
        head.append(optimizer.param_groups[0]["lr"])
        backbone.append(optimizer.param_groups[1]["lr"])
        optimizer.step()
        scheduler.step()
    assert head == pytest.approx([0.05, 0.05, 0.025, 0.025]) and backbone == pytest.approx(
        [0.005, 0.005, 0.0025, 0.0025]
    )
    same = _two_groups()
    schedule.build(same, steps_per_epoch=1, keep_group_ratios=False)
    assert [group["lr"] for group in same.param_groups] == [0.05, 0.05]
    own = _two_groups()
    schedule.build(own, steps_per_epoch=1, set_lr=False)
    assert [group["lr"] for group in own.param_groups] == [0.1, 0.01]


def test_a_schedule_built_for_another_optimizer_than_the_searched_one_says_so(tmp_path):
    spec = RunSpec(epochs=4, lr=0.05)  # searched with SGD
    spec.save(tmp_path / "best.yaml")
    schedule = lrsearch.load_schedule(tmp_path / "best.yaml")
    with pytest.warns(UserWarning, match="searched with SGD .*your optimizer is AdamW"):
        schedule.build(_two_groups(torch.optim.AdamW), steps_per_epoch=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        schedule.build(_two_groups(torch.optim.SGD), steps_per_epoch=1)  # the searched one: nothing to say


def test_a_loaded_schedule_builds_the_optimizer_it_was_searched_with(tmp_path):
    spec = RunSpec(epochs=4, lr=0.05, optimizer={"name": "adamw", "momentum": 0.85, "weight_decay": 0.01})
    spec.save(tmp_path / "best.yaml")
    schedule = lrsearch.load_schedule(tmp_path / "best.yaml")
    model = torch.nn.Linear(3, 2)
    optimizer = schedule.optimizer(model.parameters())
    assert type(optimizer) is torch.optim.AdamW
    group = optimizer.param_groups[0]
    assert (group["lr"], group["betas"][0], group["weight_decay"]) == (0.05, 0.85, 0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the searched optimizer: no warning
        schedule.build(optimizer, steps_per_epoch=2)
