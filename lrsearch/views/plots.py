"""Static pictures drawn with matplotlib: the report's figures. Imported only by code that draws (a trial's
own picture, drawn while the search trains, is written by hand: `trial_svg`)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, never a window; set before pyplot could be imported anywhere

from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import LogLocator, MaxNLocator, NullLocator  # noqa: E402

from lrsearch.base.stats import mean_interval  # noqa: E402
from lrsearch.base.text import clipped  # noqa: E402
from lrsearch.store.certificate import Certificate  # noqa: E402
from lrsearch.store.records import TrialCurves  # noqa: E402
from lrsearch.views.curves import lr_curve  # noqa: E402

matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller files, searchable in a page

# A study's importances: one bar per parameter shared by its completed trials (28 in the full space); the
# most important ones are what a reader looks for, and more bars' names would overlap.
IMPORTANCES_SHOWN = 12
BAR_INCHES = 0.3
IMPORTANCE_LABEL = 40  # characters of a parameter's name


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
    _whole_epochs(axes)
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
    labels = [clipped(label).replace("$", r"\$") for label in results]  # stored text, not mathtext to parse
    axes.barh(labels, list(results.values()))
    axes.set(xlabel="test loss (lower is better)", title="the best schedule against the baselines")
    axes.invert_yaxis()
    figure.tight_layout()
    return figure


def param_importances(importances: Mapping[str, float], shown: int = IMPORTANCES_SHOWN) -> Figure:
    """The `shown` most important parameters (of `importances`, most important first) as bars, a bar's
    height (0.3 in) each, their names cut to fit beside them."""
    top = sorted(importances.items(), key=lambda item: -item[1])[:shown]
    figure = Figure(figsize=(8, BAR_INCHES * len(top) + 1.2))
    axes = figure.subplots()
    labels = [clipped(name, IMPORTANCE_LABEL).replace("$", r"\$") for name, _ in top]  # stored, not mathtext
    axes.barh(labels, [value for _, value in top])
    more = f" (the top {len(top)} of {len(importances)})" if len(importances) > len(top) else ""
    axes.set(xlabel="importance for the final val loss", title=f"parameter importances{more}")
    axes.invert_yaxis()
    figure.tight_layout()
    return figure


def certificate_figure(certificate: Certificate) -> Figure:
    """Each certified schedule's test loss at every fresh seed (dots), their mean and 95% interval (bar),
    best val loss on top; the search's schedules in one colour, the controls in another."""
    rows = [c for c in certificate.ranked if c.shown_losses is not None]
    recommended = " (recommended)"
    labels = [
        clipped(c.label).replace("$", r"\$") + (recommended if c.label == certificate.recommended else "") for c in rows
    ]
    # Wide enough for the labels beside a plot of 5 inches (a label takes about 0.075 in a character).
    width = max(8.0, 5.0 + 0.075 * max((len(label) for label in labels), default=0))
    figure = Figure(figsize=(width, 0.5 * len(rows) + 1.6))
    axes = figure.subplots()
    colours = {"searched": "tab:blue", "control": "tab:gray"}
    for y, candidate in enumerate(rows):
        losses, colour = candidate.shown_losses, colours[candidate.kind]
        test = mean_interval(losses)
        axes.scatter(losses, [y] * len(losses), s=14, color=colour, alpha=0.5)
        error = None if test.half_width is None else [[test.mean - test.low], [test.high - test.mean]]
        axes.errorbar([test.mean], [y], xerr=error, fmt="D", color=colour, capsize=4)
    axes.set_yticks(range(len(rows)), labels)
    axes.invert_yaxis()
    axes.set(
        xlabel=f"{certificate.shown_loss} at {certificate.seeds_text}, {certificate.epochs} epochs "
        f"({certificate.judge} epoch), mean and 95% interval",
        title="searched (blue), tuned controls (gray)",
    )
    figure.tight_layout()
    return figure


def studies_compared(
    studies: Sequence[tuple[str, Sequence[float], Sequence[float] | None]], loss: str = "test loss"
) -> Figure:
    """Studies side by side, each a (name, its best trial's val loss per epoch, its certified
    recommendation's `loss` at the fresh seeds or None): the curves on the left; on the right those
    losses (dots) with their mean and 95% interval, a row a study."""
    names = [clipped(name).replace("$", r"\$") for name, _, _ in studies]  # stored text, not mathtext
    figure = Figure(figsize=(max(10.0, 6.0 + 0.075 * max(map(len, names))), 0.4 * len(studies) + 3.4))
    curves, certified = figure.subplots(1, 2)
    for name, (_, val_curve, _) in zip(names, studies, strict=True):
        curves.plot(range(1, len(val_curve) + 1), val_curve, marker=".", label=name)
    curves.set(xlabel="epoch", ylabel="val loss", title="each study's best trial")
    _whole_epochs(curves)
    curves.legend(fontsize=8)
    for y, (_, _, losses) in enumerate(studies):
        if not losses:
            continue
        shown = mean_interval(losses)
        certified.scatter(losses, [y] * len(losses), s=14, alpha=0.5, color=f"C{y % 10}")
        error = None if shown.half_width is None else [[shown.mean - shown.low], [shown.high - shown.mean]]
        certified.errorbar([shown.mean], [y], xerr=error, fmt="D", capsize=4, color=f"C{y % 10}")
    uncertified = [not losses for _, _, losses in studies]
    labels = [f"{name} (not certified)" if absent else name for name, absent in zip(names, uncertified, strict=True)]
    certified.set_yticks(range(len(studies)), labels)
    certified.set_ylim(len(studies) - 0.5, -0.5)  # the first study on top, rows kept for the uncertified
    certified.set(xlabel=f"{loss} at each fresh seed, mean and 95% interval", title="its certified recommendation")
    figure.tight_layout()
    return figure


def _few_ticks(axes: Axes) -> None:
    for axis in (axes.xaxis, axes.yaxis):
        axis.set_major_locator(MaxNLocator(5) if axis.get_scale() == "linear" else LogLocator(numticks=4))
        axis.set_minor_locator(NullLocator())


def _whole_epochs(axes: Axes) -> None:
    """An epoch axis ticked at whole epochs (matplotlib would tick a 4-epoch run at 0.5, 1.0, 1.5, ...)."""
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def to_bytes(figure: Figure, fmt: str) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=110)
    return buffer.getvalue()


def _draw_lr(axes: Axes, trials: Sequence[TrialCurves], legend: bool) -> None:
    every_lr: list[float] = []
    for curves in trials:
        xs, ys = lr_curve(curves)
        axes.step(xs, ys, where="post", label=curves.label)
        every_lr += ys
    axes.set(xlabel="epoch", ylabel="learning rate")
    _whole_epochs(axes)
    if _spans_decades(every_lr):
        axes.set_yscale("log")
    if legend:
        axes.legend(fontsize=8)


def _spans_decades(lrs: Sequence[float]) -> bool:
    """Warm-ups and decays span decades: a log scale shows them; a linear one, constant LRs."""
    return min(lrs) > 0 and max(lrs) / min(lrs) > 20
