"""The two runs every replay is compared with, trained on the same data and seed."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from lrsearch.spec import OptimizerSpec, RunSpec, ScheduleSpec

# A study attribute: what `lrsearch train --study-name` measured (the replayed run and the baselines),
# for `lrsearch report`.
REPLAY_ATTR = "lrsearch_replay"


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


def replay_record(spec: RunSpec, device: str, score: str | None, results: dict[str, Any]) -> dict[str, Any]:
    """What a replay stores in its study: per run label, its test and val figures or why it diverged.

    Args:
        results: run label -> a `History` with test figures, or the divergence message.
    """
    runs: dict[str, dict[str, Any]] = {}
    for label, result in results.items():
        if isinstance(result, str):
            runs[label] = {"diverged": result}
        else:
            runs[label] = {
                "test_loss": result.test_loss,
                "test_score": result.test_score,
                "val_loss": result.final.val_loss,
            }
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return {
        "spec": spec.model_dump(mode="json"),
        "device": device,
        "seed": spec.seed,
        "when": when,
        "score": score,  # what test_score is: "accuracy", "R²" or None
        "runs": runs,
    }
