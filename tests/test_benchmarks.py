"""The benchmark scripts still load against the package: their figures are quoted in closing notes and
the README, and nothing else runs them in CI (a rename in `lrsearch.base.device` once left
`benchmarks/quality.py` unable to start)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("script", sorted(BENCHMARKS.glob("*.py")), ids=lambda path: path.name)
def test_each_benchmark_script_loads(script, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # as `python benchmarks/x.py` puts its folder first
    runpy.run_path(str(script), run_name="loaded_by_a_test")  # its imports resolve; its main() is not run
