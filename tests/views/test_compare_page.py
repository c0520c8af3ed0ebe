"""`lrsearch report` of several studies: real studies side by side in one table and one figure, studies of
different problems refused in one line unless asked for, and stored text escaped as in any report."""

from __future__ import annotations

import copy
import html

import optuna
import pytest
from conftest import TINY
from test_report_page import SCRIPT, hostile_replay, hostile_study
from typer.testing import CliRunner

import lrsearch
from lrsearch.cli import app
from lrsearch.views.summary import current_certificate

runner = CliRunner()


@pytest.fixture(scope="module")
def storage(tmp_path_factory) -> str:
    """Two studies of one problem, A certified (2 fresh seeds) and B not, B's runs shorter (a length is
    what one may compare), and C of other data."""
    url = f"sqlite:///{tmp_path_factory.mktemp('compare')}/studies.db"
    little = {"storage": url, "figures": False, "certify_seeds": 2, "certify_top": 1}
    for name, certify, data, epochs in [("A", True, {}, 4), ("B", False, {}, 3), ("C", False, {"n_samples": 300}, 4)]:
        config = copy.deepcopy(TINY)
        config["data"] |= data
        config["study"] = little | {"name": name, "certify": certify}
        lrsearch.search(config, trials=4, epochs=epochs, progress=False)
    return url


def _study(name: str, storage: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)


def _report(storage: str, tmp_path, *names: str, more: tuple[str, ...] = ()):
    out = tmp_path / "both.html"
    flags = [flag for name in names for flag in ("--study-name", name)]
    result = runner.invoke(app, ["report", *flags, "--storage", storage, "-o", str(out), *more])
    return result, out


def test_two_studies_of_one_problem_side_by_side(storage, tmp_path):
    result, out = _report(storage, tmp_path, "A", "B", more=("--png",))
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "<title>lrsearch report: studies A, B</title>" in page
    assert page.count("<svg") == 1 and (tmp_path / "both-studies.png").is_file()
    rows = page.split("<tr>")[2:]
    assert [row.split("</td>")[0] for row in rows] == ["<td>A", "<td>B"]
    certificate = current_certificate(_study("A", storage))
    chosen = certificate.recommended_candidate
    assert html.escape(chosen.label) in rows[0] and chosen.test.text() in rows[0] and "<td>2</td>" in rows[0]
    assert "not certified</td>" in rows[1] and html.escape(certificate.sentence) in page
    for row, name, epochs in [(rows[0], "A", 4), (rows[1], "B", 3)]:
        best = _study(name, storage).best_trial
        assert f"<td>#{best.number} " in row and f"{epochs} epochs</td><td>{best.value:.4f}</td>" in row
    assert "Different problems" not in page


def test_studies_of_different_problems_are_refused_in_one_line_unless_asked(storage, tmp_path):
    result, out = _report(storage, tmp_path, "A", "C")
    assert result.exit_code == 2 and not out.exists()
    assert result.output == (
        "Error: the studies are of different problems (study 'A' has data.n_samples=400, study 'C' has "
        "data.n_samples=300); --allow-different-problems compares them anyway\n"
    )
    result, out = _report(storage, tmp_path, "A", "C", more=("--allow-different-problems",))
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "<strong>Different problems (study &#x27;A&#x27; has data.n_samples=400" in page
    assert "<td>C</td>" in page and page.count("<svg") == 1


def test_a_study_without_a_completed_trial_or_a_name_is_one_line(storage, tmp_path):
    optuna.create_study(study_name="empty", storage=storage)
    for names, message in [(("A", "empty"), "study 'empty' has no completed trial"), (("A", "nope"), "'nope'")]:
        result, _ = _report(storage, tmp_path, *names)
        assert result.exit_code == 2 and result.output.count("\n") == 1 and message in result.output


def test_stored_markup_in_a_compared_study_is_escaped(storage, tmp_path):
    hostile = hostile_study(storage, hostile_replay())
    result, out = _report(storage, tmp_path, "A", hostile.study_name)
    assert result.exit_code == 2 and result.output.count("\n") == 1  # its problem is another
    result, out = _report(storage, tmp_path, "A", hostile.study_name, more=("--allow-different-problems",))
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "<script" not in page.lower() and "<img" not in page.lower()
    assert html.escape(f"study {SCRIPT}") in page
