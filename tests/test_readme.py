"""The README, followed in order by a new user: its Usage commands, then its Python examples, each must run.

They run in a fresh folder holding a copy of `studies/default.yaml` made tiny (2-epoch trials, a small
model, 2 trials, certification at 2 seeds of the best trial), with the commands' own flags shrinking what
they train where the README's numbers would take minutes.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
LRSEARCH = Path(sys.executable).parent / "lrsearch"

# Lines of the Usage block that a test cannot run, and why.
SKIPPED = {
    "dashboard": "starts a web server that runs until Ctrl-C",
    "worker": "joins a study from another machine: its URL and X are placeholders",
}
# Flags appended to a command (the last of a repeated flag wins), so it trains little.
TINY_FLAGS = {
    "optimize": ["--trials", "2"],  # the README's 50 and 200 trials
    "certify": ["--epochs", "3", "--fresh-seeds", "2", "--top", "1"],  # the README's --epochs 100, at 5 seeds
}
# The Python examples' own sizes, made tiny the same way.
TINY_PYTHON = {"trials=50": "trials=2"}


def _readme_block(language: str, after: str) -> str:
    """The first ```language block after the heading `after`."""
    readme = (REPO / "README.md").read_text()
    start = readme.index(f"\n{after}\n")
    match = re.compile(rf"^```{language}\n(.*?)^```$", re.M | re.S).search(readme, start)
    assert match is not None, f"no ```{language} block after {after!r}"
    return match.group(1)


def _tiny_default_config(folder: Path) -> None:
    config = yaml.safe_load((REPO / "studies" / "default.yaml").read_text())
    config["model"]["hidden"] = 16
    config["train"]["epochs"] = 2
    config["study"] |= {"trials": 2, "certify_seeds": 2, "certify_top": 1}
    (folder / "studies").mkdir()
    (folder / "studies" / "default.yaml").write_text(yaml.safe_dump(config))


@pytest.mark.slow
def test_the_readme_s_usage_and_python_examples_run_in_order(tmp_path):
    _tiny_default_config(tmp_path)
    ran = []
    for line in _readme_block("bash", "## Usage").splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        assert words[0] == "lrsearch", line
        if words[1] in SKIPPED:
            continue
        run = subprocess.run(
            [LRSEARCH, *words[1:], *TINY_FLAGS.get(words[1], [])],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert run.returncode == 0, f"README line failed: {line}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
        ran.append(words[1])
    assert ran.count("optimize") == 5 and {"certify", "train", "export", "schedulers", "report"} <= set(ran)
    assert (tmp_path / "best.yaml").is_file() and (tmp_path / "report.html").is_file()
    assert (tmp_path / "both.html").is_file()

    examples = [
        _readme_block("python", "### From Python"),
        _readme_block("python", "## The exported run, in your own code"),
    ]
    script = "\n".join(examples)
    for old, new in TINY_PYTHON.items():
        assert old in script, old
        script = script.replace(old, new)
    run = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    assert run.returncode == 0, f"README's Python examples failed:\n{script}\n{run.stderr[-3000:]}"
