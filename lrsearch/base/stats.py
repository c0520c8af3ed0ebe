"""Means with 95% intervals, as scipy computes them: how a certificate says what is noise and what is not.

Student's t quantiles come from `scipy.special` (`stdtrit`, what `scipy.stats.t.ppf` calls), and the
intervals are `scipy.stats.ttest_1samp`'s and `ttest_rel`'s, written out (mean ± quantile x standard
error; tests check them against scipy.stats): importing `scipy.stats` takes 0.6 s on a 2-core CPU, 5% of
the default certified command, against 0.2 s for `scipy.special`.
"""

from __future__ import annotations

import math
import statistics
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
    return _interval(mean, values)


def paired_difference(first: Sequence[float], second: Sequence[float]) -> Interval:
    """The mean of `first[i] - second[i]` (the same seed i) and its 95% interval,
    `scipy.stats.ttest_rel(first, second).confidence_interval()`: pairing by seed removes the noise the
    two runs of a seed share (its initial weights and batch order)."""
    first, second = _finite(first), _finite(second)
    if len(first) != len(second):
        raise ValueError(f"paired values differ in number: {len(first)} and {len(second)}")
    differences = [a - b for a, b in zip(first, second, strict=True)]
    mean = math.fsum(differences) / len(differences)
    return _interval(mean, differences)


def t_quantile(probability: float, degrees: int) -> float:
    """Student's t quantile, `scipy.stats.t.ppf(probability, degrees)`."""
    from scipy.special import stdtrit

    return float(stdtrit(degrees, probability))


def t_tail(statistic: float, degrees: int) -> float:
    """The chance that Student's t exceeds `statistic`, `scipy.stats.t.sf(statistic, degrees)`."""
    from scipy.special import stdtr

    return float(stdtr(degrees, -statistic))


def _interval(mean: float, values: list[float]) -> Interval:
    """`mean` and its 95% interval from the spread of `values` (Student's t); none for one value. Values
    that are all equal have no spread: the interval is the mean."""
    n = len(values)
    if n < 2:
        return Interval(mean=mean, low=None, high=None, n=n)
    half = t_quantile(0.5 + CONFIDENCE / 2, n - 1) * statistics.stdev(values) / math.sqrt(n)
    return Interval(mean=mean, low=mean - half, high=mean + half, n=n)


def _finite(values: Sequence[float]) -> list[float]:
    values = [float(value) for value in values]
    if not values:
        raise ValueError("no values")
    if not all(math.isfinite(value) for value in values):
        raise ValueError(f"not every value is finite: {values}")
    return values
