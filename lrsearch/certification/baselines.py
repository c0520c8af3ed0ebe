"""The two runs every replay is compared with, trained on the same data and seed."""

from __future__ import annotations

from lrsearch.problem.spec import OptimizerSpec, RunSpec, ScheduleSpec


def baseline_specs(spec: RunSpec) -> dict[str, RunSpec]:
    """A constant LR (the run's own optimizer and base LR, no schedule), and the classic recipe the
    project started from: plain SGD at lr=0.1 with StepLR(step_size=10, gamma=0.1)."""
    constant = spec.model_copy(update={"schedule": ScheduleSpec(name="none")})
    step = spec.model_copy(
        update={
            "optimizer": OptimizerSpec(name="sgd", momentum=0.0),
            "lr": 0.1,
            "schedule": ScheduleSpec(name="StepLR", params={"step_size": 10, "gamma": 0.1}),
        }
    )
    return {
        f"constant LR ({spec.optimizer.name}, lr {spec.lr:.4g})": constant,
        "StepLR(10, 0.1), SGD lr 0.1": step,
    }
