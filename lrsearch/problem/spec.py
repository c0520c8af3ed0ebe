"""RunSpec: everything one training run needs, as plain data, and its YAML round trip.

The search samples RunSpecs, training consumes them, and the exported best-config YAML is one, so
`lrsearch train --config best.yaml` replays the winner with the very code the search used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lrsearch.base.errors import ConfigError
from lrsearch.base.paths import check_replaceable
from lrsearch.problem.schedules import SCHEDULES
from lrsearch.problem.tasks import BUILTIN_TASKS, DEFAULT_TASK, check_task_name, is_user_task

OptimizerName = Literal["sgd", "adam", "adamw"]
# Bounds past which a value is a typo, not a plan: it would hang building the run or exhaust memory in
# every trial, instead of failing here in one line.
MAX_EPOCHS = 1_000_000
MAX_ROWS = 10_000_000
MAX_WIDTH = 100_000
# numpy's random_state takes seeds below 2**32, and workers sample with seed + i: this leaves room.
MAX_SEED = 2**31 - 1
# The block of an exported run that says how it was certified: for the reader; loading skips it.
CERTIFICATE_KEY = "certificate"


class StrictModel(BaseModel):
    """Immutable, and unknown fields are errors (a typo in a YAML file must not pass silently)."""

    # inf passes every lower bound and nan every hand-written `if x < low`: neither is a usable setting.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DataSpec(StrictModel):
    """The task (`lrsearch tasks`, or `module:function` for your own) and, for a built-in one, its
    settings; a setting left out takes the task's default. Built-in data is split train/val/test
    (stratified for classes) and standardized with statistics of the train split."""

    task: str = DEFAULT_TASK
    n_samples: int | None = Field(None, ge=30, le=MAX_ROWS)  # total rows before the split
    n_features: int | None = Field(None, ge=2, le=MAX_WIDTH)
    n_informative: int | None = Field(None, ge=1)  # features that carry the signal
    n_classes: int | None = Field(None, ge=2)
    class_sep: float | None = Field(None, gt=0)  # larger is easier
    noise: float | None = Field(None, ge=0)  # moons, circles: std of the jitter; regression: of the target
    val_fraction: float = Field(0.2, gt=0, lt=0.5)
    test_fraction: float = Field(0.2, gt=0, lt=0.5)

    @field_validator("task")
    @classmethod
    def _known_task(cls, name: str) -> str:
        check_task_name(name)
        return name

    @model_validator(mode="after")
    def _fits_the_task(self) -> DataSpec:
        given = {name for name in _TASK_SETTINGS if getattr(self, name) is not None}
        builtin = BUILTIN_TASKS.get(self.task)
        used = set(builtin.defaults) if builtin else set()
        if given - used:
            allowed = ", ".join(sorted(used)) or "none (only val_fraction and test_fraction, for built-in tasks)"
            raise ValueError(
                f"{', '.join(sorted(given - used))}: not a setting of task {self.task!r}; it takes {allowed}"
            )
        settings = self.settings()
        if {"n_informative", "n_features"} <= set(settings) and settings["n_informative"] > settings["n_features"]:
            raise ValueError(
                f"n_informative ({settings['n_informative']}) must be at most n_features ({settings['n_features']})"
            )
        # make_classification puts two clusters per class on the corners of an n_informative cube.
        if "n_classes" in settings and 2 * settings["n_classes"] > 2 ** settings["n_informative"]:
            needed = (2 * settings["n_classes"] - 1).bit_length()
            raise ValueError(f"n_classes={settings['n_classes']} needs n_informative >= {needed}")
        return self

    def settings(self) -> dict[str, Any]:
        """The built-in task's settings, defaults filled in (empty for a user's task)."""
        builtin = BUILTIN_TASKS.get(self.task)
        if builtin is None:
            return {}
        return {
            name: default if getattr(self, name) is None else getattr(self, name)
            for name, default in builtin.defaults.items()
        }


_TASK_SETTINGS = ("n_samples", "n_features", "n_informative", "n_classes", "class_sep", "noise")


class ModelSpec(StrictModel):
    """The MLP: input -> hidden -> hidden -> classes, ReLU."""

    hidden: int = Field(64, ge=1, le=MAX_WIDTH)


class OptimizerSpec(StrictModel):
    name: OptimizerName = "sgd"
    momentum: float = Field(0.9, ge=0, lt=1)  # SGD momentum; Adam/AdamW use it as beta1
    weight_decay: float = Field(0.0, ge=0)
    nesterov: bool = False  # SGD only, needs momentum > 0

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> OptimizerSpec:
        if self.nesterov and (self.name != "sgd" or self.momentum == 0):
            raise ValueError("nesterov needs the sgd optimizer with momentum > 0")
        return self


class ScheduleSpec(StrictModel):
    name: str = "none"  # a key of the schedule registry (`lrsearch schedulers`)
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in SCHEDULES:
            raise ValueError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULES)}")
        return name


class RunSpec(StrictModel):
    """One training run. Two equal RunSpecs on the same device give the same History."""

    data: DataSpec = Field(default_factory=DataSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    lr: float = Field(0.1, gt=0)  # base learning rate (the peak for OneCycleLR and CyclicLR)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    epochs: int = Field(20, ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(32, ge=1)
    seed: int = Field(0, ge=0, le=MAX_SEED)  # data split, initial weights and minibatch order

    def problem(self) -> dict[str, Any]:
        """The settings that make runs comparable, shaped as `SearchConfig.problem()` stores them in a study."""
        return problem_settings(self.data, self.model, epochs=self.epochs, batch_size=self.batch_size, seed=self.seed)

    def stretched(self, epochs: int) -> RunSpec:
        """This run at `epochs` epochs, its schedule keeping its shape: what is counted in epochs (a step
        size, a warmup, a cycle) scales with the run (`Schedule.stretch`); OneCycleLR already spans it."""
        if epochs == self.epochs:
            return self
        params = SCHEDULES[self.schedule.name].stretch(self.schedule.params, epochs / self.epochs)
        schedule = self.schedule.model_copy(update={"params": params})
        return self.model_copy(update={"epochs": epochs, "schedule": schedule})

    def to_yaml(self) -> str:
        """The run as YAML. A task setting left to the task's default (None) is left out, as a user writes
        it: `null` reads to a person as a value missing. It loads back as None, the same run."""
        run = self.model_dump(mode="json")
        run["data"] = {
            name: value for name, value in run["data"].items() if not (name in _TASK_SETTINGS and value is None)
        }
        return yaml.safe_dump(run, sort_keys=False)

    def save(self, path: Path, comment: str = "", certificate: dict[str, Any] | None = None) -> None:
        """Write the YAML, after `comment` lines (e.g. where the run came from) and before a
        `certificate` block (how it compared over fresh seeds); loading ignores both."""
        header = "".join(f"# {line}\n" for line in comment.splitlines())
        footer = (
            ""
            if certificate is None
            else yaml.safe_dump({CERTIFICATE_KEY: certificate}, sort_keys=False, allow_unicode=True)
        )
        check_replaceable(path, "export")  # the Python API's export comes here unchecked
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written beside, then moved over: a full disk mid-write must not leave half of a good file.
        partial = path.with_name(f".{path.name}.partial")
        try:
            partial.write_text(header + self.to_yaml() + footer)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)

    @property
    def replay_options(self) -> str:
        """The options `lrsearch train` needs beyond `--config` to replay this run: a task of the
        user's own is code, run only when the command names it."""
        return f" --task {self.data.task}" if is_user_task(self.data.task) else ""


def problem_settings(data: DataSpec, model: ModelSpec, *, epochs: int, batch_size: int, seed: int) -> dict[str, Any]:
    """What a study keeps of its problem: the data, the model, the run length and batch size, the seed."""
    return {
        "data": data.model_dump(mode="json"),
        "model": model.model_dump(mode="json"),
        "train": {"epochs": epochs, "batch_size": batch_size},
        "seed": seed,
    }


# What tells the two YAML files a user hands lrsearch apart, so that one given for the other is named for what
# it is: a search config's sections, and the fields of a run (`lrsearch export`'s) that a search config lacks.
SEARCH_SECTIONS = frozenset({"train", "search", "study"})


def looks_like_search_config(fields: Mapping[str, Any]) -> bool:
    """A search config's sections, and neither of a run's lr and schedule."""
    return bool(SEARCH_SECTIONS & fields.keys()) and not {"lr", "schedule"} & fields.keys()


def looks_like_run(fields: Mapping[str, Any]) -> bool:
    """A run's own fields (lr, schedule, optimizer), and none of a search config's sections."""
    return bool({"lr", "schedule", "optimizer"} & fields.keys()) and not SEARCH_SECTIONS & fields.keys()


def load_yaml_mapping(path: Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; every way this can fail is a `ConfigError`."""
    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: not a text file (UTF-8): byte {error.start} is {error.object[error.start]:#04x}"
        ) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(error, 'problem', error)}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of fields, got {type(loaded).__name__}")
    return loaded
