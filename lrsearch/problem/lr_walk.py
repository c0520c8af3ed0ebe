"""How a control's base LR is tuned: a walk over LRs 2x apart, the same rule in the search and in
certification.

A control's shape is fixed, so tuning it is a search over one number, where a loss is flat within 1.4x
of its best LR. The walk starts from a grid around a guess, steps a step further out while the best LR
tried lies at an edge of what was tried, and tries halfway (geometrically) to a neighbour more than a
step away (a gap the first LRs left); it ends when the best LR has a neighbour within a step on each side, or
sits at an edge of the search's LR range. A diverged or pruned try counts as worse than any that finished.

The best LR is not simply the lowest val loss: an LR just below a cliff sits at the edge of stability,
where another seed or another draw of the data falls off (`benchmarks/quality.py`, on new splits of the
rows: on wine the walk's LRs 1.4-2x below a cliff had val loss 0.0000 at the search's seed and 0.17 to 29
at fresh seeds; digits certified at 100 epochs lost on all 10 new splits). A cliff is an LR whose run
diverged, or ended more than `CLIFF` times worse than the run at the next LR below and among the walk's
worst (within `CLIFF` of its highest loss: a network fallen to chance level, not a bump among small
losses). So the best LR is the lowest val loss among the LRs more than a step below the lowest cliff,
where there is one; else, as before, among all.
"""

from __future__ import annotations

import math

# The base LRs a walk tries first, around its guess: 5 LRs 2x apart span 16x, and the best of them is
# within 1.4x of the best LR, where a loss is flat.
LR_FACTORS = (1 / 4, 1 / 2, 1.0, 2.0, 4.0)
LR_STEP = 2.0
# A run this many times worse than the run a step below did not just train worse: it fell off the edge.
# Within a step of the best LR a loss is flat (within 1.4x of it, above); a cliff is an order apart.
CLIFF = 2.0


def grid_around(centre: float, lr_low: float, lr_high: float, factors: tuple[float, ...] = LR_FACTORS) -> list[float]:
    """`centre` times each of `factors`, within the search's LR range: where a candidate's LR sweep starts."""
    return sorted({min(lr_high, max(lr_low, centre * factor)) for factor in factors})


def best_lr(losses: dict[float, float | None]) -> float | None:
    """The LR with the lowest (mean) val loss among those more than a step below the lowest cliff (module
    docstring), or among all where none is; None when every LR diverged or was pruned."""
    finite = {lr: loss for lr, loss in losses.items() if loss is not None}
    lowest_cliff = min(cliff_lrs(losses), default=math.inf)
    safe = {lr: loss for lr, loss in finite.items() if lr * LR_STEP * 1.01 < lowest_cliff}
    pool = safe or finite
    return min(pool, key=pool.get) if pool else None


def cliff_lrs(losses: dict[float, float | None]) -> list[float]:
    """The LRs whose run fell off the edge of stability (module docstring): diverged (or pruned), or a val
    loss more than `CLIFF` times the next finished LR's below it and within `CLIFF` of the walk's highest;
    an LR with no finished one below is no cliff."""
    highest = max((loss for loss in losses.values() if loss is not None), default=None)
    cliffs, below = [], None
    for lr in sorted(losses):
        loss = losses[lr]
        if below is not None and (loss is None or (loss > CLIFF * below and CLIFF * loss >= highest)):
            cliffs.append(lr)
        if loss is not None:
            below = loss
    return cliffs


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


def walk_step(losses: dict[float, float | None], lr_low: float, lr_high: float) -> float | None:
    """The walk's next LR after `losses` (LR -> val loss, None: worse than any that finished), or None
    when it has ended: its best LR is closely surrounded, at the range's edge, or every LR diverged."""
    best = best_lr(losses)
    if best is None:
        return None
    lr = next_lr(sorted(losses), best, lr_low, lr_high)
    return None if lr is None or lr in losses else lr
