"""A trial's picture for the dashboard, written as SVG text by hand: the LR it trained with, step by step,
beside its train and val loss per epoch.

A search draws one picture per trial on its training path. matplotlib took about 70 ms a picture here (and
its import half a second), a fifth of the default search's wall time; this writes the same two panels,
titles, axes, ticks and legend in about a millisecond, with no plotting library imported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from lrsearch.store.records import TrialCurves
from lrsearch.views.curves import lr_curve
from lrsearch.views.summary import format_params

WIDTH, HEIGHT = 900, 320
# Each panel's plot area: (left, top, width, height) in pixels.
PANELS = ((75, 62, 355, 200), (535, 62, 355, 200))
COLORS = {"lr": "#1f77b4", "train": "#1f77b4", "val": "#ff7f0e"}
FONT = 'font-family="DejaVu Sans, Arial, sans-serif"'


def trial_svg(curves: TrialCurves) -> str:
    """The trial's picture as an SVG document."""
    xs, lrs = lr_curve(curves)
    epochs = [float(e) for e in curves.epochs]
    log = _spans_decades(lrs)
    lr_panel = _Panel(PANELS[0], (min(xs), max(xs)), _y_range(lrs, log), log)
    losses = [*curves.train_loss, *curves.val_loss]
    loss_panel = _Panel(PANELS[1], (min(epochs), max(epochs)), _y_range(losses, False), False)
    spec = curves.spec
    parts = [
        '<?xml version="1.0" encoding="utf-8" standalone="no"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" {FONT}>',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        _text(WIDTH / 2, 16, format_params(spec.schedule.params), size=11),
        lr_panel.frame(f"LR: {spec.schedule.name}, base {spec.lr:.3g}", "epoch", "learning rate"),
        lr_panel.line(xs, lrs, COLORS["lr"], steps=True),
        loss_panel.frame(f"trial #{curves.number}: {curves.state.name.lower()}", "epoch", None),
        loss_panel.line(epochs, curves.train_loss, COLORS["train"], dots=True),
        loss_panel.line(epochs, curves.val_loss, COLORS["val"], dots=True),
        loss_panel.legend([("train loss", COLORS["train"]), ("val loss", COLORS["val"])]),
        "</svg>",
    ]
    return "\n".join(parts) + "\n"


class _Panel:
    def __init__(
        self, box: tuple[int, int, int, int], x_range: tuple[float, float], y_range: tuple[float, float], log: bool
    ) -> None:
        self.left, self.top, self.width, self.height = box
        self.x0, self.x1 = x_range if x_range[1] > x_range[0] else (x_range[0] - 0.5, x_range[0] + 0.5)
        self.y0, self.y1 = y_range
        self.log = log

    def x(self, value: float) -> float:
        return self.left + (value - self.x0) / (self.x1 - self.x0) * self.width

    def y(self, value: float) -> float:
        low, high, v = (
            (math.log10(self.y0), math.log10(self.y1), math.log10(value))
            if self.log
            else (
                self.y0,
                self.y1,
                value,
            )
        )
        return self.top + self.height - (v - low) / (high - low) * self.height

    def frame(self, title: str, x_label: str, y_label: str | None) -> str:
        left, top, width, height = self.left, self.top, self.width, self.height
        parts = [
            f'<rect x="{left}" y="{top}" width="{width}" height="{height}" fill="none" stroke="black"/>',
            _text(left + width / 2, top - 10, title, size=13),
            _text(left + width / 2, top + height + 38, x_label, size=11),
        ]
        if y_label is not None:
            parts.append(
                _text(left - 58, top + height / 2, y_label, size=11, rotate=True),
            )
        for tick in _linear_ticks(self.x0, self.x1):
            x = self.x(tick)
            parts.append(
                f'<line x1="{x:.1f}" y1="{top + height}" x2="{x:.1f}" y2="{top + height + 4}" stroke="black"/>'
            )
            parts.append(_text(x, top + height + 18, _tick_label(tick), size=10))
        for tick in _log_ticks(self.y0, self.y1) if self.log else _linear_ticks(self.y0, self.y1):
            y = self.y(tick)
            parts.append(f'<line x1="{left - 4}" y1="{y:.1f}" x2="{left}" y2="{y:.1f}" stroke="black"/>')
            parts.append(_text(left - 7, y + 4, _tick_label(tick), size=10, anchor="end"))
        return "\n".join(parts)

    def line(
        self, xs: Sequence[float], ys: Sequence[float], color: str, steps: bool = False, dots: bool = False
    ) -> str:
        points = [(x, y) for x, y in zip(xs, ys, strict=True) if math.isfinite(y) and (y > 0 or not self.log)]
        if steps:  # the value holds until the next point ("steps-post")
            held = []
            for (x, y), (next_x, _) in zip(points, [*points[1:], points[-1]], strict=True):
                held += [(x, y), (next_x, y)]
            points = held
        if not points:
            return ""
        path = " ".join(f"{self.x(x):.1f},{self.y(min(max(y, self.y0), self.y1)):.1f}" for x, y in points)
        svg = f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.5"/>'
        if dots:
            svg += "".join(
                f'<circle cx="{self.x(x):.1f}" cy="{self.y(min(max(y, self.y0), self.y1)):.1f}" r="2" fill="{color}"/>'
                for x, y in points
            )
        return svg

    def legend(self, entries: list[tuple[str, str]]) -> str:
        right, top = self.left + self.width - 8, self.top + 8
        parts = []
        for i, (label, color) in enumerate(entries):
            y = top + 8 + 15 * i
            parts.append(
                f'<line x1="{right - 100}" y1="{y}" x2="{right - 80}" y2="{y}" stroke="{color}" stroke-width="1.5"/>'
            )
            parts.append(_text(right - 75, y + 4, label, size=10, anchor="start"))
        return "\n".join(parts)


def _text(x: float, y: float, text: str, *, size: int, anchor: str = "middle", rotate: bool = False) -> str:
    turn = f' transform="rotate(-90 {x:.1f} {y:.1f})"' if rotate else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{turn}>{escape(text)}</text>'


def _y_range(values: Sequence[float], log: bool) -> tuple[float, float]:
    finite = [v for v in values if math.isfinite(v) and (v > 0 or not log)]
    if not finite:
        return (0.1, 1.0) if log else (0.0, 1.0)
    low, high = min(finite), max(finite)
    if log:
        return 10 ** math.floor(math.log10(low)), 10 ** math.ceil(math.log10(high) + 1e-12)
    margin = (high - low) * 0.05 or abs(high) * 0.05 or 0.5
    return low - margin, high + margin


def _linear_ticks(low: float, high: float, count: int = 5) -> list[float]:
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _log_ticks(low: float, high: float) -> list[float]:
    return [10.0**power for power in range(round(math.log10(low)), round(math.log10(high)) + 1)]


def _tick_label(value: float) -> str:
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e4):
        return f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{value:.6g}"


def _spans_decades(lrs: Sequence[float]) -> bool:
    """Warm-ups and decays span decades: a log scale shows them; a linear one, constant LRs."""
    return min(lrs) > 0 and max(lrs) / min(lrs) > 20
