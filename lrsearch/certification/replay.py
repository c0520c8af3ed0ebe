"""A replay: one exported run trained again as the search trained it, beside the runs it is compared
with (`baselines.baseline_specs`), on the same data and seed; what `lrsearch train` and
`lrsearch.replay` run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
import torch

from lrsearch.base.device import pinned_threads
from lrsearch.engines.driver import train_to_end
from lrsearch.engines.factory import engine_for
from lrsearch.engines.lone import History
from lrsearch.problem.data import Data, load_data
from lrsearch.problem.spec import RunSpec
from lrsearch.store.records import EpochRecord
from lrsearch.store.replay import REPLAY_ATTR, replay_record


@dataclass(frozen=True)
class Replayed:
    """What a replay trained: per run label, its `History` (with test figures) or why it stopped."""

    spec: RunSpec
    label: str  # the replayed run's own label among `runs`
    device: str
    data: Data
    runs: dict[str, History | str] = field(default_factory=dict)
    failure: str | None = None  # why the replayed run itself raised (nothing is recorded then)

    @property
    def history(self) -> History | None:
        """The replayed run's epochs and test figures; None when it diverged or failed."""
        result = self.runs.get(self.label)
        return result if isinstance(result, History) else None


def replay_run(
    spec: RunSpec,
    *,
    label: str,
    baselines: dict[str, RunSpec],
    device: torch.device,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> Replayed:
    """Train `spec` (its epochs reported to `on_epoch`) and then each of `baselines`, one at a time by the
    lone engine (real `torch.optim`, as the search's trial was), each measured on the test split. A run
    that diverges or whose model or data raises is recorded as such; the others still train.
    """
    runs_to_train = {label: spec} | {name: run for name, run in baselines.items() if name != label}
    with pinned_threads(device):
        data = load_data(spec.data, spec.seed, device)
        results = train_to_end(
            runs_to_train,
            engine_for(data, device, stack=1),
            stack=1,
            tested=runs_to_train,
            has_test=data.test is not None,
            keep_records=runs_to_train,
            at_best_epoch=False,  # a replay reports the last epoch, as `lone.train` measured it
            on_epoch=None if on_epoch is None else lambda key, record: on_epoch(record) if key == label else None,
        )
    runs: dict[str, History | str] = {
        name: result.stopped
        if result.stopped is not None
        else History(list(result.records), result.test_loss, result.test_score)
        for name, result in results.items()
    }
    own = results[label].stopped
    failure = own.removeprefix("failed: ") if own is not None and own.startswith("failed: ") else None
    return Replayed(spec=spec, label=label, device=str(device), data=data, runs=runs, failure=failure)


def record(study: optuna.Study, replayed: Replayed) -> None:
    """Keep the replay in the study, for `lrsearch report` (a failed replay keeps the one it had)."""
    if replayed.failure is not None:
        return
    results: dict[str, Any] = dict(replayed.runs)
    study.set_user_attr(REPLAY_ATTR, replay_record(replayed.spec, replayed.device, replayed.data.score, results))
