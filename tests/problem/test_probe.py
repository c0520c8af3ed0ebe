"""The one stand-in trial that walks the search space: it records every suggest call, follows a branch
path, and checks pinned values."""

from __future__ import annotations

import pytest

from lrsearch.base.errors import ConfigError
from lrsearch.problem.probe import ParamRange, Probe


def _space(trial) -> dict:
    kind = trial.suggest_categorical("kind", ["a", "b", "c"])
    rate = trial.suggest_float("rate", 1e-3, 1.0, log=True)
    return {"kind": kind, "rate": rate} | ({"depth": trial.suggest_int("depth", 1, 9)} if kind == "b" else {})


def test_a_walk_records_each_suggest_call_with_its_kind_and_range():
    probe = Probe()
    assert _space(probe) == {"kind": "a", "rate": 1e-3}  # the first choice, a number's low end
    assert probe.ranges == [
        ParamRange("kind", "categorical", choices=("a", "b", "c")),
        ParamRange("rate", "float", 1e-3, 1.0, log=True),
    ]
    assert [str(r) for r in probe.ranges] == ["kind in {a, b, c}", "rate in [0.001, 1, log]"]
    assert probe.branches() == [(1,), (2,)]


def test_a_walk_follows_its_path_and_names_no_branch_it_was_given():
    probe = Probe(path=(1,))
    assert _space(probe) == {"kind": "b", "rate": 1e-3, "depth": 1}
    assert probe.ranges[-1] == ParamRange("depth", "int", 1, 9) and probe.sampled == {"kind", "rate", "depth"}
    assert probe.branches() == []


def test_a_pinned_value_is_checked_and_returned():
    assert _space(Probe({"kind": "b", "depth": 9, "rate": 0.5})) == {"kind": "b", "rate": 0.5, "depth": 9}
    with pytest.raises(ConfigError, match=r"search.fixed: depth=10 is outside its searched range \[1, 9\]"):
        _space(Probe({"kind": "b", "depth": 10}))
    with pytest.raises(ConfigError, match=r"search.fixed: kind='d' is not one of its choices \(a, b, c\)"):
        _space(Probe({"kind": "d"}))
