"""A task's hooks are checked when it loads: a bad setting, or a step that fails on the first rows, is one
line naming the field and what it takes, before anything trains."""

from __future__ import annotations

from pathlib import Path

import pytest

from lrsearch.base.errors import ConfigError
from lrsearch.problem.data import load_data
from lrsearch.problem.spec import DataSpec

TASKS = Path(__file__).parents[1] / "engines" / "hook_tasks.py"


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ("no_accumulation", "Task.accumulate_batches must be a whole number, 1 or more; got 0"),
        ("fp8", "Task.autocast must be 'bfloat16', 'float16' or None, got 'fp8'"),
        ("sideways", "Task.score.direction must be 'maximize' or 'minimize', got 'max'"),
        ("negative_clip", "Task.clip_grad_norm must be a positive number or None, got -1.0"),
        ("step_not_callable", "Task.train_step must be a function of (model, batch) or None, got 'dict_step'"),
        (
            "score_named_loss",
            "Task.score.name must be a letter, then up to 39 letters, digits or _ (not 'loss'), got 'loss'",
        ),
        (
            "no_train_step",
            "Task.train: a DataLoader must yield (x, y) pairs of tensors, or the task gives "
            "Task.train_step(model, batch) -> loss for its batches",
        ),
        (
            "no_eval_step",
            "Task.val: a DataLoader must yield (x, y) pairs of tensors, or the task gives "
            "Task.eval_step(model, batch) for its batches",
        ),
        ("step_raises", "train_step(model, batch) raised TypeError: TwoInputs.forward() missing 1 required"),
        ("score_raises", "Task.score.fn(output, target) raised ZeroDivisionError: division by zero"),
    ],
)
def test_a_bad_hook_is_one_line_naming_the_field(task, message):
    with pytest.raises(ConfigError) as raised:
        load_data(DataSpec(task=f"{TASKS}:{task}"), seed=0)
    text = str(raised.value)
    assert "\n" not in text and text.startswith(f"--task {TASKS}:{task}: {message}")
