"""The HTML report treats what a study stores as data: every stored string is escaped, and records of
the wrong type or shape show as unreadable instead of failing the report."""

from __future__ import annotations

import html
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from typer.testing import CliRunner

from lrsearch.base.text import LABEL, clipped
from lrsearch.cli import app
from lrsearch.store.certificate import CERTIFICATE_ATTR, MAX_ROWS, stored_certificate
from lrsearch.store.replay import REPLAY_ATTR

SCRIPT = "<script>alert(1)</script>"
IMAGE = "<img src=x onerror=alert(2)>"
HOSTILE_NAME = f"study {SCRIPT}"
runner = CliRunner()


def hostile_study(storage: str, replay: object) -> optuna.Study:
    """A study written with Optuna directly, as anyone with access to the storage could: markup in its
    name, its trials' parameters and run specs, its replay record, and one trial's records malformed."""
    study = optuna.create_study(study_name=HOSTILE_NAME, storage=storage)
    distributions = {"schedule": CategoricalDistribution([IMAGE, SCRIPT]), SCRIPT: FloatDistribution(0, 1)}
    for number, (value, schedule) in enumerate([(0.3, IMAGE), (0.5, SCRIPT), (0.4, IMAGE)]):
        spec = {
            "data": {"task": f"{SCRIPT}:build"},
            "schedule": {"name": "StepLR", "params": {"step_size": SCRIPT, "gamma": IMAGE}},
            "epochs": 3,
        }
        attrs = {"run_spec": spec, "lr": [0.1] * 3, "train_loss": [1.0, 0.8, value], "val_loss": [1.0, 0.7, value]}
        attrs |= {"val_accuracy": [0.5, 0.6, 0.7], "steps_per_epoch": 4, "note": IMAGE}
        params = {"schedule": schedule, SCRIPT: number / 3}
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions=distributions, value=value, user_attrs=attrs)
        )
    broken = {"run_spec": SCRIPT, "val_loss": IMAGE, "lr": {"a": SCRIPT}}
    study.add_trial(optuna.trial.create_trial(value=0.1, user_attrs=broken))  # the best value, unreadable
    study.set_user_attr(REPLAY_ATTR, replay)
    return study


def hostile_replay() -> dict:
    """A replay record of the right shape whose strings are markup."""
    runs = {SCRIPT: {"test_loss": 0.3, "test_score": 0.9, "val_loss": 0.3}, IMAGE: {"diverged": SCRIPT}}
    return {"spec": {}, "device": IMAGE, "seed": 0, "when": SCRIPT, "score": IMAGE, "runs": runs}


def write_report(storage: str, out: Path) -> str:
    result = runner.invoke(app, ["report", "--study-name", HOSTILE_NAME, "--storage", storage, "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert result.stdout == f"wrote {out}\n"  # piped: no progress bar, nor the empty line it leaves
    return out.read_text()


def test_stored_markup_is_escaped(tmp_path):
    storage = f"sqlite:///{tmp_path}/hostile.db"
    hostile_study(storage, hostile_replay())
    page = write_report(storage, tmp_path / "report.html")
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "Left out, their stored records unreadable: trial #3." in page
    assert "recorded &lt;script&gt;alert(1)&lt;/script&gt;." in page  # the replay's `when`


@pytest.mark.parametrize(
    "replay",
    [
        {**hostile_replay(), "seed": SCRIPT},
        {**hostile_replay(), "runs": [SCRIPT]},
        {**hostile_replay(), "runs": {SCRIPT: {"test_loss": IMAGE}}},
        SCRIPT,
        [1, 2],
    ],
    ids=["seed not a number", "runs not a mapping", "a loss not a number", "a string", "a list"],
)
def test_a_malformed_replay_record_is_unreadable_not_a_crash(tmp_path, replay):
    storage = f"sqlite:///{tmp_path}/hostile.db"
    hostile_study(storage, replay)
    page = write_report(storage, tmp_path / "report.html")
    assert "<p>The recorded replay is unreadable (" in page
    assert "<script" not in page.lower() and "<img" not in page.lower()


def forged_certificate(label: str, candidates: int = 2) -> dict:
    """A certificate of the right shape, written with Optuna directly, whose labels are `label`."""
    rows = [
        {"label": f"{label}{n}", "kind": "searched", "spec": {}, "val_loss": [0.3, 0.31], "test_loss": [0.3, 0.32]}
        for n in range(candidates)
    ]
    control = {"name": label, "lrs": [0.1], "val_losses": [0.3], "chosen": 0.1}
    return {
        "seeds": [1, 2], "epochs": 3, "search_epochs": 3, "device": label, "when": label, "seconds": 1.0,
        "controls": [control], "answer_trial": 0, "candidates": rows, "winner": rows[0]["label"],
        "best_control": None, "recommended": rows[0]["label"], "verdict": "beats", "sentence": label,
    }  # fmt: skip


def test_a_huge_stored_label_is_shown_shortened_and_escaped(tmp_path):
    storage = f"sqlite:///{tmp_path}/hostile.db"
    study = hostile_study(storage, hostile_replay() | {"runs": {SCRIPT + "x" * 1_000_000: {"test_loss": 0.3}}})
    huge = SCRIPT + "x" * 1_000_000
    study.set_user_attr(CERTIFICATE_ATTR, forged_certificate(huge))
    started = time.monotonic()
    page = write_report(storage, tmp_path / "report.html")
    assert time.monotonic() - started < 30  # it took minutes, matplotlib laying out a megabyte tick label
    shortened = html.escape(clipped(huge + "0"))
    assert shortened in page and shortened.endswith("x…") and len(clipped(huge)) == LABEL
    assert "x" * 500 not in page and "<script" not in page.lower() and len(page) < 300_000


def test_each_certified_schedule_shows_how_far_it_raced_and_why_it_stopped_escaped(tmp_path):
    storage = f"sqlite:///{tmp_path}/hostile.db"
    study = hostile_study(storage, hostile_replay())
    certificate = forged_certificate("a")
    why = f"settled after 2 seeds: a0 had a 3% chance' onmouseover='alert(3) {SCRIPT}"
    certificate["candidates"][0]["raced"] = why
    study.set_user_attr(CERTIFICATE_ATTR, certificate)
    page = write_report(storage, tmp_path / "report.html")
    assert "<th>seeds</th>" in page
    assert f"<td title='{html.escape(why)}'>2, settled</td>" in page  # the whole reason on hover, quoted
    assert "<script" not in page.lower() and "' onmouseover=" not in page


def test_a_certificate_with_a_million_rows_is_unreadable(tmp_path):
    storage = f"sqlite:///{tmp_path}/hostile.db"
    study = hostile_study(storage, hostile_replay())
    study.set_user_attr(CERTIFICATE_ATTR, forged_certificate("x", candidates=MAX_ROWS + 1))
    assert "unreadable (candidates: List should have at most" in stored_certificate(study)
    page = write_report(storage, tmp_path / "report.html")
    assert "the study&#x27;s certificate is unreadable (candidates:" in page


def _study_of(params: int) -> optuna.Study:
    """A study whose completed trials share `params` float parameters, one of them with a very long name."""
    names = [f"p{index}" for index in range(params - 1)] + ["a_parameter_named_at_great_length_" * 4]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda trial: sum((i + 1) * trial.suggest_float(name, 0, 1) for i, name in enumerate(names)), 24)
    return study


def test_the_importances_chart_shows_the_top_parameters_on_bars_of_one_height(tmp_path):
    from lrsearch.views.plots import BAR_INCHES, IMPORTANCE_LABEL, IMPORTANCES_SHOWN
    from lrsearch.views.report_page import _importances

    many, few = _importances(_study_of(28)).figure, _importances(_study_of(5)).figure
    bars = {figure: len(figure.axes[0].patches) for figure in (many, few)}
    assert bars[many] == IMPORTANCES_SHOWN == 12 and bars[few] == 5
    assert "top 12 of 28" in many.axes[0].get_title()
    heights = {figure: figure.get_size_inches()[1] for figure in (many, few)}
    assert heights[many] - heights[few] == pytest.approx(BAR_INCHES * (12 - 5))  # each bar 0.3 in tall
    labels = [label.get_text() for label in few.axes[0].get_yticklabels()]
    assert max(map(len, labels)) == IMPORTANCE_LABEL and any(label.endswith("…") for label in labels)
