"""How certification trains the classic recipe, labels the control schedules (`problem.controls`, where
their runs are built), and where a control's LR tuning starts when the search tried it at no LR."""

from __future__ import annotations

from lrsearch.certification.baselines import classic_recipe
from lrsearch.problem.controls import matched_lr, searched_as
from lrsearch.problem.lr_walk import grid_around
from lrsearch.problem.spec import RunSpec, ScheduleSpec

# The classic recipe the project started from, trained as it is (SGD without momentum at lr 0.1,
# StepLR(10, 0.1)): not tuned, so a certificate shows whether the answer beats what a tutorial gives.
CLASSIC = "StepLR(10, 0.1), SGD lr 0.1 (the classic recipe, untuned)"

# Which control the race keeps among those its seeds cannot tell apart (`race`: within one standard error
# of the best), the most robust across problems first: linear decay to zero beats the other shapes when
# each is tuned (Defazio et al. 2023, "When, Why and How Much?"; Bergsma et al. 2025, "Straight to Zero");
# warmup-stable-decay matches a cosine (Hägele et al. 2024); a constant LR leaves noise in the last steps;
# the classic recipe is not tuned at all.
ROBUST_FIRST = ("linear decay to zero", "warmup-stable-decay", "StepLR(10, 0.1)", "constant", CLASSIC)


def robustness_rank(name: str) -> float:
    """A control's place in `ROBUST_FIRST`; a stretched StepLR just after the literal one."""
    return ROBUST_FIRST.index(name) if name in ROBUST_FIRST else ROBUST_FIRST.index(searched_as(name)) + 0.5


def lr_grid(answer: RunSpec, control: ScheduleSpec, lr_low: float, lr_high: float, epochs: int) -> list[float]:
    """The first LRs a control (its schedule for a run of `epochs`) is tried at, within the search's LR
    range: around the base LR that gives it the answer's mean LR over the run (a linear decay to zero
    averages half its base LR, so it is centred on twice the answer's mean), since the search has found the
    problem's LR scale."""
    return grid_around(matched_lr(answer, control, epochs), lr_low, lr_high)


def classic_run(answer: RunSpec, epochs: int) -> RunSpec:
    """The classic recipe (`CLASSIC`) on the answer's problem, for a run of `epochs`."""
    return classic_recipe(answer).model_copy(update={"epochs": epochs})


def control_label(name: str, lr: float) -> str:
    """e.g. `linear decay to zero, lr 0.05`."""
    return f"{name}, lr {lr:.3g}"
