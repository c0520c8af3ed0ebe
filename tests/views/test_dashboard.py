from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import plotly.graph_objects as go
import pytest
import yaml
from optuna.trial import TrialState

# The dashboard's own readers of what lrsearch writes in its format (notes and plotly figures).
from optuna_dashboard import save_note
from optuna_dashboard._custom_plot_data import get_plotly_graph_objects
from optuna_dashboard._note import get_note_from_system_attrs
from typer.testing import CliRunner

from lrsearch.cli import app
from lrsearch.problem.spec import RunSpec
from lrsearch.store.records import TrialRecord
from lrsearch.views.curves import thin, trial_lr_by_step
from lrsearch.views.dashboard import FIGURE_IDS, trial_pictures

runner = CliRunner()


def _search(config_file: Path, *flags: str) -> optuna.Study:
    result = runner.invoke(app, ["optimize", "--config", str(config_file), "--trials", "6", *flags])
    assert result.exit_code == 0, result.output
    storage = yaml.safe_load(config_file.read_text())["study"]["storage"]
    return optuna.load_study(study_name="default", storage=storage)


def _system_attrs(study: optuna.Study) -> dict:
    return study._storage.get_study_system_attrs(study._study_id)  # where the dashboard keeps its data


@pytest.mark.parametrize("stack", ["1", "3"])  # Optuna's optimize loop, and the stacked ask-and-tell engine
def test_every_finished_trial_carries_its_picture_and_note(tiny_config_file, tmp_path, stack):
    study = _search(tiny_config_file, "--stack", stack)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 6
    for trial in finished:
        [artifact_id] = trial_pictures(study, trial)
        svg = (tmp_path / "artifacts" / artifact_id).read_text()  # beside the study file
        assert svg.lstrip().startswith("<?xml") and f"trial #{trial.number}: {trial.state.name.lower()}" in svg
        note = get_note_from_system_attrs(_system_attrs(study), trial._trial_id)["body"]
        assert f"/artifacts/{study._study_id}/{trial._trial_id}/{artifact_id}" in note
        assert trial.user_attrs["run_spec"]["schedule"]["name"] in note


def test_the_study_carries_the_best_trials_figures_and_config(tiny_config_file):
    study = _search(tiny_config_file)
    figures = {key: json.loads(value) for key, value in get_plotly_graph_objects(_system_attrs(study)).items()}
    assert set(figures) == set(FIGURE_IDS)
    for figure in figures.values():
        go.Figure(figure)  # plotly's own objects accept it: every trace and layout property is one plotly has

    # The first LR curve is the best trial's, step by step, as it trained.
    best = TrialRecord.of(study.best_trial).curves
    xs, ys = thin(*trial_lr_by_step(best))
    first = figures["top-lr-curves"]["data"][0]
    assert first["name"] == f"#{study.best_trial.number} {best.spec.schedule.name}"
    assert first["x"][:-1] == pytest.approx(xs) and first["y"][:-1] == pytest.approx(ys, rel=1e-4)
    assert figures["top-val-loss"]["data"][0]["y"] == pytest.approx(study.best_trial.user_attrs["val_loss"], rel=1e-4)
    schedule_types = {box["name"] for box in figures["schedule-types"]["data"]}
    assert schedule_types == {
        t.user_attrs["run_spec"]["schedule"]["name"] for t in study.trials if t.value or t.state == TrialState.PRUNED
    }

    note = get_note_from_system_attrs(_system_attrs(study), None)["body"]
    assert f"trial #{study.best_trial.number}" in note
    yaml_block = note.split("```yaml\n", 1)[1].split("```", 1)[0]
    assert (
        RunSpec.model_validate(yaml.safe_load(yaml_block)).model_dump(mode="json")
        == study.best_trial.user_attrs["run_spec"]
    )


def test_a_refresh_reads_the_study_s_attributes_once_and_writes_what_the_dashboard_reads(tiny_config_file):
    from lrsearch.views.dashboard import refresh_study

    study = _search(tiny_config_file)
    before = get_plotly_graph_objects(_system_attrs(study))
    for key in [key for key in _system_attrs(study) if key.startswith("dashboard:plot_data:")]:
        study._storage.set_study_system_attr(study._study_id, key, "")  # as if never drawn
    read, reads = study._storage.get_study_system_attrs, []
    study._storage.get_study_system_attrs = lambda study_id: reads.append(study_id) or read(study_id)
    refresh_study(study)
    del study._storage.get_study_system_attrs
    assert len(reads) == 1
    assert get_plotly_graph_objects(_system_attrs(study)) == before


def test_a_refresh_on_a_dashboard_release_not_tested_stores_the_same_figures_and_note(tiny_config_file, monkeypatch):
    from lrsearch.store import dashboard_formats
    from lrsearch.views.dashboard import refresh_study

    study = _search(tiny_config_file)
    attrs = _system_attrs(study)
    before = {key: json.loads(value) for key, value in get_plotly_graph_objects(attrs).items()}
    note = get_note_from_system_attrs(attrs, None)["body"]
    for key in [key for key in attrs if key.startswith("dashboard:plot_data:")]:
        study._storage.set_study_system_attr(study._study_id, key, "")  # as if never drawn
    save_note(study, "an older note")
    monkeypatch.setattr(dashboard_formats, "dashboard_version", lambda: "9.0.0")  # the dashboard's own functions
    refresh_study(study)
    attrs = _system_attrs(study)
    assert {key: json.loads(value) for key, value in get_plotly_graph_objects(attrs).items()} == before
    assert get_note_from_system_attrs(attrs, None)["body"] == note


def test_figures_off_attaches_nothing(tiny_config_file, tmp_path):
    config = yaml.safe_load(tiny_config_file.read_text())
    config["study"]["figures"] = False
    tiny_config_file.write_text(yaml.safe_dump(config))
    study = _search(tiny_config_file)
    assert not (tmp_path / "artifacts").exists()
    assert not get_plotly_graph_objects(_system_attrs(study))
    assert all(not trial_pictures(study, t) for t in study.trials)


def test_a_picture_that_fails_never_fails_its_trial(tiny_config_file, monkeypatch, caplog):
    def broken(curves):
        raise RuntimeError("no ink")

    monkeypatch.setattr("lrsearch.views.trial_svg.trial_svg", broken)
    study = _search(tiny_config_file, "--stack", "1")
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    assert "no picture attached: RuntimeError: no ink" in caplog.text


def test_searching_imports_no_plotting_library_until_it_draws():
    code = (
        "import sys, lrsearch.cli, lrsearch.searching.workers, lrsearch.trials.loop, lrsearch.views.summary\n"
        "print(sorted({'matplotlib', 'plotly', 'optuna_dashboard'} & set(sys.modules)))"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"


def test_dashboard_refuses_a_taken_port_and_a_missing_study(tiny_config_file, tmp_path):
    storage = yaml.safe_load(tiny_config_file.read_text())["study"]["storage"]
    missing = runner.invoke(app, ["dashboard", "--storage", f"sqlite:///{tmp_path}/none.db"])
    assert missing.exit_code == 2 and "no study file" in missing.output

    _search(tiny_config_file)
    unknown = runner.invoke(app, ["dashboard", "--storage", storage, "--study-name", "nope"])
    assert unknown.exit_code == 2 and "nope" in unknown.output

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = runner.invoke(app, ["dashboard", "--storage", storage, "--port", str(port)])
    assert busy.exit_code == 2
    assert busy.output.strip() == f"Error: --port: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_report_shows_the_search_and_the_recorded_replay(tiny_config_file, tmp_path):
    study = _search(tiny_config_file)
    storage = yaml.safe_load(tiny_config_file.read_text())["study"]["storage"]
    best = tmp_path / "best.yaml"
    assert runner.invoke(app, ["export", "--storage", storage, "-o", str(best)]).exit_code == 0
    before = runner.invoke(app, ["report", "--storage", storage, "-o", str(tmp_path / "before.html")])
    assert before.exit_code == 0, before.output
    assert "lrsearch train --config best.yaml --study-name default" in (tmp_path / "before.html").read_text()

    replay = runner.invoke(app, ["train", "--config", str(best), "--study-name", "default", "--storage", storage])
    assert replay.exit_code == 0, replay.output
    test_loss = float(replay.output.split("(this run)")[1].split("│")[1])

    out = tmp_path / "out" / "report.html"
    result = runner.invoke(app, ["report", "--storage", storage, "-o", str(out), "--png"])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    for title in ("The search", "Optimization history", "LR schedules of the best trials", "Their val loss"):
        assert f"<h2>{title}</h2>" in page
    for title in ("Schedule types compared", "Parameter importances", "Against the baselines"):
        assert f"<h2>{title}</h2>" in page
    assert page.count("<svg") == 6  # six figures, inline; nothing fetched from elsewhere:
    assert "<script" not in page and "<link" not in page and not re.search(r"(src|href)=[\"']?https?:", page)
    assert f"<td>{test_loss:.4f}</td>" in page and "StepLR(10, 0.1), SGD lr 0.1" in page
    assert f"#{study.best_trial.number}" in page
    pngs = sorted(p.name for p in out.parent.glob("*.png"))
    assert pngs == sorted(
        f"report-{name}.png"
        for name in ("history", "lr-curves", "val-loss", "schedule-types", "importances", "baselines")
    )
    assert all((out.parent / name).read_bytes().startswith(b"\x89PNG") for name in pngs)


def test_report_of_an_empty_study_says_so(tmp_path):
    storage = f"sqlite:///{tmp_path}/empty.db"
    optuna.create_study(study_name="empty", storage=storage)
    result = runner.invoke(
        app, ["report", "--storage", storage, "--study-name", "empty", "-o", str(tmp_path / "r.html")]
    )
    assert result.exit_code == 0, result.output
    assert "no trials" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("stack", ["1", "3"])
def test_an_artifact_folder_that_cannot_be_written_is_one_warning_and_the_search_goes_on(
    tiny_config_file, tmp_path, stack
):
    (tmp_path / "a-file").write_text("not a folder")
    folder = tmp_path / "a-file" / "artifacts"  # its parent a regular file: unwritable even as root
    config = yaml.safe_load(tiny_config_file.read_text())
    config["study"]["artifacts"] = str(folder)
    tiny_config_file.write_text(yaml.safe_dump(config))
    lrsearch = Path(sys.executable).parent / "lrsearch"
    run = subprocess.run(
        [lrsearch, "optimize", "--config", tiny_config_file, "--trials", "4", "--stack", stack],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "storage" not in run.stderr and "Traceback" not in run.stderr, run.stderr
    warned = [line for line in run.stderr.splitlines() if "artifact folder" in line]
    assert warned == [f"no trial pictures: cannot write in the artifact folder {folder} (Not a directory)"]
    study = optuna.load_study(study_name="default", storage=config["study"]["storage"])
    assert len(study.trials) == 4 and all(t.state != TrialState.FAIL for t in study.trials)
    assert all(not trial_pictures(study, t) for t in study.trials)
    assert get_plotly_graph_objects(_system_attrs(study))  # the study's own figures live in the study


def test_the_dashboard_computes_importances_without_optuna_s_regime_warnings(tmp_path):
    """Schedules have parameters of their own: a regime of few trials, which Optuna warns about at
    every importance request the dashboard's page polls."""
    import signal
    import urllib.request

    from optuna.distributions import CategoricalDistribution, FloatDistribution

    storage = f"sqlite:///{tmp_path}/s.db"
    study = optuna.create_study(study_name="default", storage=storage)
    kinds = CategoricalDistribution(["StepLR", "CosineAnnealingLR"])
    for number, kind in enumerate(["StepLR", "StepLR", "StepLR", "CosineAnnealingLR"]):
        own = {"StepLR.gamma": (0.1 + number / 10)} if kind == "StepLR" else {"CosineAnnealingLR.eta": 0.01}
        study.add_trial(
            optuna.trial.create_trial(
                params={"schedule": kind, "lr": 0.01 * (number + 1), **own},
                distributions={"schedule": kinds, "lr": FloatDistribution(1e-3, 1.0)}
                | {name: FloatDistribution(0.0, 1.0) for name in own},
                value=1.0 - number / 10,
            )
        )
    lrsearch = Path(sys.executable).parent / "lrsearch"
    server = subprocess.Popen(
        [lrsearch, "dashboard", "--storage", storage, "--port", "0"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        base = re.search(r"(http://127\.0\.0\.1:\d+)/dashboard/", server.stdout.readline()).group(1)
        for _ in range(2):  # the page polls
            with urllib.request.urlopen(f"{base}/api/studies/{study._study_id}/param_importances", timeout=60) as got:
                answer = json.loads(got.read())
        assert {row["name"] for row in answer["param_importances"][0]} >= {"schedule", "lr"}
    finally:
        server.send_signal(signal.SIGINT)
        _, stderr = server.communicate(timeout=30)
    assert "Some regimes" not in stderr and "Warning" not in stderr, stderr


def test_every_dashboard_page_carries_the_style_that_fits_it_in_the_window(tmp_path):
    """The style is in the page whatever the browser has cached (a conditional request gets all of it, not
    a 304), its length is told right, and the dashboard's API passes through untouched."""
    import urllib.request

    from lrsearch.views.dashboard import PAGE_STYLE, serving

    storage = f"sqlite:///{tmp_path}/s.db"
    optuna.create_study(study_name="default", storage=storage)
    with serving(storage, None, "127.0.0.1", 0) as server:
        base = f"http://127.0.0.1:{server.server_port}"
        for headers in ({}, {"If-None-Match": "*", "If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}):
            request = urllib.request.Request(f"{base}/dashboard/studies/1/trials?numbers=0", headers=headers)
            with urllib.request.urlopen(request, timeout=60) as got:
                page = got.read()
                assert got.status == 200 and int(got.headers["Content-Length"]) == len(page)
                assert got.headers["ETag"] is None
            assert page.count(PAGE_STYLE) == 1 and page.index(PAGE_STYLE) < page.index(b"</head>")
        with urllib.request.urlopen(f"{base}/api/studies", timeout=60) as got:
            assert json.loads(got.read())["study_summaries"][0]["study_name"] == "default"
