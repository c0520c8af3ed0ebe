"""The dashboard and the report as a user sees them: real pages in a real (headless) Chromium.

Screenshots land in `test-artifacts/` (or $LRSEARCH_TEST_ARTIFACTS) for a person to look at.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from typer.testing import CliRunner

from lrsearch.cli import app
from lrsearch.views.dashboard import trial_pictures

LRSEARCH = Path(sys.executable).parent / "lrsearch"
SCREENSHOTS = Path(os.environ.get("LRSEARCH_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts"))
runner = CliRunner()

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium from the system's packages; a missing one skips, unless CI requires it."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        chromium = None
    if chromium is None:
        if os.environ.get("LRSEARCH_REQUIRE_BROWSER"):
            pytest.fail("LRSEARCH_REQUIRE_BROWSER is set but Chromium or Playwright is missing")
        pytest.skip("no Chromium (apt-get install chromium) or no Playwright")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def searched(tiny_config_file) -> tuple[str, optuna.Study]:
    result = runner.invoke(app, ["optimize", "--config", str(tiny_config_file), "--trials", "8"])
    assert result.exit_code == 0, result.output
    storage = yaml.safe_load(tiny_config_file.read_text())["study"]["storage"]
    return storage, optuna.load_study(study_name="default", storage=storage)


def _dashboard(storage: str, cwd: Path) -> tuple[subprocess.Popen, str]:
    """`lrsearch dashboard` on the study `default`, and the address of its study page."""
    server = subprocess.Popen(
        [LRSEARCH, "dashboard", "--storage", storage, "--study-name", "default", "--port", "0"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    banner = re.search(r"(http://127\.0\.0\.1:\d+/dashboard/studies/\d+)", server.stdout.readline())
    if banner is None:  # no server to test: stop what started
        server.kill()
        _, stderr = server.communicate(timeout=30)
        raise AssertionError(f"lrsearch dashboard did not start: {stderr[-2000:]}")
    return server, banner.group(1)


def test_the_dashboard_shows_the_study_its_figures_and_each_trial_s_picture(browser, searched, tmp_path):
    storage, study = searched
    server, address = _dashboard(storage, tmp_path)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})

        page.goto(address)
        best = study.best_trial.number
        page.get_by_text(f"Best Trial (number={best})").wait_for()
        top = min(5, len(study.get_trials(states=(TrialState.COMPLETE,))))  # the pruner ends some of 8
        titles = (f"LR schedules of the {top} best trials", f"val loss of the {top} best trials", "by schedule type")
        for title in titles:
            page.locator(".js-plotly-plot svg.main-svg", has_text=title).first.wait_for()
        assert page.locator(".js-plotly-plot").count() >= 6  # the dashboard's own plots and ours
        page.screenshot(path=SCREENSHOTS / "dashboard-study.png", full_page=True)

        page.goto(f"{address}/trials")
        for trial in study.trials:
            page.get_by_text(f"Trial {trial.number}", exact=True).first.wait_for()

        page.goto(f"{address}/trials?numbers={best}")
        [artifact_id] = trial_pictures(study, study.best_trial)
        picture = page.locator(f"img[alt='LR schedule and losses of trial {best}']")
        picture.wait_for()
        assert picture.get_attribute("src").endswith(artifact_id)
        picture.evaluate("image => image.decode()")  # fails unless the SVG arrived and renders
        assert picture.evaluate("image => image.naturalWidth") > 300
        page.get_by_text(study.best_trial.user_attrs["run_spec"]["schedule"]["name"]).first.wait_for()
        page.screenshot(path=SCREENSHOTS / "dashboard-trial.png")
    finally:
        server.send_signal(signal.SIGINT)
        stdout, stderr = server.communicate(timeout=30)
    assert server.returncode == 0 and "dashboard stopped" in stdout and "Traceback" not in stderr, stderr


def test_the_report_renders_from_disk(browser, searched, tmp_path):
    storage, study = searched
    out = tmp_path / "report.html"
    assert runner.invoke(app, ["report", "--storage", storage, "-o", str(out)]).exit_code == 0

    page = browser.new_page(viewport={"width": 1100, "height": 900})
    page.goto(out.as_uri())
    assert page.evaluate("document.documentElement.scrollWidth") <= 1100  # the page fits the window
    for title in ("The search", "Optimization history", "LR schedules of the best trials", "Schedule types compared"):
        assert page.get_by_role("heading", name=title).is_visible()
    figures = page.locator("figure svg")
    assert figures.count() == 5  # no replay recorded yet: no baselines figure
    assert all(figures.nth(i).bounding_box()["height"] > 100 for i in range(figures.count()))
    assert page.get_by_text(f"The best trial's run (#{study.best_trial.number}, not certified)").is_visible()
    page.screenshot(path=SCREENSHOTS / "report.png", full_page=True)


def test_markup_stored_in_a_study_shows_as_text_in_the_report(browser, tmp_path):
    from test_report_page import HOSTILE_NAME, IMAGE, SCRIPT, hostile_replay, hostile_study, write_report

    storage = f"sqlite:///{tmp_path}/hostile.db"
    hostile_study(storage, hostile_replay())
    out = tmp_path / "report.html"
    write_report(storage, out)

    page = browser.new_page(viewport={"width": 1100, "height": 900})
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(out.as_uri())
    page.wait_for_load_state("load")
    assert page.get_by_role("heading", name=f"lrsearch report: study {HOSTILE_NAME}").is_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 1100  # stored text does not widen it
    replay = page.locator("section#baselines")
    assert f"Replayed on {IMAGE}, seed 0, recorded {SCRIPT}." in replay.inner_text()
    assert replay.locator("td", has_text=SCRIPT).count() == 2  # a run's label, a divergence message
    assert page.locator("section#summary pre", has_text=f"{SCRIPT}:build").is_visible()  # the best run spec
    assert page.get_by_text("Left out, their stored records unreadable: trial #3.").is_visible()
    assert page.locator("script, img").count() == 0
    page.screenshot(path=SCREENSHOTS / "report-hostile.png", full_page=True)
    assert dialogs == []


def test_a_trial_page_fits_a_1280_px_window(browser, searched, tmp_path):
    """A trial's user attributes are long single lines (`run_spec`, the curves): the dashboard puts each in
    a box of its own that scrolls, but its <main> grew to the longest (4,200 px) until lrsearch's style."""
    storage, study = searched
    server, address = _dashboard(storage, tmp_path)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        trial = study.best_trial
        page.goto(f"{address}/trials?numbers={trial.number}")
        run_spec = page.locator("p", has_text="run_spec {")
        run_spec.wait_for()
        assert run_spec.evaluate("p => p.scrollWidth") > 1280  # a line that long is still one line, in its box
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        page.screenshot(path=SCREENSHOTS / "dashboard-trial-1280.png")
        assert widths[0] <= widths[1] == 1280, f"the trial page is {widths[0]} px wide in a 1280-px window"
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)
