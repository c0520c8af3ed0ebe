"""The base LR of a longer run, predicted from the short run's: a horizon rule fitted on one control.

The best base LR falls as a run gets longer (Bjorck et al., ICLR 2025, "Scaling Optimal LR Across Token
Horizons": LR* proportional to the training horizon to a negative power). Certifying a 20-epoch search at
100 epochs, every candidate's best LR moved by about the same factor within a task, and by very different
factors across tasks (1/8 on classification and moons, 1/2 to 1 on digits and wine: `benchmarks/
quality.py length`), so no fixed exponent serves; one is fitted per certificate instead. One control
(the pilot, a constant LR) is tuned at the certified length by the full sweep; its LR there against its
LR in the search gives the exponent; every other candidate starts from its own short-run LR moved by
that rule, on a narrow grid (`NARROW_FACTORS`), still widened while its best LR is at an edge.

The horizon is a schedule's LR area (epochs times its mean LR factor, `build.mean_lr_factor`), not its
epoch count: the literal StepLR(10, 0.1) has all but stopped by epoch 30 at any length, so its area, and
its best LR, hardly move, while a stretched schedule's area grows with the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lrsearch.problem.build import mean_lr_factor
from lrsearch.problem.spec import RunSpec

# A candidate whose LR is predicted starts at 3 LRs 2x apart around the prediction (the pilot's 5 span
# 16x): within a task the candidates' moves agreed to a factor of 2 (the note of issue 22).
NARROW_FACTORS = (1 / 2, 1.0, 2.0)
PILOT = "constant"  # the control whose horizon is the run's length itself (area ratio = epochs ratio)


def lr_area(spec: RunSpec) -> float:
    """The run's LR area in epochs at base LR 1: its length times its mean LR factor."""
    return spec.epochs * mean_lr_factor(spec)


@dataclass(frozen=True)
class HorizonRule:
    """LR at the long run = LR at the short run x (long area / short area) ** -exponent."""

    exponent: float
    pilot: str

    @classmethod
    def fit(cls, pilot: str, short_lr: float, long_lr: float, area_ratio: float) -> HorizonRule:
        """The exponent that moves the pilot's short-run LR to its best LR at the long run."""
        if abs(math.log(area_ratio)) < 1e-9 or math.isclose(short_lr, long_lr):  # no move to fit
            return cls(0.0, pilot)
        return cls(-math.log(long_lr / short_lr) / math.log(area_ratio), pilot)

    def predict(self, short_lr: float, area_ratio: float) -> float:
        return short_lr * area_ratio**-self.exponent

    def describe(self, short_epochs: int, long_epochs: int) -> str:
        """e.g. `LRs at 100 epochs started from the 20-epoch ones x (LR area ratio) ** -1.3, fitted on constant`."""
        return (
            f"LRs at {long_epochs} epochs started from the {short_epochs}-epoch ones x (LR area ratio) ** "
            f"{-self.exponent + 0.0:.2g}, fitted on {self.pilot}"
        )
