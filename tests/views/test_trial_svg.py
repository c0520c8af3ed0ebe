from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from optuna.trial import TrialState

from lrsearch.problem.spec import RunSpec
from lrsearch.store.records import EpochRecord, TrialCurves
from lrsearch.views.trial_svg import trial_svg

SVG = "{http://www.w3.org/2000/svg}"


def _curves(schedule: dict, lrs: list[float], state: TrialState = TrialState.COMPLETE) -> TrialCurves:
    spec = RunSpec.model_validate({"schedule": schedule, "lr": lrs[0], "epochs": len(lrs)})
    records = [
        EpochRecord(epoch=i + 1, lr=lr, train_loss=1.0 / (i + 1), val_loss=1.2 / (i + 1), val_score=0.5)
        for i, lr in enumerate(lrs)
    ]
    return TrialCurves.of_run(7, spec, records, state, steps_per_epoch=None)


@pytest.mark.parametrize(
    ("schedule", "lrs", "log"),
    [
        ({"name": "ExponentialLR", "params": {"gamma": 0.5}}, [0.1 * 0.5**i for i in range(10)], True),
        ({"name": "none", "params": {}}, [0.1] * 4, False),
    ],
    ids=["decades-log-scale", "constant-linear-scale"],
)
def test_the_picture_shows_the_lr_and_both_losses(schedule, lrs, log):
    svg = trial_svg(_curves(schedule, lrs))
    root = ET.fromstring(svg)  # well-formed SVG
    assert root.tag == f"{SVG}svg"
    assert len(root.findall(f"{SVG}polyline")) == 3  # the LR, the train loss, the val loss
    texts = [t.text for t in root.iter(f"{SVG}text")]
    assert f"LR: {schedule['name']}, base {lrs[0]:.3g}" in texts
    assert "trial #7: complete" in texts and "train loss" in texts and "val loss" in texts
    assert ({"0.1", "0.01", "0.001"} <= set(texts)) == log  # a log scale's ticks are decades


def test_a_diverged_loss_leaves_its_point_out():
    curves = _curves({"name": "none", "params": {}}, [0.1] * 3)
    curves = TrialCurves(**{**curves.__dict__, "val_loss": [1.0, float("nan"), float("inf")]})
    root = ET.fromstring(trial_svg(curves))
    assert "nan" not in ET.tostring(root, encoding="unicode").lower()
