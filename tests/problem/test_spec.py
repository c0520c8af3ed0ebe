from __future__ import annotations

import pytest

from lrsearch.base.errors import ConfigError
from lrsearch.problem.build import load_run_spec
from lrsearch.problem.spec import OptimizerSpec, RunSpec, ScheduleSpec


def test_yaml_round_trip(tmp_path):
    spec = RunSpec(
        lr=0.0314,
        optimizer=OptimizerSpec(name="adamw", momentum=0.85, weight_decay=1e-4),
        schedule=ScheduleSpec(name="MultiStepLR", params={"milestones": [5, 12], "gamma": 0.25}),
        epochs=15,
        seed=7,
    )
    path = tmp_path / "sub" / "best.yaml"
    spec.save(path)
    assert load_run_spec(path) == spec
    assert "MultiStepLR" in path.read_text()


def test_a_saved_run_names_only_the_task_settings_given_and_loads_back_the_same(tmp_path):
    spec = RunSpec(
        data={"task": "moons", "noise": 0.1},
        schedule=ScheduleSpec(name="StepLR", params={"step_size": 5, "gamma": 0.5}),
    )
    path = tmp_path / "best.yaml"
    spec.save(path)
    text = path.read_text()
    assert "noise: 0.1" in text and "val_fraction: 0.2" in text
    assert "null" not in text and "n_samples" not in text  # left to the task's default, as a user writes it
    assert load_run_spec(path) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr: [1, 2\n", "not valid YAML at line"),
        ("- a\n- b\n", "expected a mapping of fields, got list"),
        ("lr: fast\n", "lr: Input should be a valid number"),
        ("lr: -1\n", "lr: Input should be greater than 0"),
        ("epochs: 2.5\n", "epochs: Input should be a valid integer"),
        ("schedule: {name: Cosine}\n", "schedule.name: unknown schedule 'Cosine'; choose from none, StepLR"),
        ("optimizer: {name: lamb}\n", "optimizer.name: Input should be 'sgd', 'adam' or 'adamw'"),
        ("learning_rate: 0.1\n", "learning_rate: unknown field"),
        ("data: {n_classes: 9, n_informative: 2}\n", "data: n_classes=9 needs n_informative >= 5"),
        ("optimizer: {name: adam, nesterov: true}\n", "optimizer: nesterov needs the sgd optimizer"),
    ],
)
def test_bad_files_name_the_field(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_run_spec(path)
    assert message in str(raised.value)
    assert str(raised.value).startswith(str(path))
    assert "\n" not in str(raised.value)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read: No such file"):
        load_run_spec(tmp_path / "nope.yaml")
