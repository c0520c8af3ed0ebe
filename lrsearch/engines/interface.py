"""What an engine is: it trains the trials given to it, one epoch at a time, and says how each epoch
went. Two drivers drive every engine through this interface and nothing else, the search's trial loop
(`trials.loop`, Optuna's lifecycle, a pruner ending runs at any epoch) and `driver.train_to_end` (runs
to their end: certification, replay, the benchmarks): the lone engine
(`train.LoneEngine`, real `torch.optim` on a real module, which `lrsearch train` replays with) and the
stacked ones, K trials as one batched computation (`stacked.StackedTrainer` for the built-in MLP,
`func_stacked.FuncStackedTrainer` for any model)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from lrsearch.problem.spec import RunSpec
    from lrsearch.store.records import EpochRecord


@dataclass(frozen=True)
class EpochOutcome:
    """What one epoch did to one trial: its record, or why it diverged or failed."""

    key: object
    record: EpochRecord | None
    diverged: str | None = None  # e.g. "train loss became nan at epoch 3": the trial ends pruned
    finished: bool = False  # it has trained all its epochs
    failed: str | None = None  # what its training raised (a user's model or data): the trial ends FAIL


class Engine(Protocol):
    """Trains trials of one problem (data, model, epochs, batch size), each from its RunSpec."""

    def add(self, key: object, spec: RunSpec) -> None:
        """Start training `spec` from its initial weights; it trains with the others from the next epoch."""

    def remove(self, key: object) -> None:
        """Stop training a trial (it finished, was pruned, diverged or failed)."""

    def train_epoch(self) -> list[EpochOutcome]:
        """One epoch of every trial (each its own next epoch): one outcome per trial."""

    def test(self, key: object) -> tuple[float, float | None]:
        """The trial's loss and score on the test split, with its weights as trained so far."""

    def __len__(self) -> int: ...
