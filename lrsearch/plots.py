"""Static pictures drawn with matplotlib: a trial's LR and loss curves (attached to the trial for the
dashboard) and the report's figures. Imported only by code that draws."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, never a window; set before pyplot could be imported anywhere

from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from lrsearch.curves import TrialCurves, thin  # noqa: E402
from lrsearch.report import format_params  # noqa: E402

matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller files, searchable in a page


def trial_picture(curves: TrialCurves) -> Figure:
    """The LR the trial trained with, step by step, beside its train and val loss per epoch."""
    figure = Figure(figsize=(9, 3.2))
    lr_axes, loss_axes = figure.subplots(1, 2)
    _draw_lr(lr_axes, [curves], legend=False)
    lr_axes.set_title(f"LR: {curves.spec.schedule.name}, base {curves.spec.lr:.3g}", fontsize=10)
    loss_axes.plot(curves.epochs, curves.train_loss, marker=".", label="train loss")
    loss_axes.plot(curves.epochs, curves.val_loss, marker=".", label="val loss")
    loss_axes.set_xlabel("epoch")
    loss_axes.set_title(f"trial #{curves.number}: {curves.state.name.lower()}", fontsize=10)
    loss_axes.legend(fontsize=8)
    figure.suptitle(format_params(curves.spec.schedule.params), fontsize=8)
    figure.tight_layout()
    return figure


def top_lr_curves(top: Sequence[TrialCurves]) -> Figure:
    figure = Figure(figsize=(7, 4))
    axes = figure.subplots()
    _draw_lr(axes, top, legend=True)
    axes.set_title(f"LR schedules of the {len(top)} best trials")
    figure.tight_layout()
    return figure


def top_val_losses(top: Sequence[TrialCurves]) -> Figure:
    figure = Figure(figsize=(7, 4))
    axes = figure.subplots()
    for curves in top:
        axes.plot(curves.epochs, curves.val_loss, marker=".", label=curves.label)
    axes.set(xlabel="epoch", ylabel="val loss", title=f"val loss of the {len(top)} best trials")
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def schedule_comparison(best_losses: Mapping[str, Sequence[float]]) -> Figure:
    figure = Figure(figsize=(8, 4))
    axes = figure.subplots()
    axes.boxplot(list(best_losses.values()), tick_labels=list(best_losses), orientation="horizontal")
    axes.set(xlabel="best val loss of each trial (lower is better)", title="schedule types compared")
    axes.invert_yaxis()  # the best type on top
    figure.tight_layout()
    return figure


def replay_comparison(results: Mapping[str, float]) -> Figure:
    """The replayed winner beside the baselines, on the test split."""
    figure = Figure(figsize=(7, 0.6 * len(results) + 1.2))
    axes = figure.subplots()
    axes.barh(list(results), list(results.values()))
    axes.set(xlabel="test loss (lower is better)", title="the best schedule against the baselines")
    axes.invert_yaxis()
    figure.tight_layout()
    return figure


def to_bytes(figure: Figure, fmt: str) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=110)
    return buffer.getvalue()


def _draw_lr(axes: Axes, trials: Sequence[TrialCurves], legend: bool) -> None:
    lowest, highest = float("inf"), 0.0
    for curves in trials:
        xs, ys = thin(*curves.lr_by_step())
        xs.append(float(len(curves.val_loss)))  # the last LR holds to the end of the last epoch
        ys.append(ys[-1])
        axes.step(xs, ys, where="post", label=curves.label)
        lowest, highest = min(lowest, *ys), max(highest, *ys)
    axes.set(xlabel="epoch", ylabel="learning rate")
    if lowest > 0 and highest / lowest > 20:  # warm-ups and decays span decades
        axes.set_yscale("log")
    if legend:
        axes.legend(fontsize=8)
