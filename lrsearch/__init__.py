"""lrsearch: find the learning-rate schedule, with its numbers, to train with.

For your own training code: load an exported run and build its optimizer and scheduler::

    spec = load_run_spec("best.yaml")
    optimizer = build_optimizer(spec, model.parameters())
    scheduler = build_scheduler(spec, optimizer, steps_per_epoch=len(train_loader))
    step_on(spec)  # "batch", "epoch" or "metric": when to call scheduler.step()
"""

from lrsearch.build import build_optimizer, build_scheduler, step_on
from lrsearch.errors import ConfigError
from lrsearch.schedules import SCHEDULES, Budget, Schedule
from lrsearch.spec import RunSpec, load_run_spec

__all__ = [
    "SCHEDULES",
    "Budget",
    "ConfigError",
    "RunSpec",
    "Schedule",
    "build_optimizer",
    "build_scheduler",
    "load_run_spec",
    "step_on",
]
