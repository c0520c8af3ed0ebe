"""How certification trains the control schedules (`problem.controls`) and the classic recipe: their runs,
their labels, and the LRs a control's tuning tries."""

from __future__ import annotations

from lrsearch.certification.baselines import classic_recipe
from lrsearch.problem.build import mean_lr_factor
from lrsearch.problem.spec import RunSpec, ScheduleSpec

# The classic recipe the project started from, trained as it is (SGD without momentum at lr 0.1,
# StepLR(10, 0.1)): not tuned, so a certificate shows whether the answer beats what a tutorial gives.
CLASSIC = "StepLR(10, 0.1), SGD lr 0.1 (the classic recipe, untuned)"

# The base LRs each control is tried at first, when the search tried it at none: its matched LR (below)
# times these. Steps of 2x over a 16x span: the best of them is within 1.4x of the control's best LR, where
# a loss is flat. A control whose best LR is at an edge of what it tried is tried a step further out, and
# one whose nearest LRs tried are further than a step away (the sampler's picks) between them (`next_lr`),
# so a span that missed is widened and a coarse one refined rather than trusted.
LR_FACTORS = (1 / 4, 1 / 2, 1.0, 2.0, 4.0)
LR_STEP = 2.0


def lr_grid(answer: RunSpec, control: ScheduleSpec, lr_low: float, lr_high: float, epochs: int) -> list[float]:
    """The first LRs a control (its schedule for a run of `epochs`) is tried at, within the search's LR
    range: around the base LR that gives it the answer's mean LR over the run (a cosine to zero averages
    half its base LR, so it is centred on twice the answer's mean), since the search has found the
    problem's LR scale."""
    return grid_around(matched_lr(answer, control, epochs), lr_low, lr_high)


def matched_lr(answer: RunSpec, control: ScheduleSpec, epochs: int) -> float:
    """The base LR that gives the control (its schedule for a run of `epochs`) the answer's mean LR."""
    answer_mean = answer.lr * mean_lr_factor(answer)
    return answer_mean / mean_lr_factor(control_run(answer, control, answer.lr, epochs))


def grid_around(centre: float, lr_low: float, lr_high: float, factors: tuple[float, ...] = LR_FACTORS) -> list[float]:
    """`centre` times each of `factors`, within the search's LR range: where a candidate's LR sweep starts."""
    return sorted({min(lr_high, max(lr_low, centre * factor)) for factor in factors})


def next_lr(tried: list[float], best: float, lr_low: float, lr_high: float) -> float | None:
    """The next LR to try around `best` (the best of `tried`, sorted), within the search's range: one step
    beyond the edge of `tried` where it lies; else, where a neighbour tried is more than a step away, the
    LR halfway (geometrically) to the farther one; None when `best` is closely surrounded, or at the
    range's edge."""
    if best == min(tried) and best > lr_low:
        return max(lr_low, best / LR_STEP)
    if best == max(tried) and best < lr_high:
        return min(lr_high, best * LR_STEP)
    index = tried.index(best)
    neighbours = [tried[i] for i in (index - 1, index + 1) if 0 <= i < len(tried)]
    farther = max(neighbours, key=lambda lr: max(lr / best, best / lr), default=None)
    if farther is None or max(farther / best, best / farther) <= LR_STEP * 1.01:
        return None
    return (best * farther) ** 0.5


def control_run(answer: RunSpec, schedule: ScheduleSpec, lr: float, epochs: int) -> RunSpec:
    """A control's schedule at base LR `lr` for a run of `epochs`, with the answer's optimizer, model,
    data and seed."""
    return answer.model_copy(update={"schedule": schedule, "lr": lr, "epochs": epochs})


def classic_run(answer: RunSpec, epochs: int) -> RunSpec:
    """The classic recipe (`CLASSIC`) on the answer's problem, for a run of `epochs`."""
    return classic_recipe(answer).model_copy(update={"epochs": epochs})


def control_label(name: str, lr: float) -> str:
    """e.g. `linear decay to zero, lr 0.05`."""
    return f"{name}, lr {lr:.3g}"
