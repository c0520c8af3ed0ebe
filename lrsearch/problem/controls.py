"""The control schedules: well-known recipes with fixed shapes, each at its own tuned base LR.

A certificate compares the search's answer with them, so that "the search found something better" means
better than a default a careful person would have used. Their LRs are tuned where the search's schedules
are: as trials of the study (`control_trial_params`: a control is a point of the search space, its shape
pinned, its LR walked), and certification finishes the tuning where those trials leave it open.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lrsearch.problem.build import mean_lr_factor
from lrsearch.problem.spec import RunSpec, ScheduleSpec

# Control name -> its schedule for a run of `epochs` epochs (the registry's own schedules). Cosine to zero
# is not one: tuned, it is all but linear decay to zero's twin (`benchmarks/quality.py twins`: on 8 tasks,
# at 20 and at 100 epochs, the same best LR of 8 every time; fresh-seed test losses within 0.001 at 100
# epochs, and at 20 within noise on 6 tasks), so racing both cost a walk and 3 race runs for a second draw
# of nearly one run; the search still searches it.
CONTROLS: dict[str, Callable[[int], ScheduleSpec]] = {
    "constant": lambda epochs: ScheduleSpec(name="none"),
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


STEP_STRETCHED = "(StepLR(10, 0.1) stretched to "  # in the name of StepLR(10, 0.1) stretched to a run


def controls_for(epochs: int, search_epochs: int | None = None) -> dict[str, Callable[[int], ScheduleSpec]]:
    """The controls of a certification at `epochs` whose search ran `search_epochs` (default the same):
    name -> its schedule for a run of n epochs. StepLR(10, 0.1) never steps in 10 epochs or fewer, where
    it is the constant control again; at another length than the search's it is also tried stretched
    (its step scaled with the run, as `RunSpec.stretched` scales a searched schedule), under a name that
    says so."""
    chosen = {name: make for name, make in CONTROLS.items() if not (name == "StepLR(10, 0.1)" and epochs <= 10)}
    step = round(10 * epochs / (search_epochs or epochs))
    if step != 10 and 1 <= step < epochs:
        stretched = f"StepLR({step}, 0.1) {STEP_STRETCHED}{epochs} epochs)"
        chosen[stretched] = lambda n: ScheduleSpec(name="StepLR", params={"step_size": step, "gamma": 0.1})
    return chosen


def searched_as(name: str) -> str:
    """The control of the search whose run a control of `controls_for` is at the search's length: itself,
    or StepLR(10, 0.1) for its stretched form.

    Raises:
        KeyError: the name of no control (a stored one, say, of a control since retired).
    """
    if name in CONTROLS:
        return name
    if STEP_STRETCHED in name:
        return "StepLR(10, 0.1)"
    raise KeyError(f"no control is named {name!r}; the controls: {', '.join(CONTROLS)}")


def schedule_params(schedule: ScheduleSpec) -> dict[str, Any]:
    """A schedule as the trial parameters that choose it: `{"schedule": "StepLR", "StepLR.gamma": 0.1, ...}`."""
    return {"schedule": schedule.name} | {f"{schedule.name}.{key}": value for key, value in schedule.params.items()}


def matched_lr(answer: RunSpec, control: ScheduleSpec, epochs: int) -> float:
    """The base LR that gives the control (its schedule for a run of `epochs`, with the answer's optimizer)
    the answer's mean LR over its run: where a control's LR tuning starts, since the answer has found the
    problem's LR scale (a linear decay to zero averages half its base LR, so it starts at twice the answer's mean)."""
    answer_mean = answer.lr * mean_lr_factor(answer)
    return answer_mean / mean_lr_factor(control_run(answer, control, answer.lr, epochs))


def control_run(answer: RunSpec, schedule: ScheduleSpec, lr: float, epochs: int) -> RunSpec:
    """A control's schedule at base LR `lr` for a run of `epochs`, with the answer's optimizer, model,
    data and seed."""
    return answer.model_copy(update={"schedule": schedule, "lr": lr, "epochs": epochs})
