"""The control schedules every certificate compares the search's answer with: well-known recipes, each
at its own tuned base LR, so that "the search found something better" means better than a default a
careful person would have used, not better than a strawman."""

from __future__ import annotations

from collections.abc import Callable

from lrsearch.certification.baselines import classic_recipe
from lrsearch.problem.build import mean_lr_factor
from lrsearch.problem.spec import RunSpec, ScheduleSpec

# Control name -> its schedule for a run of `epochs` epochs (the registry's own schedules).
CONTROLS: dict[str, Callable[[int], ScheduleSpec]] = {
    "constant": lambda epochs: ScheduleSpec(name="none"),
    "cosine to zero": lambda epochs: ScheduleSpec(name="CosineAnnealingLR", params={"T_max": epochs}),
    "linear decay to zero": lambda epochs: ScheduleSpec(
        name="PolynomialLR", params={"total_iters": epochs, "power": 1.0}
    ),
    # Warm up over the first tenth, hold, decay over the last fifth to a thousandth of the base LR.
    "warmup-stable-decay": lambda epochs: ScheduleSpec(
        name="WarmupStableDecay",
        params={
            "warmup_epochs": max(1, round(epochs / 10)),
            "warmup_start_factor": 0.1,
            "decay_epochs": max(1, round(epochs / 5)),
            "final_factor": 0.001,
        },
    ),
    "StepLR(10, 0.1)": lambda epochs: ScheduleSpec(name="StepLR", params={"step_size": 10, "gamma": 0.1}),
}
# The classic recipe the project started from, trained as it is (SGD without momentum at lr 0.1,
# StepLR(10, 0.1)): not tuned, so a certificate shows whether the answer beats what a tutorial gives.
CLASSIC = "StepLR(10, 0.1), SGD lr 0.1 (the classic recipe, untuned)"

# The base LRs each control is tried at first: its matched LR (below) times these. Steps of 2x over a
# 16x span: the best of them is within 1.4x of the control's best LR, where a loss is flat. A control whose
# best LR is at an edge of its grid is tried a step further out (`next_lr`), so a span that missed is
# widened rather than trusted.
LR_FACTORS = (1 / 4, 1 / 2, 1.0, 2.0, 4.0)
LR_STEP = 2.0


def controls_for(epochs: int, search_epochs: int | None = None) -> dict[str, Callable[[int], ScheduleSpec]]:
    """The controls of a certification at `epochs` whose search ran `search_epochs` (default the same):
    name -> its schedule for a run of n epochs. StepLR(10, 0.1) never steps in 10 epochs or fewer, where
    it is the constant control again; at another length than the search's it is also tried stretched
    (its step scaled with the run, as `RunSpec.stretched` scales a searched schedule), under a name that
    says so."""
    chosen = {name: make for name, make in CONTROLS.items() if not (name == "StepLR(10, 0.1)" and epochs <= 10)}
    step = round(10 * epochs / (search_epochs or epochs))
    if step != 10 and 1 <= step < epochs:
        stretched = f"StepLR({step}, 0.1) (StepLR(10, 0.1) stretched to {epochs} epochs)"
        chosen[stretched] = lambda n: ScheduleSpec(name="StepLR", params={"step_size": step, "gamma": 0.1})
    return chosen


def lr_grid(answer: RunSpec, control: ScheduleSpec, lr_low: float, lr_high: float, epochs: int) -> list[float]:
    """The first LRs a control (its schedule for a run of `epochs`) is tried at, within the search's LR
    range: around the base LR that gives it the answer's mean LR over the run (a cosine to zero averages
    half its base LR, so it is centred on twice the answer's mean), since the search has found the
    problem's LR scale."""
    answer_mean = answer.lr * mean_lr_factor(answer)
    matched = answer_mean / mean_lr_factor(control_run(answer, control, answer.lr, epochs))
    return grid_around(matched, lr_low, lr_high)


def grid_around(centre: float, lr_low: float, lr_high: float) -> list[float]:
    """`centre` times each of `LR_FACTORS`, within the search's LR range: where a candidate's LR sweep starts."""
    return sorted({min(lr_high, max(lr_low, centre * factor)) for factor in LR_FACTORS})


def next_lr(tried: list[float], best: float, lr_low: float, lr_high: float) -> float | None:
    """One step beyond the edge of `tried` where `best` lies (within the search's range); None when the
    best LR is inside the grid, or the edge is the range's."""
    if best == min(tried) and best > lr_low:
        return max(lr_low, best / LR_STEP)
    if best == max(tried) and best < lr_high:
        return min(lr_high, best * LR_STEP)
    return None


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
