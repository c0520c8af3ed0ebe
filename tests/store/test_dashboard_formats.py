"""lrsearch writes optuna-dashboard's notes and figures without importing it: each format, held to the
dashboard's own functions (an upgrade that changes one fails here)."""

from __future__ import annotations

import json

import optuna
import plotly.graph_objects as go
import pytest
from optuna_dashboard import get_note, save_note, save_plotly_graph_object
from optuna_dashboard._custom_plot_data import get_plotly_graph_objects
from optuna_dashboard._note import SYSTEM_ATTR_MAX_LENGTH, note_str_key_prefix, note_ver_key
from optuna_dashboard.artifact import get_artifact_path

from lrsearch.store.dashboard_formats import (
    CHUNK,
    artifact_path,
    note_chunk_prefix,
    note_version_key,
    save_figure,
    save_new_trial_note,
    save_study_note,
    study_attrs,
    study_note,
)
from lrsearch.store.optuna_private import storage_of
from lrsearch.store.storage import open_storage

LONG = "x" * (2 * SYSTEM_ATTR_MAX_LENGTH + 7)  # three of the dashboard's chunks


@pytest.fixture
def study(tmp_path) -> optuna.Study:
    return optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path}/d.db"))


def _figure(points: int) -> dict:
    return {"data": [{"type": "scatter", "x": list(range(points)), "y": [0.5] * points, "name": "#3 cosine"}]}


def _figures(study: optuna.Study) -> dict[str, dict]:
    stored = get_plotly_graph_objects(storage_of(study).get_study_system_attrs(study._study_id))
    return {figure_id: json.loads(text) for figure_id, text in stored.items()}


def _plotly(figure: dict) -> dict:
    """The figure as plotly's own objects write it (which validates it as a plotly figure)."""
    return json.loads(go.Figure(figure).to_json())


@pytest.mark.parametrize("trial_id", [None, 0, 17])
def test_the_keys_are_the_dashboard_s(trial_id):
    assert CHUNK == SYSTEM_ATTR_MAX_LENGTH
    assert note_version_key(trial_id) == note_ver_key(trial_id)
    assert note_chunk_prefix(trial_id) == note_str_key_prefix(trial_id)


def test_a_new_trial_s_note_is_what_the_dashboard_reads_back_written_without_reading_the_study(study):
    save_note(study, "the study's own note")
    earlier, trial = study.ask(), study.ask()
    save_note(earlier, "an earlier trial's note")
    storage, reads = storage_of(study), []
    read = storage.get_study_system_attrs
    storage.get_study_system_attrs = lambda study_id: reads.append(study_id) or read(study_id)
    body = "![LR and loss](/artifacts/1/2/3)\n" + LONG
    save_new_trial_note(trial, body)
    assert reads == []
    del storage.get_study_system_attrs
    assert get_note(trial) == body
    assert get_note(earlier) == "an earlier trial's note" and get_note(study) == "the study's own note"


def test_the_study_note_replaces_the_dashboard_s_and_the_dashboard_s_replaces_it(study):
    assert study_note(study) == ""
    save_note(study, LONG)
    assert study_note(study) == LONG
    save_study_note(study, "## shorter")  # the longer note's last chunks must not show after it
    assert get_note(study) == study_note(study) == "## shorter"
    save_study_note(study, LONG + "!")
    save_note(study, "a user's edit")  # the dashboard's save takes the next version after ours
    assert get_note(study) == study_note(study) == "a user's edit"
    save_study_note(study, "## from one read", study_attrs(study))
    assert get_note(study) == study_note(study, study_attrs(study)) == "## from one read"


def test_a_figure_replaces_the_one_stored_under_its_id_as_the_dashboard_s_does(study):
    long, short = _figure(900), _figure(3)
    assert len(json.dumps(long, separators=(",", ":"))) > 2 * SYSTEM_ATTR_MAX_LENGTH  # three chunks
    save_figure(study, "top-lr-curves", long)
    save_plotly_graph_object(study, go.Figure(_figure(5)), graph_object_id="schedule-types")
    assert _figures(study) == {"top-lr-curves": long, "schedule-types": _plotly(_figure(5))}
    save_figure(study, "top-lr-curves", short)
    assert _figures(study)["top-lr-curves"] == short
    save_plotly_graph_object(study, go.Figure(long), graph_object_id="schedule-types")
    save_figure(study, "schedule-types", short)
    assert _figures(study) == {"top-lr-curves": short, "schedule-types": short}
    save_figure(study, "top-lr-curves", long)
    stored = study_attrs(study)  # one read for several writes, as a refresh does
    save_figure(study, "top-lr-curves", short, stored)
    save_figure(study, "schedule-types", long, stored)
    assert _figures(study) == {"top-lr-curves": short, "schedule-types": long}
    assert _plotly(long)["data"] == long["data"]  # what is stored is a figure plotly reads as it is


def test_a_trial_s_artifact_path_is_the_dashboard_s(study):
    trial = study.ask()
    assert artifact_path(trial, "abc-123") == get_artifact_path(trial, "abc-123")


@pytest.mark.parametrize(
    ("version", "own"),
    [("0.21.0", True), ("0.21.4", True), ("0.22.0", False), ("0.18.0", False), ("1.0.0", False), (None, True)],
)
def test_the_own_formats_are_written_only_with_the_dashboard_releases_tested_or_none(monkeypatch, version, own):
    from lrsearch.store import dashboard_formats

    monkeypatch.setattr(dashboard_formats, "dashboard_version", lambda: version)  # None: not installed
    assert dashboard_formats.own_formats_on() is own


def test_the_installed_dashboard_is_one_tested():
    from lrsearch.store.dashboard_formats import dashboard_version, own_formats_on

    assert dashboard_version().startswith("0.21.") and own_formats_on()


def test_an_unknown_dashboard_release_writes_through_its_own_functions_with_one_line_and_the_same_results(
    monkeypatch, study, caplog
):
    import optuna_dashboard

    from lrsearch.store import dashboard_formats

    monkeypatch.setattr(dashboard_formats, "dashboard_version", lambda: "9.0.0")
    monkeypatch.setattr(dashboard_formats._own_formats, "said", False, raising=False)
    called = []
    for name in ("save_note", "save_plotly_graph_object"):
        own = getattr(optuna_dashboard, name)
        spy = lambda *args, _own=own, _name=name, **kwargs: called.append(_name) or _own(*args, **kwargs)  # noqa: E731
        monkeypatch.setattr(optuna_dashboard, name, spy)
    trial, long = study.ask(), _figure(900)
    short = _figure(3) | {"layout": {"title": {"text": "3 points"}, "yaxis": {"type": "log"}}}  # as drawn: a layout
    with caplog.at_level("WARNING", logger="lrsearch"):
        save_new_trial_note(trial, "![LR and loss](/artifacts/1/2/3)\n" + LONG)
        save_study_note(study, LONG, study_attrs(study))
        save_study_note(study, "## shorter")
        save_figure(study, "top-lr-curves", long)
        save_figure(study, "top-lr-curves", short, study_attrs(study))
        path = artifact_path(trial, "abc-123")
    assert called == ["save_note", "save_note", "save_note", "save_plotly_graph_object", "save_plotly_graph_object"]
    lines = [r.getMessage() for r in caplog.records if "not one lrsearch was tested with" in r.getMessage()]
    assert len(lines) == 1 and "9.0.0" in lines[0]
    assert get_note(trial) == "![LR and loss](/artifacts/1/2/3)\n" + LONG
    assert get_note(study) == study_note(study) == "## shorter"
    assert _figures(study) == {"top-lr-curves": short}  # as lrsearch draws it: no template added
    assert path == get_artifact_path(trial, "abc-123") == f"/artifacts/{study._study_id}/{trial._trial_id}/abc-123"


def test_without_plotly_the_dashboard_s_own_function_stores_the_figure_as_the_own_format_does(monkeypatch, study):
    import sys

    from lrsearch.store import dashboard_formats

    monkeypatch.setattr(dashboard_formats, "dashboard_version", lambda: "9.0.0")
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)  # as if plotly were not installed
    save_figure(study, "schedule-types", _figure(900))
    assert _figures(study) == {"schedule-types": _figure(900)}
