"""optuna-dashboard's stored formats (notes, figures, an artifact's URL path), read and written without
importing optuna-dashboard.

Importing `optuna_dashboard` imports its whole web app and, through `optuna.importance`, scikit-learn's
ensembles: about 1.2 s of a search's start-up on a 2-core CPU, for a few study attributes. The formats are
those of `optuna_dashboard._note` (`save_note`, `get_note`), `_custom_plot_data`
(`save_plotly_graph_object`) and `artifact.get_artifact_path`: each a study system attribute, long text
cut into chunks of `CHUNK` characters. tests/test_dashboard_store.py holds every one of them to the
dashboard's own functions, so an upgrade that changes one fails there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import optuna

from lrsearch.store.optuna_private import storage_of

CHUNK = 2045  # the longest string the dashboard stores in one system attribute (SYSTEM_ATTR_MAX_LENGTH)
PLOT_DATA = "dashboard:plot_data:"


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
    prefix = f"{PLOT_DATA}{figure_id}:"
    text = json.dumps(figure, allow_nan=False, separators=(",", ":"))
    _write_chunks(study, chunks(text, prefix), prefix, study_attrs(study) if stored is None else stored)


def artifact_path(trial: optuna.Trial, artifact_id: str) -> str:
    """The dashboard's URL path of a trial's artifact (its `get_artifact_path`)."""
    return f"/artifacts/{trial.study._study_id}/{trial._trial_id}/{artifact_id}"


def _write_chunks(study: optuna.Study, written: dict[str, str], prefix: str, stored: Mapping[str, Any]) -> None:
    """Write the chunks, then empty the ones past them that an earlier, longer text left (`stored`)."""
    storage, study_id = storage_of(study), study._study_id
    for key, text in written.items():
        storage.set_study_system_attr(study_id, key, text)
    for i in range(len(written), sum(1 for key in stored if key.startswith(prefix))):
        storage.set_study_system_attr(study_id, f"{prefix}{i}", "")
