"""Tasks: what a search trains on. The built-in ones (scikit-learn generators and the data sets it ships
on disk, all trained with the spec's MLP), and a user's own, named `module:function`.

A user's function returns a `Task`: a model factory, train and val data (tensors or DataLoaders), an
optional test split, the loss, optionally which score to report beside it, and optionally its own steps
(`train_step`, `eval_step`) and their settings (clipping, gradient accumulation, autocast).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lrsearch.base.errors import ConfigError
from lrsearch.problem.hooks import AUTOCAST_DTYPES, DIRECTIONS, SCORE_NAME, EvalStep, Score, TrainStep

Kind = Literal["classification", "regression"]
ScoreName = Literal["accuracy", "r2"]


@dataclass(frozen=True)
class Task:
    """What a user's task function returns.

    Attributes:
        model: builds a fresh model (lrsearch seeds torch before each call, so every trial starts alike).
        train, val, test: `(x, y)` tensors (batched by the spec's `batch_size` in a seeded order) or
            DataLoaders (used as they are; they decide batch size and order). A DataLoader's batches may be
            anything (dicts, several inputs) when the steps below take them.
        loss: `loss(output, target)` -> a scalar tensor, e.g. `torch.nn.functional.cross_entropy`: the
            default train step's loss, `loss(model(x), y)`, and the val and test loss.
        score: also report `"accuracy"` (classes: argmax of the output), `"r2"` (one output) or a
            `lrsearch.Score` of your own (a function and its direction, e.g. F1, maximized); None: none.
        train_step: `train_step(model, batch) -> loss` (a scalar tensor to minimise) for batches the default,
            `loss(model(x), y)` of an `(x, y)` pair, does not fit: a dict, several inputs, a loss of its own.
        eval_step: `eval_step(model, batch) -> (output, target)`, run in eval mode on a whole split (one
            batch of all its rows) for the val and test loss, `loss(output, target)`, and the score;
            default `(model(x), y)`.
        clip_grad_norm: clip the gradient to this norm before each optimizer step; None: no clipping.
        accumulate_batches: batches whose gradients add up to one optimizer step (per-batch schedules
            step once per optimizer step); 1: a step per batch.
        autocast: "bfloat16" or "float16": the steps run under `torch.autocast` (the weights stay float32;
            float16 has no loss scaling, so prefer bfloat16); None: full precision.
    """

    model: Callable[[], Any]
    train: Any
    val: Any
    loss: Callable[[Any, Any], Any]
    test: Any = None
    score: ScoreName | Score | None = None
    train_step: TrainStep | None = None
    eval_step: EvalStep | None = None
    clip_grad_norm: float | None = None
    accumulate_batches: int = 1
    autocast: str | None = None


@dataclass(frozen=True)
class BuiltinTask:
    name: str
    kind: Kind
    about: str
    # The DataSpec fields it reads and their defaults (the split fractions apply to every task).
    defaults: dict[str, Any]
    generate: Callable[[dict[str, Any], int], tuple[np.ndarray, np.ndarray]]


def _classification(p: dict[str, Any], seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_classification

    return make_classification(
        n_samples=p["n_samples"],
        n_features=p["n_features"],
        n_informative=p["n_informative"],
        n_redundant=0,
        n_classes=p["n_classes"],
        class_sep=p["class_sep"],
        random_state=seed,
    )


def _moons(p: dict[str, Any], seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_moons

    return make_moons(n_samples=p["n_samples"], noise=p["noise"], random_state=seed)


def _circles(p: dict[str, Any], seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_circles

    return make_circles(n_samples=p["n_samples"], noise=p["noise"], factor=0.5, random_state=seed)


def _regression(p: dict[str, Any], seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import make_regression

    return make_regression(
        n_samples=p["n_samples"],
        n_features=p["n_features"],
        n_informative=p["n_informative"],
        noise=p["noise"],
        random_state=seed,
    )


def _bundled(loader: str) -> Callable[[dict[str, Any], int], tuple[np.ndarray, np.ndarray]]:
    def load(p: dict[str, Any], seed: int) -> tuple[np.ndarray, np.ndarray]:
        import sklearn.datasets

        return getattr(sklearn.datasets, loader)(return_X_y=True)  # files inside scikit-learn: no download

    return load


_CLASSIFICATION = {"n_samples": 5000, "n_features": 20, "n_informative": 10, "n_classes": 3, "class_sep": 1.0}
BUILTIN_TASKS: dict[str, BuiltinTask] = {
    task.name: task
    for task in (
        BuiltinTask("classification", "classification", "make_classification: 3 classes, 20 features (default)",
                    _CLASSIFICATION, _classification),
        BuiltinTask("many-class", "classification", "make_classification: 20 classes, 40 features, close together",
                    {**_CLASSIFICATION, "n_features": 40, "n_informative": 20, "n_classes": 20, "class_sep": 0.8},
                    _classification),
        BuiltinTask("moons", "classification", "make_moons: two interleaved half circles, 2 features, noisy",
                    {"n_samples": 2000, "noise": 0.3}, _moons),
        BuiltinTask("circles", "classification", "make_circles: a ring around a disc, 2 features, noisy",
                    {"n_samples": 2000, "noise": 0.15}, _circles),
        BuiltinTask("regression", "regression", "make_regression: 20 features, MSE loss, R² reported",
                    {"n_samples": 5000, "n_features": 20, "n_informative": 10, "noise": 10.0}, _regression),
        BuiltinTask("digits", "classification", "scikit-learn's 8x8 digits: 1797 images, 10 classes",
                    {}, _bundled("load_digits")),
        BuiltinTask("wine", "classification", "scikit-learn's wine: 178 samples, 13 features, 3 classes",
                    {}, _bundled("load_wine")),
        BuiltinTask("breast_cancer", "classification", "scikit-learn's breast cancer: 569 samples, 30 features",
                    {}, _bundled("load_breast_cancer")),
    )
}  # fmt: skip


def is_user_task(name: str) -> bool:
    return ":" in name


DEFAULT_TASK = "classification"
DEFAULT_STUDY = "default"


def default_study_name(task: str) -> str:
    """The study a search goes to when nothing names one: `default` for the default task, a built-in
    task's own name (`digits`), and for `module:function` or `path/to/file.py:function` a plain name made
    of the module's last part and the function (`my_task.build`), so each task starts its own study."""
    if task == DEFAULT_TASK:
        return DEFAULT_STUDY
    if not is_user_task(task):
        return task
    module, _, function = task.rpartition(":")
    if module.endswith(".py") or "/" in module:
        module = Path(module).stem
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{module}.{function}").lstrip(".")
    return name[:100] or DEFAULT_STUDY


def check_task_name(name: str) -> None:
    if name not in BUILTIN_TASKS and not is_user_task(name):
        raise ValueError(
            f"unknown task {name!r}; choose from {', '.join(BUILTIN_TASKS)}, or name your own as module:function"
        )


def require_named(task: str, named: str | None, source: str) -> None:
    """A user's task is code, and lrsearch imports and runs it: only when the command names it (`--task`),
    never because a config file, an exported YAML or a shared study says so.

    Args:
        task: the task the config, spec or study asks for.
        named: what this command's `--task` says (None: nothing).
        source: where `task` comes from, for the message.

    Raises:
        ConfigError: a user's task that the command does not name.
    """
    if named is not None and named != task:
        raise ConfigError(f"--task: {source} trains task {task!r}, not {named!r}")
    if is_user_task(task) and named is None:
        raise ConfigError(
            f"data.task: {source} names your own task {task!r}, which is code that lrsearch would import and "
            f"run; if you trust it, name it on the command: --task {task}"
        )


@functools.cache  # once a process: the command checks the task, then its in-process worker trains on it
class ExitIsAnError:
    """A user's callable (task function, model factory, loss) whose `sys.exit()` is an error naming the
    task, one line, not the end of lrsearch with the user's exit code and no word; what else it raises
    is said in one line too."""

    def __init__(self, function: Callable[..., Any], where: str) -> None:
        self.function, self.where = function, where

    def __call__(self, *args: Any) -> Any:
        try:
            return self.function(*args)
        except SystemExit as error:
            raise ConfigError(f"{self.where} called sys.exit({error.code!r})") from None


def load_user_task(name: str) -> Task:
    """Import `module:function` (or `path/to/file.py:function`) and call it, once per process.

    Raises:
        ConfigError: the module or function is missing, or it returned something other than a `Task`.
    """
    module_name, _, function_name = name.rpartition(":")
    where = f"--task {name}"
    try:
        module = _import(module_name)
    except ImportError as error:
        raise ConfigError(f"{where}: cannot import {module_name!r}: {error}") from None
    except Exception as error:  # noqa: BLE001 - the user's module raised while it was imported
        raise ConfigError(f"{where}: importing {module_name!r} raised {type(error).__name__}: {error}") from None
    except SystemExit as error:  # the user's code must not end lrsearch silently, with its own exit code
        raise ConfigError(f"{where}: importing {module_name!r} called sys.exit({error.code!r})") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(f"{where}: {module_name!r} has no function {function_name!r}")
    try:
        task = ExitIsAnError(function, f"{where}: {function_name}()")()
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001 - the user's code; say what it raised, in one line
        raise ConfigError(f"{where}: {function_name}() raised {type(error).__name__}: {error}") from None
    if not isinstance(task, Task):
        raise ConfigError(
            f"{where}: {function_name}() returned {type(task).__name__}; "
            "expected lrsearch.Task(model=..., train=..., val=..., loss=...)"
        )
    if not callable(task.model) or not callable(task.loss):
        raise ConfigError(f"{where}: Task.model must build a model and Task.loss compute a loss (both callables)")
    check_task_settings(task, where)
    return task


def check_task_settings(task: Task, where: str) -> None:
    """Each of the task's optional fields, one line naming the field and what it takes.

    Raises:
        ConfigError: e.g. `Task.accumulate_batches must be a whole number, 1 or more; got 0`.
    """
    if isinstance(task.score, Score):
        _check_score(task.score, where)
    elif task.score not in (None, "accuracy", "r2"):
        raise ConfigError(
            f"{where}: Task.score must be 'accuracy', 'r2', an lrsearch.Score or None, got {task.score!r}"
        )
    for name in ("train_step", "eval_step"):
        value = getattr(task, name)
        if value is not None and not callable(value):
            raise ConfigError(f"{where}: Task.{name} must be a function of (model, batch) or None, got {value!r}")
    clip = task.clip_grad_norm
    if clip is not None and (isinstance(clip, bool) or not isinstance(clip, int | float) or not 0 < clip < math.inf):
        raise ConfigError(f"{where}: Task.clip_grad_norm must be a positive number or None, got {clip!r}")
    batches = task.accumulate_batches
    if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
        raise ConfigError(f"{where}: Task.accumulate_batches must be a whole number, 1 or more; got {batches!r}")
    if task.autocast is not None and task.autocast not in AUTOCAST_DTYPES:
        allowed = ", ".join(repr(name) for name in AUTOCAST_DTYPES)
        raise ConfigError(f"{where}: Task.autocast must be {allowed} or None, got {task.autocast!r}")


def _check_score(score: Score, where: str) -> None:
    if not isinstance(score.name, str) or not SCORE_NAME.fullmatch(score.name) or score.name == "loss":
        raise ConfigError(
            f"{where}: Task.score.name must be a letter, then up to 39 letters, digits or _ (not 'loss'), "
            f"got {score.name!r}"
        )
    if not callable(score.fn):
        raise ConfigError(f"{where}: Task.score.fn must be a function of (output, target), got {score.fn!r}")
    if score.direction not in DIRECTIONS:
        raise ConfigError(f"{where}: Task.score.direction must be 'maximize' or 'minimize', got {score.direction!r}")


def _import(module_name: str) -> Any:
    if module_name.endswith(".py") or "/" in module_name:
        path = Path(module_name)
        if not path.is_file():
            raise ImportError(f"no file {path}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # `lrsearch` runs from its own bin folder: find the user's modules
    return importlib.import_module(module_name)
