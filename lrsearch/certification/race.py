"""Certification as a race: every candidate trains at a few fresh seeds, one clearly worse than the leader
stops there, and seeds are added only while the decision is open, up to a cap.

The procedure is F-race's (Birattari et al. 2002; irace, López-Ibáñez et al. 2016): candidates meet on the
same seeds (the instances), so each comparison is paired by seed, which removes the noise a seed's initial
weights and batch order put into both runs. After `FIRST_SEEDS` seeds, and again each time the seeds still
racing have doubled, each candidate is compared with the leader (the lowest mean judged val loss) by a
one-sided paired t-test (`scipy.stats.ttest_rel`'s, written out: `base.stats`), the p-values corrected for
the number of comparisons by Holm's method; a candidate worse at the 5% level stops, unless it is its
kind's finalist. A run that diverges or fails stops its candidate at once.

The decision a certificate makes is one: is the best searched schedule better than the best control
(`verdict.judge`, by the same paired 95% interval)? So after the first test only the two finalists, one
of the searched candidates (the leader) and one of the controls (below), train on: a candidate within
noise of its own kind's finalist would only choose among equals. The race ends when the decision is made
(the finalists' interval excludes zero, or one kind has no candidate left), when it is settled (below) or
at the cap; a finalist is never stopped as worse, so the race ends on the very interval the verdict
reads. Test figures never decide anything.

Among the controls, the finalist is not simply the lowest mean: at 3 seeds on one val split, which of
several tied controls leads is luck, and measured (`benchmarks/quality.py sweep`) it swung the test loss
either way. So, by the one-standard-error rule (Breiman et al. 1984; Hastie et al., The Elements of
Statistical Learning, 7.10), the finalist is the first in `preference` (the schedules found best across
problems first) whose mean is within one standard error of the leader's, paired by seed.

The race also stops for futility, as a clinical trial does (stochastic curtailment; Lan, Simon & Halperin
1982): an undecided race goes on only while the searched finalist could still be shown better than the
control, the one outcome that changes the recommendation (`verdict.judge` recommends the control
otherwise). When the conditional power of that, under the current trend, is below `FUTILITY` at the cap,
both finalists stop, settled.

The finalists' seeds double between two tests (3, 6, then the cap of 10), as SMAC's intensification
doubles a challenger's runs, rather than growing by a fixed step: each round trains its runs side by side and costs a
run's length in wall time almost whatever it holds (20 epochs of the built-in MLP on a 2-core CPU: 1 run
0.7 s, 4 runs 0.9 s, 14 runs 1.4 s), so reaching the cap in two rounds instead of four saves the most
time, while seeds are still added only while the decision is open.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

from lrsearch.base.stats import paired_difference, t_quantile, t_tail
from lrsearch.problem.spec import RunSpec

FIRST_SEEDS = 3  # the first test: at 2 seeds a t-test has one degree of freedom and stops nothing
ALPHA = 0.05  # family-wise, per test (Holm)
FUTILITY = 0.1  # the race goes on while the searched finalist has at least this chance of being shown better
SIMULATED = 4000  # the seeds to come, drawn this many times to estimate that chance

Judged = Callable[[Hashable], float | None]  # a run's key -> its judged val loss (None: it did not finish)
Train = Callable[[dict[Hashable, RunSpec]], None]  # trains runs keyed (label, seed); results read via Judged


@dataclass
class Entrant:
    """One candidate in the race: the seeds it trained at, and why it stopped (None: it ran to the end)."""

    label: str
    spec: RunSpec
    seeds: list[int] = field(default_factory=list)
    stopped: str | None = None


def race(
    candidates: dict[str, RunSpec],
    kinds: dict[str, str],
    seeds: list[int],
    train: Train,
    judged: Judged,
    first: int = FIRST_SEEDS,
    preference: Sequence[str] = (),
) -> dict[str, Entrant]:
    """Race the candidates (label -> run; `kinds`: label -> "searched" or "control") at `seeds` (in order;
    the cap is their number).

    Args:
        train: trains the runs given, keyed (label, seed), so that `judged` can read them.
        judged: the judged val loss of a trained run, by its key.
        preference: labels, the most preferred first: a kind's finalist is the first of them within one
            standard error of its leader (module docstring); those not named rank after, by mean.

    Returns:
        Each candidate's seeds and why it stopped, in the order given.
    """
    entrants = {label: Entrant(label, spec) for label, spec in candidates.items()}
    done = 0
    target = min(first, len(seeds))
    while True:
        alive = [e for e in entrants.values() if e.stopped is None]
        new = seeds[done:target]
        train({(e.label, seed): e.spec.model_copy(update={"seed": seed}) for e in alive for seed in new})
        for entrant in alive:
            for seed in new:
                if judged((entrant.label, seed)) is None:
                    entrant.stopped = entrant.stopped or f"its run at seed {seed} did not finish"
                elif entrant.stopped is None:
                    entrant.seeds.append(seed)
        done = target
        _eliminate([e for e in alive if e.stopped is None], kinds, judged, preference)
        finalists = _leaders([e for e in alive if e.stopped is None], kinds, judged, preference)
        decided = _decided(finalists, judged)
        for entrant in (e for e in alive if e.stopped is None and e not in finalists):
            leader = next(f for f in finalists if kinds[f.label] == kinds[entrant.label])
            entrant.stopped = (
                f"within noise of {leader.label} after {len(entrant.seeds)} seeds; more would choose among equals"
            )
        if decided or done == len(seeds):
            break
        searched, control = sorted(finalists, key=lambda e: kinds[e.label] != "searched")  # undecided: one of each
        power = _conditional_power(_differences(searched, control, judged), len(seeds))
        if power is not None and power < FUTILITY:
            settled = (
                f"settled after {done} seeds: {searched.label} had a {power:.0%} chance of being shown better "
                f"than {control.label} by the cap of {len(seeds)} seeds (conditional power, current trend)"
            )
            for entrant in finalists:
                entrant.stopped = settled
            return entrants
        target = min(len(seeds), 2 * done)
    for entrant in finalists:
        entrant.stopped = (
            f"decided after {len(entrant.seeds)} seeds"
            if decided and done < len(seeds)
            else f"in the race to the cap of {len(entrant.seeds)} seeds"
        )
    return entrants


def _leaders(
    alive: list[Entrant], kinds: dict[str, str], judged: Judged, preference: Sequence[str] = ()
) -> list[Entrant]:
    """Each kind's finalist among those still in the race, the searched one and the control: the most
    preferred within one standard error of the kind's lowest mean judged val loss (module docstring)."""
    rank = {label: index for index, label in enumerate(preference)}
    finalists = []
    for kind in dict.fromkeys(kinds[e.label] for e in alive):
        mine = sorted((e for e in alive if kinds[e.label] == kind), key=lambda e: _mean(e, judged))
        near = [e for e in mine if _within_one_error(e, mine[0], judged)]
        finalists.append(min(near, key=lambda e: rank.get(e.label, len(rank))))  # min keeps the mean's order
    return finalists


def _within_one_error(entrant: Entrant, leader: Entrant, judged: Judged) -> bool:
    """Whether the entrant's mean is within one standard error of the leader's, paired by seed."""
    if entrant is leader:
        return True
    if len(entrant.seeds) < 2:
        return False
    differences = _differences(entrant, leader, judged)
    mean = statistics.fmean(differences)
    return mean <= statistics.stdev(differences) / math.sqrt(len(differences))


def _differences(entrant: Entrant, other: Entrant, judged: Judged) -> list[float]:
    """The entrant's judged val loss minus the other's, seed by seed, at the entrant's seeds."""
    return [judged((entrant.label, s)) - judged((other.label, s)) for s in entrant.seeds]


def _conditional_power(differences: list[float], cap: int) -> float | None:
    """The chance that, at the cap, the paired 95% interval of `differences` (the searched finalist's val
    losses minus the control's, so far) lies below zero if the seeds to come go on as the ones so far (the
    current trend, its spread as measured), by simulating them (`SIMULATED` times, a fixed generator: a
    certificate is reproducible); None below 2 seeds, which have no spread."""
    if len(differences) < 2:
        return None
    import numpy as np

    n, mean, spread = len(differences), statistics.fmean(differences), statistics.stdev(differences)
    if spread == 0:
        return 1.0 if mean < 0 else 0.0
    future = np.random.default_rng(0).normal(mean, spread, size=(SIMULATED, cap - n))
    every = np.concatenate([np.broadcast_to(differences, (SIMULATED, n)), future], axis=1)
    high = every.mean(axis=1) + t_quantile(0.975, cap - 1) * every.std(axis=1, ddof=1) / math.sqrt(cap)
    return float((high < 0).mean())


def _decided(finalists: list[Entrant], judged: Judged) -> bool:
    """Whether the certificate's question is answered: one kind is out, or the finalists' paired 95%
    interval excludes zero (`base.stats.paired_difference`, as `verdict.judge` reads it)."""
    if len(finalists) < 2:
        return True
    first, second = ([judged((e.label, seed)) for seed in e.seeds] for e in finalists)
    return len(first) >= 2 and paired_difference(first, second).excludes_zero()


def _mean(entrant: Entrant, judged: Judged) -> float:
    return math.fsum(judged((entrant.label, seed)) for seed in entrant.seeds) / len(entrant.seeds)


def _eliminate(alive: list[Entrant], kinds: dict[str, str], judged: Judged, preference: Sequence[str]) -> None:
    """Stop every candidate worse than the leader beyond noise (module docstring), but never its kind's
    finalist (`_leaders`): the finalists are judged by the certificate's own interval (`_decided`), so that the race
    and the verdict read the same pair by the same test."""
    if len(alive) < 2 or len(alive[0].seeds) < 2:
        return
    losses = {e.label: [judged((e.label, seed)) for seed in e.seeds] for e in alive}
    leader = min(alive, key=lambda e: _mean(e, judged))
    kept = _leaders(alive, kinds, judged, preference)
    others = [e for e in alive if e not in kept]
    p_values = {e.label: _p_worse(losses[e.label], losses[leader.label]) for e in others}
    for entrant, adjusted in holm(p_values).items():
        if adjusted < ALPHA:
            by_label = next(e for e in others if e.label == entrant)
            by_label.stopped = (
                f"worse than {leader.label} after {len(by_label.seeds)} seeds "
                f"(paired t-test, p = {adjusted:.2g} corrected for {len(others)} comparisons)"
            )


def _p_worse(losses: list[float], leader: list[float]) -> float:
    """One-sided p-value that `losses` are higher than the leader's, paired by seed:
    `scipy.stats.ttest_rel(losses, leader, alternative="greater").pvalue`, written out (`base.stats`)."""
    differences = [a - b for a, b in zip(losses, leader, strict=True)]
    if max(differences) == min(differences):  # no spread: a t-test is undefined; no noise, no doubt
        return 0.0 if differences[0] > 0 else 1.0
    n = len(differences)
    error = statistics.stdev(differences) / math.sqrt(n)
    return t_tail(statistics.fmean(differences) / error, n - 1)


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjustment of `p_values` (one per comparison): each adjusted p-value controls the
    chance of any false rejection among them at its level. scipy has Benjamini-Hochberg's (a false
    discovery rate) but not this, and adding statsmodels for it would be a dependency for six lines."""
    ordered = sorted(p_values.items(), key=lambda item: item[1])
    count, running, adjusted = len(ordered), 0.0, {}
    for rank, (label, p) in enumerate(ordered):
        running = max(running, min(1.0, (count - rank) * p))
        adjusted[label] = running
    return adjusted
