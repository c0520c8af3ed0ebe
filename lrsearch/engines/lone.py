"""The lone engine: one run with real `torch.optim` on a real module, `train(spec, data, device) ->
History`, and `LoneEngine`, which trains its trials that way an epoch at a time for the trial loop.

The search (with `--stack 1`, or a task the stacked engine cannot train), `lrsearch train` and the
benchmarks all run it, so a replayed RunSpec reproduces its trial. It trains through the task's steps
and settings (`Data.hooks`: its own training step, clipping, accumulation, autocast), whatever they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from lrsearch.engines.interface import EpochOutcome
from lrsearch.problem.build import LoadedSchedule, build_optimizer
from lrsearch.problem.data import Data, Source, whole
from lrsearch.problem.spec import RunSpec
from lrsearch.store.records import EpochRecord


@dataclass
class History:
    epochs: list[EpochRecord] = field(default_factory=list)
    test_loss: float | None = None  # only when `train(..., evaluate_test=True)`
    test_score: float | None = None

    @property
    def final(self) -> EpochRecord:
        return self.epochs[-1]


class Diverged(Exception):
    """The loss became NaN or infinite; `history` holds the epochs before it (set by `train`)."""

    def __init__(self, epoch: int, what: str, value: float) -> None:
        super().__init__(f"{what} became {value} at epoch {epoch}")
        self.history = History()


OnEpoch = Callable[[EpochRecord], None]
# LRs a trial's records keep of its steps, at most (and one an epoch): the pictures draw ~200 points, and
# a long run of per-batch steps must not hold millions of floats.
MAX_STEP_LRS = 2000


def recorded_steps(steps_per_epoch: int, epochs: int) -> frozenset[int]:
    """The steps of each epoch whose LR a per-batch schedule's record keeps: every step on a short
    run, evenly spaced ones on a long run."""
    kept = min(steps_per_epoch, max(1, MAX_STEP_LRS // epochs))
    return frozenset(i * steps_per_epoch // kept for i in range(kept))


@torch.no_grad()
def evaluate(model: nn.Module, data: Data, split: Source, device: torch.device | str) -> tuple[float, float | None]:
    """The task's loss and score on a whole split, as one batch (the task's eval step, default `model(x), y`)."""
    model.eval()
    output, target = data.eval_outputs(model, whole(split, device))
    return data.loss(output, target).item(), data.score_of(output, target)


def train(
    spec: RunSpec,
    data: Data,
    device: torch.device | str = "cpu",
    *,
    on_epoch: OnEpoch | None = None,
    evaluate_test: bool = False,
) -> History:
    """Train the task's model (the spec's MLP for a built-in task) with the spec's optimizer and LR schedule.

    Args:
        spec: the run.
        data: from `load_data(spec.data, spec.seed, device)`: loaded once, shared by every run.
        device: where the model trains; must be where `data` lives.
        on_epoch: called after every epoch with its record.
        evaluate_test: also measure the test split at the end (the search never looks at it).

    Returns:
        The per-epoch History.

    Raises:
        Diverged: the training or validation loss became NaN or infinite.
    """
    run = LoneRun(spec, data, device)
    history = History()
    while not run.finished:
        try:
            record = run.train_epoch()
        except Diverged as diverged:
            diverged.history = history
            raise
        history.epochs.append(record)
        if on_epoch is not None:
            on_epoch(record)
    if evaluate_test and data.test is not None:
        history.test_loss, history.test_score = evaluate(run.model, data, data.test, device)
    return history


class LoneRun:
    """One run with real `torch.optim` on a real module, an epoch per `train_epoch()` call: what
    `train` runs, and what the lone engine runs for each of its trials.

    Each run keeps its random state to itself between its epochs (torch's, which Dropout and a DataLoader
    without a generator draw from, its CUDA device's, a DataLoader's own generator), so runs trained side
    by side each equal the run alone.
    """

    def __init__(self, spec: RunSpec, data: Data, device: torch.device | str) -> None:
        self.spec, self.data, self.device = spec, data, device
        # Weights are drawn on the CPU from the spec's seed, so every device starts from the same model.
        torch.manual_seed(spec.seed)
        self.model = data.new_model(spec).to(device)
        self.optimizer = build_optimizer(spec, self.model.parameters())
        self.batches_per_epoch = data.batches_per_epoch(spec.batch_size)
        self.steps_per_epoch = data.steps_per_epoch(spec.batch_size)
        self.schedule = LoadedSchedule(spec)  # what a user's own loop steps with: the one stepping rule
        self.scheduler = self.schedule.build(self.optimizer, self.steps_per_epoch)
        per_batch = self.schedule.step_on == "batch"
        self.recorded = recorded_steps(self.steps_per_epoch, spec.epochs) if per_batch else frozenset()
        data.reseed(spec.seed)
        self._random = _RandomState.of(data, device)
        self.epoch = 0  # epochs done

    @property
    def finished(self) -> bool:
        return self.epoch == self.spec.epochs

    def train_epoch(self) -> EpochRecord:
        """Train the next epoch; raises `Diverged` when a loss becomes NaN or infinite."""
        with self._random:
            return self._train_epoch()

    def _train_epoch(self) -> EpochRecord:
        spec, data, model, optimizer = self.spec, self.data, self.model, self.optimizer
        self.epoch += 1
        lr = optimizer.param_groups[0]["lr"]
        model.train()
        loss_sum = torch.zeros((), device=self.device)  # summed on the device: no sync per batch
        step_lrs: list[float] = []
        batches = data.batches(spec.batch_size, seed=spec.seed, epoch=self.epoch - 1, device=self.device)
        group, total = data.hooks.accumulate_batches, self.batches_per_epoch
        for index, batch in enumerate(batches):
            loss = data.train_loss(model, batch)
            if index % group == 0:
                optimizer.zero_grad(set_to_none=True)
            # Each batch weighs 1 / (batches of its step), so a step's gradient is their mean loss's.
            of_step = min(group, total - index // group * group)
            (loss / of_step if of_step > 1 else loss).backward()
            loss_sum += loss.detach()
            if (index + 1) % group != 0 and index + 1 != total:
                continue  # gradients still accumulating
            step = index // group
            if data.hooks.clip_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), data.hooks.clip_grad_norm)
            optimizer.step()
            if step in self.recorded:
                step_lrs.append(optimizer.param_groups[0]["lr"])
            self.schedule.after_batch(self.scheduler)  # OneCycleLR and CyclicLR count optimizer steps, not epochs
        train_loss = loss_sum.item() / total
        val_loss, val_score = evaluate(model, data, data.val, self.device)
        for what, value in (("train loss", train_loss), ("validation loss", val_loss)):
            if not math.isfinite(value):
                raise Diverged(self.epoch, what, value)
        self.schedule.after_epoch(self.scheduler, val_loss)  # ReduceLROnPlateau decides from the val loss
        return EpochRecord(self.epoch, lr, train_loss, val_loss, val_score, tuple(step_lrs))


class _RandomState:
    """The generators one run draws from (torch's CPU one, its CUDA device's, a DataLoader's own), their
    states the run's own: swapped in for its epochs and out after them."""

    def __init__(self, generators: list[torch.Generator]) -> None:
        self._generators = generators
        self._own = [generator.get_state() for generator in generators]
        self._outside: list[torch.Tensor] = []

    @classmethod
    def of(cls, data: Data, device: torch.device | str) -> _RandomState:
        device = torch.device(device)
        generators = [torch.random.default_generator]
        if device.type == "cuda":
            generators.append(torch.cuda.default_generators[device.index or torch.cuda.current_device()])
        loader_generator = getattr(data.train, "generator", None)
        if loader_generator is not None:
            generators.append(loader_generator)
        return cls(generators)

    def __enter__(self) -> None:
        self._outside = [generator.get_state() for generator in self._generators]
        for generator, state in zip(self._generators, self._own, strict=True):
            generator.set_state(state)

    def __exit__(self, *exc: object) -> None:
        self._own = [generator.get_state() for generator in self._generators]
        for generator, state in zip(self._generators, self._outside, strict=True):
            generator.set_state(state)


class LoneEngine:
    """The lone engine: each of its trials a `LoneRun` of its own (real `torch.optim`, real module), an
    epoch of each per `train_epoch()`. What `lrsearch train` replays with, so it is the reference the
    stacked engine is held equal to; and the engine of any task the stacked engine cannot train."""

    def __init__(self, data: Data, device: torch.device | str) -> None:
        self.data, self.device = data, device
        self._runs: dict[object, LoneRun] = {}

    def __len__(self) -> int:
        return len(self._runs)

    def add(self, key: object, spec: RunSpec) -> None:
        self._runs[key] = LoneRun(spec, self.data, self.device)

    def remove(self, key: object) -> None:
        del self._runs[key]

    def test(self, key: object) -> tuple[float, float | None]:
        run = self._runs[key]
        return evaluate(run.model, self.data, _test_split(self.data), self.device)

    def train_epoch(self) -> list[EpochOutcome]:
        outcomes = []
        for key, run in self._runs.items():
            try:
                record = run.train_epoch()
            except Diverged as diverged:
                outcomes.append(EpochOutcome(key, None, diverged=str(diverged)))
            except Exception as error:  # the trial's own model or data raised (a missing file of theirs
                # too: an engine never writes to the storage): it fails, the others go on
                outcomes.append(EpochOutcome(key, None, failed=f"{type(error).__name__}: {error}"))
            else:
                outcomes.append(EpochOutcome(key, record, finished=run.finished))
        return outcomes


def _test_split(data: Data) -> Source:
    if data.test is None:
        raise ValueError("the task has no test split")
    return data.test
