from __future__ import annotations

import optuna
import pytest
from conftest import TINY
from optuna.trial import TrialState
from torch.optim.optimizer import register_optimizer_step_pre_hook

from lrsearch.engines.lone import train
from lrsearch.problem.schedules import SCHEDULES, Budget
from lrsearch.problem.space import _Namespaced
from lrsearch.problem.spec import ModelSpec, RunSpec, ScheduleSpec
from lrsearch.store.records import TrialCurves
from lrsearch.views.curves import best_loss_by_schedule, lr_by_step, thin, top_completed

EPOCHS = 5


def _spec(tiny_data_spec, schedule: str) -> RunSpec:
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3)).ask()
    steps = -(-int(TINY["data"]["n_samples"] * 0.6) // 32)
    params = SCHEDULES[schedule].suggest(_Namespaced(trial, schedule), Budget(EPOCHS, steps))
    return RunSpec(
        data=tiny_data_spec,
        model=ModelSpec(hidden=16),
        lr=0.2,
        schedule=ScheduleSpec(name=schedule, params=params),
        epochs=EPOCHS,
        batch_size=32,
    )


@pytest.mark.parametrize("schedule", list(SCHEDULES))
def test_the_pictured_lr_is_the_lr_every_optimizer_step_trained_with(tiny_data, tiny_data_spec, schedule):
    spec = _spec(tiny_data_spec, schedule)
    trained_with: list[float] = []

    def record(optimizer, args, kwargs):
        trained_with.append(optimizer.param_groups[0]["lr"])

    hook = register_optimizer_step_pre_hook(record)
    try:
        history = train(spec, tiny_data, on_epoch=None)
    finally:
        hook.remove()
    steps = tiny_data.steps_per_epoch(spec.batch_size)
    # What training recorded for the picture of a trial ending now...
    recorded = [lr for r in history.epochs for lr in (r.step_lrs or [r.lr] * steps)]
    assert recorded == trained_with
    # ...and what a replay from the study's stored curves shows of a finished one.
    positions, lrs = lr_by_step(spec, steps, [record.val_loss for record in history.epochs])

    # Each point holds until the next: expand them to one LR per optimizer step.
    starts = [round(position * steps) for position in positions] + [len(trained_with)]
    pictured = [lr for lr, start, end in zip(lrs, starts, starts[1:], strict=False) for _ in range(end - start)]
    assert pictured == pytest.approx(trained_with, rel=1e-12)
    assert lrs[:: steps if SCHEDULES[schedule].step_on == "batch" else 1][:EPOCHS] == pytest.approx(
        [record.lr for record in history.epochs], rel=1e-12
    )


def test_thin_keeps_the_ends_and_at_most_about_the_limit():
    xs = list(range(1000))
    thinned, _ = thin(xs, xs, limit=100)
    assert thinned[0] == 0 and thinned[-1] == 999 and len(thinned) <= 101
    assert thin([1.0, 2.0], [3.0, 4.0]) == ([1.0, 2.0], [3.0, 4.0])


def _curves(number: int, schedule: str, state: TrialState, val_loss: list[float]) -> TrialCurves:
    spec = RunSpec(schedule=ScheduleSpec(name=schedule))
    value = val_loss[-1] if state == TrialState.COMPLETE else None
    return TrialCurves(number, state, value, spec, [0.1] * len(val_loss), val_loss, val_loss, None)


def test_the_best_trials_and_each_schedule_type_s_results():
    curves = [
        _curves(0, "StepLR", TrialState.COMPLETE, [0.9, 0.5]),
        _curves(1, "none", TrialState.COMPLETE, [0.8, 0.7]),
        _curves(2, "StepLR", TrialState.PRUNED, [0.3]),
        _curves(3, "OneCycleLR", TrialState.COMPLETE, [0.6, 0.4, 0.45]),
    ]
    assert [c.number for c in top_completed(curves, 2)] == [3, 0]  # by final val loss; pruned ones never
    # By best val loss over epochs, pruned trials included; types in order of their median.
    assert best_loss_by_schedule(curves) == {"OneCycleLR": [0.4], "StepLR": [0.5, 0.3], "none": [0.7]}


@pytest.mark.parametrize("epochs", [2, 3, 4, 7, 40])
def test_the_report_s_epoch_axes_are_ticked_at_whole_epochs(epochs):
    from lrsearch.views import plots

    top = [_curves(n, "StepLR", TrialState.COMPLETE, [0.9 - n / 10] * epochs) for n in range(3)]
    for figure in (plots.top_lr_curves(top), plots.top_val_losses(top)):
        (axes,) = figure.axes
        figure.canvas.draw()  # the ticks as drawn
        low, high = axes.get_xlim()
        shown = [tick for tick in axes.get_xticks() if low <= tick <= high]
        assert len(shown) >= 2 and all(tick == int(tick) for tick in shown), shown
