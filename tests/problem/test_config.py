from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lrsearch.base.errors import ConfigError
from lrsearch.problem.config import DEFAULT_CONFIG, SearchConfig, load_config, searchable_parameters
from lrsearch.problem.schedules import SCHEDULES

REPO = Path(__file__).resolve().parents[2]


def test_default_file_equals_the_built_in_defaults():
    from_file = yaml.safe_load((REPO / DEFAULT_CONFIG).read_text())
    assert SearchConfig.model_validate(from_file) == SearchConfig()
    assert SearchConfig().search.schedules == list(SCHEDULES)


def test_flags_override_the_file(tiny_config_file):
    config = load_config(tiny_config_file, {"study.trials": 7, "train.epochs": 3, "study.sampler": None})
    assert (config.study.trials, config.train.epochs, config.study.sampler) == (7, 3, "tpe")
    assert config.data.n_samples == 400


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"study.trials": 0}, "--trials: Input should be greater than or equal to 1 (got 0)"),
        ({"study.trials": -5}, "--trials: Input should be greater than or equal to 1"),
        ({"study.sampler": "bayes"}, "--sampler: Input should be 'tpe', 'random', 'gp' or 'qmc' (got 'bayes')"),
        ({"study.pruner": "asha"}, "--pruner: Input should be 'quartile', 'median', 'successive-halving'"),
        ({"study.devices": "gpu"}, "--devices: devices must be auto or a list like cpu or cuda:0,cuda:1, got 'gpu'"),
        ({"study.devices": "cuda:0,auto"}, "--devices: devices must be auto or a list"),
        ({"study.jobs": 0}, "--jobs: Input should be greater than or equal to 1"),
        ({"train.epochs": 0}, "--epochs: Input should be greater than or equal to 1"),
        ({"study.timeout": -1.0}, "--timeout: Input should be greater than 0"),
    ],
)
def test_bad_flags_are_named(tiny_config_file, overrides, message):
    with pytest.raises(ConfigError) as raised:
        load_config(tiny_config_file, overrides)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ({"schedules": ["StepLR", "Warmup"]}, "search.schedules: unknown schedule 'Warmup'; choose from none"),
        ({"schedules": []}, "search.schedules: List should have at least 1 item"),
        ({"lr": {"low": 1.0, "high": 0.1}}, "search.lr: low (1.0) must be below high (0.1)"),
        ({"momentum": 1.5}, "search.momentum: momentum must lie in [0, 1)"),
        ({"fixed": {"StepLR.gama": 0.5}}, "search: fixed: 'StepLR.gama' is not a searched parameter"),
        ({"optimizers": "sgd"}, "search.optimizers: Input should be a valid list"),
    ],
)
def test_bad_file_fields_are_named(tmp_path, search, message):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"search": search}))
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert str(raised.value).startswith(f"{path}: {message}")


def test_trials_or_timeout_must_end_the_search(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("study: {trials: null}\n")
    with pytest.raises(ConfigError, match="set trials or timeout"):
        load_config(path)
    assert load_config(path, {"study.timeout": 5.0}).study.timeout == 5.0


def test_fixed_accepts_every_searched_name():
    names = searchable_parameters(["StepLR", "WarmupDecay"])
    assert {"lr", "schedule", "StepLR.gamma", "WarmupDecay.decay"} <= set(names)
    SearchConfig.model_validate({"search": {"fixed": dict.fromkeys(names[:1], 1)}})


@pytest.mark.parametrize(
    ("task", "name"),
    [
        ("classification", "default"),
        ("digits", "digits"),
        ("breast_cancer", "breast_cancer"),
        ("studies.my_task:build", "studies.my_task.build"),
        ("studies/my_task.py:build", "my_task.build"),
        ("../odd dir/.hidden.py:make it", "hidden.make-it"),
    ],
)
def test_a_study_left_unnamed_is_named_after_its_task(task, name):
    config = SearchConfig.model_validate({"data": {"task": task}})
    assert config.study.name == name
    assert config.study.export_path == Path("studies") / f"{name}-best.yaml"


def test_a_named_study_keeps_its_name_whatever_the_task(tmp_path):
    assert SearchConfig.model_validate({"data": {"task": "digits"}, "study": {"name": "x"}}).study.name == "x"
    assert load_config(None, {"data.task": "digits", "study.name": "mine"}).study.name == "mine"
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"data": {"task": "moons"}, "study": {"name": None}}))
    assert load_config(path, {}).study.name == "moons"
    assert load_config(path, {"data.task": "wine"}).study.name == "wine"


def test_the_count_of_seeds_a_trial_trains_at_keeps_its_old_name_working():
    """`search.seeds` (and `seeds=` in Python) read as the study's `seed` mistyped: the count is now
    `seeds_per_trial`; a config or a call that still says `seeds` gets the same setting."""
    import warnings

    from lrsearch.problem.config import SearchConfig, overrides_from

    assert SearchConfig.model_validate({"search": {"seeds": 3}}).search.seeds_per_trial == 3
    assert SearchConfig.model_validate({"search": {"seeds_per_trial": 2}}).search.seeds_per_trial == 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert overrides_from({"seeds": 2}) == {"search.seeds_per_trial": 2}
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
