"""lrsearch: find the learning-rate schedule, with its numbers, to train with.

Search from Python, and carry the winner into your own training loop::

    result = lrsearch.search(trials=50, task="moons")   # result.best, result.trials, result.study
    result.export("best.yaml")

    schedule = lrsearch.load_schedule("best.yaml")
    scheduler = schedule.build(optimizer, steps_per_epoch=len(train_loader))
    ...  # schedule.after_batch(scheduler) after each optimizer.step(),
    ...  # schedule.after_epoch(scheduler, val_loss) after each epoch
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name -> the module that defines it. Imported on first use, so that `lrsearch --help` does not
# wait for torch and optuna to load.
_EXPORTS = {
    "search": "lrsearch.api",
    "certify": "lrsearch.api",
    "replay": "lrsearch.api",
    "Certificate": "lrsearch.store.certificate",
    "SearchResult": "lrsearch.api",
    "ProgressEvent": "lrsearch.searching.progress",
    "load_schedule": "lrsearch.problem.build",
    "LoadedSchedule": "lrsearch.problem.build",
    "SearchConfig": "lrsearch.problem.config",
    "build_optimizer": "lrsearch.problem.build",
    "build_scheduler": "lrsearch.problem.build",
    "step_on": "lrsearch.problem.build",
    "ConfigError": "lrsearch.base.errors",
    "SCHEDULES": "lrsearch.problem.schedules",
    "Budget": "lrsearch.problem.schedules",
    "Schedule": "lrsearch.problem.schedules",
    "RunSpec": "lrsearch.problem.spec",
    "load_run_spec": "lrsearch.problem.build",
    "Task": "lrsearch.problem.tasks",
    "Score": "lrsearch.problem.hooks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lrsearch' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
