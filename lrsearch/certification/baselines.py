"""The runs a replay is compared with, trained on the same data and seed: the certificate's controls at
their tuned LRs (the classic recipe among them), or, for a run without a certificate, a constant LR and
the classic recipe."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from lrsearch.problem.spec import OptimizerSpec, RunSpec, ScheduleSpec


def classic_recipe(spec: RunSpec) -> RunSpec:
    """The classic recipe the project started from, on `spec`'s problem: plain SGD at lr=0.1 with
    StepLR(step_size=10, gamma=0.1)."""
    return spec.model_copy(
        update={
            "optimizer": OptimizerSpec(name="sgd", momentum=0.0),
            "lr": 0.1,
            "schedule": ScheduleSpec(name="StepLR", params={"step_size": 10, "gamma": 0.1}),
        }
    )


def baseline_specs(spec: RunSpec, certificate: Mapping[str, Any] | None = None) -> dict[str, RunSpec]:
    """The runs `spec`'s replay is compared with. With the certificate block of its exported YAML
    (`Certificate.summary`): every control it certified, at its tuned LR and the certified length,
    under its certificate label (the recommended one is the replayed run itself). Without one (or one
    that does not parse): a constant LR (the run's own optimizer and base LR, no schedule), and the
    classic recipe."""
    controls = _certified_controls(spec, certificate)
    if controls:
        return controls
    constant = spec.model_copy(update={"schedule": ScheduleSpec(name="none")})
    step = classic_recipe(spec)
    return {
        f"constant LR ({spec.optimizer.name}, lr {spec.lr:.4g})": constant,
        "StepLR(10, 0.1), SGD lr 0.1": step,
    }


def _certified_controls(spec: RunSpec, certificate: Mapping[str, Any] | None) -> dict[str, RunSpec]:
    """The controls of a certificate block, as runs of `spec`'s problem; {} when there are none."""
    rows = certificate.get("candidates") if isinstance(certificate, Mapping) else None
    if not isinstance(rows, Mapping):
        return {}
    if certificate.get("epochs") != spec.epochs:  # the run was edited to another length: not these controls
        return {}
    recommended = certificate.get("recommended")
    controls = {}
    for label, row in rows.items():
        run = row.get("run") if isinstance(row, Mapping) else None
        if not isinstance(run, Mapping) or row.get("kind") != "control" or label == recommended:
            continue
        # What a control sets beyond the problem, and nothing else a hand-edited block may hold.
        own = {key: run[key] for key in ("optimizer", "lr", "schedule") if key in run}
        try:
            controls[str(label)] = RunSpec.model_validate(spec.model_dump(mode="json") | own)
        except ValidationError:  # a hand-edited block: that control is left out
            continue
    return controls
