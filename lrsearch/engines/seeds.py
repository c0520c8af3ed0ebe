"""Every seed a study uses, drawn from its one seed (`study.seed`, `--seed`), and a trial trained at several.

The study's seed (`config.study.seed`) is the only one a user sets, and every other is read from it:
the data split (`load_data(config.data, config.study.seed)`, drawn once and kept), each run's seed (its
initial weights and batch order: `RunSpec.seed` is the study's seed, and a trial of S seeds trains at
`search_seeds`), each worker's sampler (`sampler_seed`) and the seeds a certificate trains at
(`fresh_seeds`). One seed's run is one draw of
the noise a seed brings: `SeedsEngine` trains each trial at S seeds in one stack and reports their mean,
so the search ranks schedules by less noisy numbers.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from lrsearch.engines.interface import Engine, EpochOutcome
from lrsearch.problem.spec import MAX_SEED, RunSpec
from lrsearch.store.records import EpochRecord

# Mixed into the study's seed for certification's seeds, so they are not the search's (seed, seed + 1...).
_CERTIFY_STREAM = 0xCE27


def sampler_seed(seed: int, worker: int, *, joining: bool) -> int | None:
    """Worker `worker`'s sampler seed: the study's seed plus its index, so the workers of one command
    propose different trials, reproducibly; None (fresh entropy) for a worker joining the study from
    another command (`lrsearch worker`), whose indices would repeat the first command's proposals."""
    return None if joining else (seed + worker) % (MAX_SEED + 1)


def search_seeds(seed: int, count: int) -> list[int]:
    """The seeds a search trains each trial at: its own seed, then the next ones."""
    return [(seed + i) % (MAX_SEED + 1) for i in range(count)]


def fresh_seeds(seed: int, count: int, avoid: int) -> list[int]:
    """`count` seeds that no search of `seed` trained at (it used `search_seeds(seed, avoid)`), drawn
    reproducibly from the study's seed."""
    used = set(search_seeds(seed, avoid))
    drawn: list[int] = []
    sequence = np.random.SeedSequence([seed, _CERTIFY_STREAM])
    while len(drawn) < count:
        for value in sequence.generate_state(count + len(used)) % (MAX_SEED + 1):
            if int(value) not in used and int(value) not in drawn and len(drawn) < count:
                drawn.append(int(value))
        sequence = sequence.spawn(1)[0]
    return drawn


class SeedsEngine:
    """Each trial trained at `seeds` seeds by the engine inside (S rows of one stack); its epoch is the
    mean of theirs, so the pruner and the sampler see the mean val loss."""

    def __init__(self, inner: Engine, seeds: int) -> None:
        self.inner, self.seeds = inner, seeds
        self._keys: list[object] = []

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: object, spec: RunSpec) -> None:
        for i, seed in enumerate(search_seeds(spec.seed, self.seeds)):
            self.inner.add((key, i), spec.model_copy(update={"seed": seed}))
        self._keys.append(key)

    def remove(self, key: object) -> None:
        for i in range(self.seeds):
            self.inner.remove((key, i))
        self._keys.remove(key)

    def test(self, key: object) -> tuple[float, float | None]:
        results = [self.inner.test((key, i)) for i in range(self.seeds)]
        return _mean([loss for loss, _ in results]), _mean_or_none([score for _, score in results])

    def train_epoch(self) -> list[EpochOutcome]:
        by_trial: dict[object, list[EpochOutcome]] = defaultdict(list)
        for outcome in self.inner.train_epoch():
            key, _ = outcome.key  # type: ignore[misc]  # this engine's own (trial, seed index) keys
            by_trial[key].append(outcome)
        return [_mean_outcome(key, outcomes, self.seeds) for key, outcomes in by_trial.items()]


def _mean_outcome(key: object, outcomes: list[EpochOutcome], seeds: int) -> EpochOutcome:
    """One trial's epoch from its seeds' epochs: the first failure or divergence, else the mean record."""
    for outcome in outcomes:
        if outcome.failed is not None:
            return EpochOutcome(key, None, failed=outcome.failed)
    for i, outcome in enumerate(sorted(outcomes, key=lambda o: o.key[1])):  # type: ignore[index]
        if outcome.diverged is not None:
            return EpochOutcome(key, None, diverged=f"{outcome.diverged} (seed {i + 1} of {seeds})")
    records = [outcome.record for outcome in outcomes if outcome.record is not None]
    first = records[0]
    record = EpochRecord(
        epoch=first.epoch,
        lr=first.lr,  # the seeds share the schedule; ReduceLROnPlateau's may differ, and the first is shown
        train_loss=_mean([r.train_loss for r in records]),
        val_loss=_mean([r.val_loss for r in records]),
        val_score=_mean_or_none([r.val_score for r in records]),
        step_lrs=first.step_lrs,
    )
    return EpochOutcome(key, record, finished=all(outcome.finished for outcome in outcomes))


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values)


def _mean_or_none(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return _mean(present) if len(present) == len(values) else None
