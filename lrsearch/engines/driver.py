"""Runs trained to their end: the one driver of engines for certification, replay and the benchmarks.

The search's trial loop (`trials.loop`) drives engines through Optuna's lifecycle, where a pruner may end
a run at any epoch. Everything else trains a set of runs to their last epoch and wants each one's figures:
`train_to_end` keeps up to `stack` of them in one engine, refills a finished run's row at once, and
measures a run on the test split at its last epoch and at its best val epoch (what a checkpoint or early
stopping keeps) when asked to. A run whose loss diverges, or whose model or data raises, stops with why;
the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Hashable
from dataclasses import dataclass

from lrsearch.base.errors import is_fault
from lrsearch.engines.factory import NewEngine
from lrsearch.engines.interface import Engine
from lrsearch.problem.spec import RunSpec
from lrsearch.store.records import EpochRecord

OnEpoch = Callable[[Hashable, EpochRecord], None]  # a run's key and its epoch's record
# After each epoch of the engine: the run-epochs it trained (a run that stopped in it counts), and those
# the runs that stopped in it will not train.
Tally = Callable[[int, int], None]


@dataclass(frozen=True)
class RunResult:
    """One run trained to its end: its last epoch's val and test figures, the same at its best val epoch
    (test figures only for runs trained with test figures), its val curve and, where kept, its epochs;
    or why it stopped."""

    val_loss: float | None = None
    test_loss: float | None = None
    test_score: float | None = None
    stopped: str | None = None  # "diverged: ..." or "failed: ..."
    best_epoch: int | None = None
    best_val_loss: float | None = None
    best_test_loss: float | None = None
    best_test_score: float | None = None
    val_curve: tuple[float, ...] = ()
    records: tuple[EpochRecord, ...] = ()  # every epoch's record, for the runs in `keep_records`

    def judged_val(self, judge: str) -> float | None:
        """The val loss a run is judged by: at its last epoch, or at its `"best"`."""
        return self.best_val_loss if judge == "best" else self.val_loss


def train_to_end(
    runs: dict[Hashable, RunSpec],
    new_engine: NewEngine,
    *,
    stack: int,
    tested: Container[Hashable] = (),
    has_test: bool = True,
    keep_records: Container[Hashable] = (),
    at_best_epoch: bool = True,
    on_epoch: OnEpoch | None = None,
    tally: Tally | None = None,
) -> dict[Hashable, RunResult]:
    """Train every run to its end, in the order given, `stack` at a time in one engine.

    Args:
        new_engine: builds an engine, given a run, whenever none holds a run.
        tested: the runs measured on the test split (`has_test`: the task has one), at their last epoch
            and, with `at_best_epoch`, at their best val epoch too (each time their val loss improves).
        keep_records: the runs whose every epoch record is kept in their result.
        on_epoch: called after every epoch of every run with its record (after the run's own stop: never).
        tally: told after each epoch of the engine what it trained (for a progress bar).

    Returns:
        Each run's result, in the order given.
    """
    queue = list(runs.items())
    results: dict[Hashable, RunResult] = {}
    records: dict[Hashable, list[EpochRecord]] = {}
    best: dict[Hashable, tuple[int, float, tuple[float | None, float | None]]] = {}  # epoch, val, test
    engine: Engine | None = None

    def measured(key: Hashable) -> tuple[float | None, float | None]:
        assert engine is not None
        return engine.test(key) if has_test and key in tested else (None, None)

    def stop(key: Hashable, why: str, trained: int) -> None:
        assert engine is not None
        results[key] = RunResult(stopped=why)
        engine.remove(key)
        nonlocal skipped
        skipped += runs[key].epochs - trained

    while queue or (engine is not None and len(engine)):
        while queue and (engine is None or len(engine) < stack):
            key, spec = queue.pop(0)
            try:  # the user's model or data may raise as the run is built: that run failed
                engine = engine or new_engine(spec)
                engine.add(key, spec)
            except Exception as error:
                if is_fault(error):
                    raise
                results[key] = RunResult(stopped=f"failed: {type(error).__name__}: {error}")
                if tally is not None:
                    tally(0, spec.epochs)
                continue
            records[key] = []
        if engine is None or not len(engine):
            continue
        outcomes = engine.train_epoch()
        skipped = 0
        for outcome in outcomes:
            key = outcome.key
            if outcome.failed is not None or outcome.diverged is not None:
                what = f"failed: {outcome.failed}" if outcome.failed else f"diverged: {outcome.diverged}"
                stop(key, what, len(records[key]) + 1)
                continue
            record = outcome.record
            assert record is not None
            records[key].append(record)
            if on_epoch is not None:
                on_epoch(key, record)
            try:  # the task's own eval step on the test split may raise: that run failed
                if key not in best or record.val_loss < best[key][1]:
                    at_best = measured(key) if at_best_epoch or outcome.finished else (None, None)
                    best[key] = (record.epoch, record.val_loss, at_best)
                if not outcome.finished:
                    continue
                epoch, val, (best_test, best_score) = best[key]
                # The last epoch is the best: measured on test just now.
                test_loss, test_score = (best_test, best_score) if epoch == record.epoch else measured(key)
            except Exception as error:
                if is_fault(error):
                    raise
                stop(key, f"failed: {type(error).__name__}: {error}", len(records[key]))
                continue
            results[key] = RunResult(
                val_loss=record.val_loss,
                test_loss=test_loss,
                test_score=test_score,
                best_epoch=epoch,
                best_val_loss=val,
                best_test_loss=best_test,
                best_test_score=best_score,
                val_curve=tuple(r.val_loss for r in records[key]),
                records=tuple(records[key]) if key in keep_records else (),
            )
            engine.remove(key)
        if tally is not None:
            tally(len(outcomes), skipped)
    return {key: results[key] for key in runs}
