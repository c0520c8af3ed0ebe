"""lrsearch: find the learning-rate schedule, with its numbers, to train with.

For your own training code: load an exported run and build its optimizer and scheduler::

    spec = load_run_spec("best.yaml")
    optimizer = build_optimizer(spec, model.parameters())
    scheduler = build_scheduler(spec, optimizer, steps_per_epoch=len(train_loader))
    step_on(spec)  # "batch", "epoch" or "metric": when to call scheduler.step()
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name -> the module that defines it. Imported on first use, so that `lrsearch --help` does not
# wait for torch and optuna to load.
_EXPORTS = {
    "build_optimizer": "lrsearch.build",
    "build_scheduler": "lrsearch.build",
    "step_on": "lrsearch.build",
    "ConfigError": "lrsearch.errors",
    "SCHEDULES": "lrsearch.schedules",
    "Budget": "lrsearch.schedules",
    "Schedule": "lrsearch.schedules",
    "RunSpec": "lrsearch.spec",
    "load_run_spec": "lrsearch.spec",
    "Task": "lrsearch.tasks",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'lrsearch' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
