"""Means with 95% intervals, as scipy computes them: how a certificate says what is noise and what is not."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

CONFIDENCE = 0.95


class Interval(BaseModel):
    """A mean over seeds and its 95% interval (Student's t); `low`/`high` are None for one value."""

    model_config = ConfigDict(frozen=True)

    mean: float
    low: float | None
    high: float | None
    n: int

    @property
    def half_width(self) -> float | None:
        return None if self.low is None or self.high is None else (self.high - self.low) / 2

    def text(self, digits: int = 4) -> str:
        """`0.4123 ± 0.0061`, or the mean alone when there is no interval."""
        half = self.half_width
        return f"{self.mean:.{digits}f}" + ("" if half is None else f" ± {half:.{digits}f}")

    def excludes_zero(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def mean_interval(values: Sequence[float]) -> Interval:
    """The mean of `values` and its 95% interval, `scipy.stats.ttest_1samp(values, 0).confidence_interval()`.

    Raises:
        ValueError: no values, or one that is not finite (a diverged run has no loss to average).
    """
    values = _finite(values)
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return Interval(mean=mean, low=None, high=None, n=len(values))
    from scipy import stats

    with warnings.catch_warnings():  # equal values: scipy warns of cancellation, and the interval is the mean
        warnings.simplefilter("ignore", RuntimeWarning)
        interval = stats.ttest_1samp(values, 0.0).confidence_interval(CONFIDENCE)
    return _interval(mean, interval.low, interval.high, len(values))


def paired_difference(first: Sequence[float], second: Sequence[float]) -> Interval:
    """The mean of `first[i] - second[i]` (the same seed i) and its 95% interval,
    `scipy.stats.ttest_rel(first, second).confidence_interval()`: pairing by seed removes the noise the
    two runs of a seed share (its initial weights and batch order)."""
    first, second = _finite(first), _finite(second)
    if len(first) != len(second):
        raise ValueError(f"paired values differ in number: {len(first)} and {len(second)}")
    differences = [a - b for a, b in zip(first, second, strict=True)]
    mean = math.fsum(differences) / len(differences)
    if len(differences) < 2:
        return Interval(mean=mean, low=None, high=None, n=len(differences))
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        interval = stats.ttest_rel(first, second).confidence_interval(CONFIDENCE)
    return _interval(mean, interval.low, interval.high, len(differences))


def _interval(mean: float, low: float, high: float, n: int) -> Interval:
    # Values that are all equal have no spread: scipy gives nan (or the mean) for both ends.
    if not (math.isfinite(low) and math.isfinite(high)):
        low = high = mean
    return Interval(mean=mean, low=float(low), high=float(high), n=n)


def _finite(values: Sequence[float]) -> list[float]:
    values = [float(value) for value in values]
    if not values:
        raise ValueError("no values")
    if not all(math.isfinite(value) for value in values):
        raise ValueError(f"not every value is finite: {values}")
    return values
