"""Progress from Python: `lrsearch.search` and `lrsearch.certify` show bars by default (in a terminal, and
in a notebook run by a real IPython kernel), hand the same steps to a callback, and `progress=False`
silences the bars but not the callback."""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path

import pytest
from conftest import TINY

import lrsearch
from lrsearch.searching.progress import ProgressEvent

REPO = Path(__file__).resolve().parents[2]
CERTIFY_LITTLE = {"certify_seeds": 2, "certify_top": 1, "figures": False}


def _tiny(storage: str, **study) -> dict:
    return copy.deepcopy(TINY) | {"study": {"storage": storage, "name": "watched", "seed": 0} | study}


def _phase(events: list[ProgressEvent], phase: str) -> list[ProgressEvent]:
    return [event for event in events if event.phase == phase]


def _check_counts(events: list[ProgressEvent], *, strictly: bool) -> None:
    """Each event's done at most its total, done growing, and the last one at its total."""
    assert events, "no events"
    dones = [event.done for event in events]
    assert all(event.total is not None and 0 <= event.done <= event.total for event in events)
    assert dones == sorted(dones) and (not strictly or len(set(dones)) == len(dones))
    assert events[-1].done == events[-1].total


def test_the_callback_sees_the_search_then_its_certification_and_nothing_is_printed(capsys):
    events: list[ProgressEvent] = []
    config = _tiny("sqlite:///:memory:", **CERTIFY_LITTLE)
    result = lrsearch.search(config, trials=4, progress=False, callback=events.append)

    assert result.certificate is not None
    search, certify = _phase(events, "search"), _phase(events, "certify")
    assert events == search + certify  # the search's events, then certification's
    _check_counts(search, strictly=True)
    assert search[-1].total == 4 and search[-1].best == pytest.approx(result.best_value)
    _check_counts(certify, strictly=False)
    assert all(event.best is None for event in certify)
    assert capsys.readouterr() == ("", "")


def test_certify_shows_its_bar_by_default_and_calls_back(tmp_path, capsys):
    storage = f"sqlite:///{tmp_path}/studies.db"
    lrsearch.search(_tiny(storage, certify=False, figures=False), trials=4, progress=False)
    assert capsys.readouterr() == ("", "")

    events: list[ProgressEvent] = []
    certificate = lrsearch.certify("watched", storage, fresh_seeds=2, top=1, callback=events.append)
    assert certificate.recommended is not None
    assert {event.phase for event in events} == {"certify"}
    _check_counts(events, strictly=False)
    shown = capsys.readouterr().out
    assert "certifying" in shown and f"{events[-1].done}/{events[-1].total}" in shown


def _notebook_source(storage: str) -> str:
    config = _tiny(storage, **CERTIFY_LITTLE)
    return (
        f"import sys\nsys.path.insert(0, {str(REPO)!r})\nimport lrsearch\n"
        f"result = lrsearch.search({config!r}, trials=4)\n"
        "print('trials:', len(result.trials))"
    )


def test_a_notebook_shows_the_search_and_certification_bars(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    # A kernel of this interpreter, whatever kernels the machine has installed.
    spec = tmp_path / "jupyter" / "kernels" / "lrsearch-test"
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "lrsearch", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(_notebook_source("sqlite:///:memory:"))])
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="lrsearch-test", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()

    outputs = notebook.cells[0].outputs
    shown = [output for output in outputs if output.output_type == "display_data"]
    # One output per bar, redrawn in place (IPython's display_id) until its end, in rich's HTML and text.
    assert len(shown) == 2, json.dumps(outputs, indent=1)[:2000]
    trials, certifying = (re.sub(r"\x1b\[[0-9;]*m", "", output.data["text/plain"]) for output in shown)
    assert trials.startswith("trials ━") and " 4/4 best 0." in trials and "pruned" in trials
    done, total = re.search(r"^certifying ━+ (\d+)/(\d+) run-epochs", certifying).groups()
    assert done == total and int(total) > 0
    assert all(output.data["text/html"].startswith("<pre") for output in shown)
    streams = "".join(output.get("text", "") for output in outputs if output.output_type == "stream")
    # No warning of lrsearch's (rich's live display would ask for ipywidgets); Optuna's import of tqdm.auto
    # warns in a notebook without ipywidgets, as it does for any user of Optuna there.
    lines = [line for line in streams.splitlines() if "TqdmWarning" not in line and "tqdm" not in line]
    assert lines == ["trials: 4"]
