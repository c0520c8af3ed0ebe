"""What the pictures show, as plain data read from finished trials: the LR a trial trained with at every
optimizer step, its per-epoch losses, the best trials, and each schedule type's results.

No plotting here: the dashboard's figures (plotly) and the report's (matplotlib) both draw from this. A
trial's curves are its record's (`store.records.TrialCurves`): read here, never parsed again.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from optuna.trial import FrozenTrial, TrialState

from lrsearch.problem.build import LoadedSchedule
from lrsearch.problem.spec import RunSpec
from lrsearch.store.records import TrialCurves, TrialRecord

# A picture replays a stored schedule step by step; past this many steps it draws the per-epoch LRs.
MAX_REPLAYED_STEPS = 200_000
MAX_POINTS = 200  # per curve: enough to show a cycle's shape, small enough to store in a study


def lr_curve(curves: TrialCurves) -> tuple[list[float], list[float]]:
    """`trial_lr_by_step(curves)` thinned for drawing, with the last LR held to the end of the last epoch."""
    xs, ys = thin(*trial_lr_by_step(curves))
    return [*xs, float(len(curves.val_loss))], [*ys, ys[-1]]


def trial_lr_by_step(curves: TrialCurves) -> tuple[list[float], list[float]]:
    """(position in epochs, LR) from which the trial's LR held until the next point: as training recorded
    it, else replayed with the real scheduler (the per-epoch LRs when the steps are unknown)."""
    if curves.recorded_step_lrs is not None:
        positions: list[float] = []
        lrs: list[float] = []
        for epoch, (lr, steps) in enumerate(zip(curves.lr, curves.recorded_step_lrs, strict=True)):
            positions += [epoch + step / len(steps) for step in range(len(steps))] if steps else [float(epoch)]
            lrs += list(steps) if steps else [lr]
        return positions, lrs
    per_epoch = [epoch - 1.0 for epoch in curves.epochs], list(curves.lr)
    if curves.steps_per_epoch is None or curves.steps_per_epoch * len(curves.val_loss) > MAX_REPLAYED_STEPS:
        return per_epoch
    try:
        positions_, lrs_ = _replayed(curves.spec.model_dump_json(), curves.steps_per_epoch, tuple(curves.val_loss))
    except Exception:  # noqa: BLE001 - stored parameters its scheduler can't take (any error): a view, not a run
        return per_epoch
    return list(positions_), list(lrs_)


def lr_by_step(spec: RunSpec, steps_per_epoch: int, val_losses: Sequence[float]) -> tuple[list[float], list[float]]:
    """Replay the spec's schedule for `len(val_losses)` epochs with the real scheduler and return
    (position in epochs, LR) from which the LR holds until the next point: every optimizer step for
    per-batch schedules, every epoch start for the others. ReduceLROnPlateau is fed the recorded val
    losses, as it was in training."""
    schedule = LoadedSchedule(spec)
    optimizer, scheduler = schedule.shadow(steps_per_epoch)
    positions: list[float] = []
    lrs: list[float] = []
    for epoch, val_loss in enumerate(val_losses):
        for step in range(steps_per_epoch if schedule.step_on == "batch" else 1):
            positions.append(epoch + step / steps_per_epoch)
            lrs.append(optimizer.param_groups[0]["lr"])
            schedule.after_batch(scheduler)
        schedule.after_epoch(scheduler, val_loss)
    return positions, lrs


@functools.lru_cache(maxsize=256)  # the study's figures redraw the same best trials again and again
def _replayed(spec_json: str, steps_per_epoch: int, val_losses: tuple[float, ...]) -> tuple[tuple, tuple]:
    positions, lrs = lr_by_step(RunSpec.model_validate_json(spec_json), steps_per_epoch, val_losses)
    return tuple(positions), tuple(lrs)


def thin(xs: Sequence[float], ys: Sequence[float], limit: int = MAX_POINTS) -> tuple[list[float], list[float]]:
    """At most about `limit` evenly spaced points of a curve, its last point kept."""
    stride = max(1, -(-len(xs) // limit))
    keep = list(range(0, len(xs), stride))
    if keep and keep[-1] != len(xs) - 1:
        keep.append(len(xs) - 1)
    return [xs[i] for i in keep], [ys[i] for i in keep]


def finished_curves(trials: Sequence[FrozenTrial]) -> list[TrialCurves]:
    """Curves of the completed and pruned trials (a pruned trial's curve ends where it was stopped)."""
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    return [record.curves for record in map(TrialRecord.of, finished) if record is not None and record.curves]


def top_completed(curves: Sequence[TrialCurves], k: int) -> list[TrialCurves]:
    """The `k` completed trials with the lowest final val loss, best first."""
    completed = [c for c in curves if c.state == TrialState.COMPLETE and c.value is not None]
    return sorted(completed, key=lambda c: c.value)[:k]


def best_loss_by_schedule(curves: Sequence[TrialCurves]) -> dict[str, list[float]]:
    """Schedule type -> the best val loss each of its trials reached (pruned ones included, so a type
    that is often pruned early shows it); types in order of their median."""
    grouped: dict[str, list[float]] = {}
    for c in curves:
        grouped.setdefault(c.spec.schedule.name, []).append(c.best_val_loss)

    def median(values: list[float]) -> float:
        ordered = sorted(values)
        return ordered[len(ordered) // 2]

    return dict(sorted(grouped.items(), key=lambda item: median(item[1])))
