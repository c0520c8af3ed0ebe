"""optuna-dashboard's stored formats (notes, figures, an artifact's URL path), read and written without
importing optuna-dashboard.

Importing `optuna_dashboard` imports its whole web app and, through `optuna.importance`, scikit-learn's
ensembles: about 1.2 s of a search's start-up on a 2-core CPU, for a few study attributes. The formats are
those of `optuna_dashboard._note` (`save_note`, `get_note`), `_custom_plot_data`
(`save_plotly_graph_object`) and `artifact.get_artifact_path`: each a study system attribute, long text
cut into chunks of `CHUNK` characters. tests/store/test_dashboard_formats.py holds every one of them to the
dashboard's own functions, so an upgrade that changes one fails there.

The own formats are written only where the installed optuna-dashboard is a release the tests ran them
against (`TESTED_DASHBOARD`), or where it is not installed (nothing else reads them then, and the format
is the one the tested release reads). On any other release the dashboard's own public functions write
them (`save_note`, `save_plotly_graph_object`, `get_artifact_path`): slower, the same notes and figures.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from importlib import metadata
from typing import Any

import optuna

from lrsearch.base.versions import is_tested, say_untested_once
from lrsearch.store.optuna_private import storage_of

# The optuna-dashboard releases (major.minor) whose stored formats the tests held lrsearch's own to.
TESTED_DASHBOARD = ("0.21",)
CHUNK = 2045  # the longest string the dashboard stores in one system attribute (SYSTEM_ATTR_MAX_LENGTH)
PLOT_DATA = "dashboard:plot_data:"


@functools.cache
def dashboard_version() -> str | None:
    """The installed optuna-dashboard's version, read from its metadata (importing it costs 1.2 s); None
    where it is not installed."""
    try:
        return metadata.version("optuna-dashboard")
    except metadata.PackageNotFoundError:
        return None


def own_formats_on(version: str | None = None) -> bool:
    """Whether lrsearch writes the dashboard's formats itself with this optuna-dashboard release (default:
    the installed one; see the module's docstring)."""
    version = version or dashboard_version()
    return version is None or is_tested(version, TESTED_DASHBOARD)


def _own_formats() -> bool:
    on = own_formats_on()
    if not on:
        then = (
            "its notes and figures are written through optuna-dashboard's own functions, slower with the same results"
        )
        say_untested_once(_own_formats, "optuna-dashboard", dashboard_version(), TESTED_DASHBOARD, then)
    return on


def note_version_key(trial_id: int | None) -> str:
    """Where a note's version is kept: the study's note (None), or a trial's by its storage id."""
    return "dashboard:note_ver" if trial_id is None else f"dashboard:{trial_id}:note_ver"


def note_chunk_prefix(trial_id: int | None) -> str:
    return "dashboard:note_str:" if trial_id is None else f"dashboard:{trial_id}:note_str:"


def chunks(text: str, prefix: str) -> dict[str, str]:
    """`text` cut into the chunks the dashboard stores it in, by key."""
    return {f"{prefix}{i}": text[start : start + CHUNK] for i, start in enumerate(range(0, len(text), CHUNK))}


def study_attrs(study: optuna.Study) -> dict[str, Any]:
    """The study's system attributes, where the dashboard keeps its notes and figures: one read to pass
    to the functions below when several run together (a refresh writes a note and three figures)."""
    return storage_of(study).get_study_system_attrs(study._study_id)


def study_note(study: optuna.Study, stored: Mapping[str, Any] | None = None) -> str:
    """The study's note as the dashboard shows it ("" when it has none).

    Args:
        stored: the study's system attributes as just read (`study_attrs`); None reads them.
    """
    if not _own_formats():
        from optuna_dashboard import get_note

        return get_note(study)
    attrs = study_attrs(study) if stored is None else stored
    if note_version_key(None) not in attrs:
        return ""
    prefix = note_chunk_prefix(None)
    count = sum(1 for key in attrs if key.startswith(prefix))
    return "".join(attrs[f"{prefix}{i}"] for i in range(count))


def save_study_note(study: optuna.Study, body: str, stored: Mapping[str, Any] | None = None) -> None:
    """Replace the study's note, as the dashboard's `save_note(study, body)` does: the next version, its
    chunks, and the chunks a longer earlier note left emptied.

    Args:
        stored: the study's system attributes as just read (`study_attrs`); None reads them.
    """
    if not _own_formats():
        from optuna_dashboard import save_note

        save_note(study, body)
        return
    stored = study_attrs(study) if stored is None else stored
    version = stored.get(note_version_key(None), 0) + 1
    storage_of(study).set_study_system_attr(study._study_id, note_version_key(None), version)
    _write_chunks(study, chunks(body, note_chunk_prefix(None)), note_chunk_prefix(None), stored)


def save_new_trial_note(trial: optuna.Trial, body: str) -> None:
    """What the dashboard's `save_note(trial, body)` stores for a trial that has no note yet, written
    without reading the study first.

    `save_note` reads every system attribute of the study, twice (to find the note's next version, then
    to clear what an older, longer note left), and the dashboard keeps every trial's note among them: a
    note cost a read of all the notes before it, 8 ms a trial at 200 trials and growing with the study.
    A trial that ends has never had a note, so its note is version 1, its chunks written first and the
    version last (a reader that sees the version sees the whole body).
    """
    if not _own_formats():
        from optuna_dashboard import save_note

        save_note(trial, body)
        return
    storage, study_id, stored_id = trial.storage, trial.study._study_id, trial._trial_id
    for key, text in chunks(body, note_chunk_prefix(stored_id)).items():
        storage.set_study_system_attr(study_id, key, text)
    storage.set_study_system_attr(study_id, note_version_key(stored_id), 1)


def save_figure(
    study: optuna.Study, figure_id: str, figure: Mapping[str, Any], stored: Mapping[str, Any] | None = None
) -> None:
    """Store a plotly figure (as JSON data: `{"data": [...], "layout": {...}}`) under `figure_id`,
    replacing the one stored there, as the dashboard's `save_plotly_graph_object(study, figure,
    graph_object_id=figure_id)` stores a figure's `to_json()`.

    Args:
        stored: the study's system attributes as just read (`study_attrs`); None reads them.
    """
    if not _own_formats():
        from optuna_dashboard import save_plotly_graph_object

        save_plotly_graph_object(study, _plotly_figure(figure), graph_object_id=figure_id)
        return
    prefix = f"{PLOT_DATA}{figure_id}:"
    text = json.dumps(figure, allow_nan=False, separators=(",", ":"))
    _write_chunks(study, chunks(text, prefix), prefix, study_attrs(study) if stored is None else stored)


def artifact_path(trial: optuna.Trial, artifact_id: str) -> str:
    """The dashboard's URL path of a trial's artifact (its `get_artifact_path`)."""
    if not _own_formats():
        from optuna_dashboard.artifact import get_artifact_path

        return get_artifact_path(trial, artifact_id)
    return f"/artifacts/{trial.study._study_id}/{trial._trial_id}/{artifact_id}"


def _plotly_figure(figure: Mapping[str, Any]) -> Any:
    """`figure` as `save_plotly_graph_object` takes it: plotly's own object, its template left as lrsearch
    draws it (plotly.py would add its default one); where plotly is not installed (it is neither lrsearch's
    requirement nor the dashboard's), an object giving the same JSON, the one thing the dashboard asks of it."""
    try:
        import plotly.graph_objects as go
    except ModuleNotFoundError:
        return _FigureJSON(json.dumps(figure, allow_nan=False, separators=(",", ":")))
    graph = go.Figure(dict(figure))
    if "template" not in figure.get("layout", {}):
        graph.layout.template = None
    return graph


class _FigureJSON:
    def __init__(self, text: str) -> None:
        self.text = text

    def to_json(self) -> str:
        return self.text


def _write_chunks(study: optuna.Study, written: dict[str, str], prefix: str, stored: Mapping[str, Any]) -> None:
    """Write the chunks, then empty the ones past them that an earlier, longer text left (`stored`)."""
    storage, study_id = storage_of(study), study._study_id
    for key, text in written.items():
        storage.set_study_system_attr(study_id, key, text)
    for i in range(len(written), sum(1 for key in stored if key.startswith(prefix))):
        storage.set_study_system_attr(study_id, f"{prefix}{i}", "")
