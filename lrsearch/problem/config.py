"""The search configuration: a YAML file (default `studies/default.yaml`) plus command-line overrides.

Every field is validated here, before anything touches a study, and a bad one is a `ConfigError` that
names the field (or the flag that set it) and what is allowed.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator, model_validator

from lrsearch.base.device import DEVICES
from lrsearch.base.errors import ConfigError, error_field, from_validation_error, has_unknown_field
from lrsearch.base.paths import PLAIN_NAME, is_plain_name
from lrsearch.base.storage_url import parse_storage_url
from lrsearch.problem.schedules import SCHEDULES, Budget, searched_ranges
from lrsearch.problem.spec import (
    MAX_EPOCHS,
    MAX_SEED,
    DataSpec,
    ModelSpec,
    OptimizerName,
    StrictModel,
    load_yaml_mapping,
    looks_like_run,
    problem_settings,
)
from lrsearch.problem.tasks import DEFAULT_STUDY, DEFAULT_TASK, default_study_name

DEFAULT_CONFIG = Path("studies/default.yaml")
DEFAULT_STORAGE = "sqlite:///studies/lrsearch.db"
MAX_SEEDS = 10  # seeds a trial trains at, at most: each costs a whole run
MAX_CONTROL_TRIALS = 20  # trials per control schedule, at most
# Searched trials certification races beside the controls: the best one. Measured (benchmarks/quality.py
# sweep and length, 21 certificates), the 2nd or 3rd best trial was recommended once, 0.0006 test loss
# better than the control recommended without it, while each cost 3 race runs, and at another length an
# LR sweep of its own besides.
CERTIFY_TOP = 1

SamplerName = Literal["tpe", "random", "gp", "qmc"]
PrunerName = Literal["quartile", "median", "successive-halving", "hyperband", "patient", "wilcoxon", "none"]

# Command-line flags and the config fields they override; errors in them are reported under the flag.
FLAGS: dict[str, str] = {
    "study.trials": "--trials",
    "study.timeout": "--timeout",
    "study.name": "--study-name",
    "study.storage": "--storage",
    "study.seed": "--seed",
    "study.devices": "--devices",
    "study.jobs": "--jobs",
    "study.stack": "--stack",
    "study.sampler": "--sampler",
    "study.pruner": "--pruner",
    "study.export": "--export",
    "train.epochs": "--epochs",
    "data.task": "--task",
    "search.seeds_per_trial": "--seeds-per-trial",
    "study.certify": "--certify",
    "study.certify_epochs": "--certify-epochs",
    "study.judge": "--judge",
}


class Range(StrictModel):
    """A searched interval."""

    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}")
        return self


class TrainSettings(StrictModel):
    epochs: int = Field(20, ge=1, le=MAX_EPOCHS)  # every trial's length; schedule ranges are expressed against it
    batch_size: int = Field(32, ge=1)


class SearchSpace(StrictModel):
    """What the trials may choose; narrow it here, or fix single parameters with `fixed`."""

    schedules: list[str] = Field(default_factory=lambda: list(SCHEDULES), min_length=1)
    lr: Range = Range(low=1e-4, high=1.0, log=True)  # the base LR, always searched on a log scale
    optimizers: list[OptimizerName] = Field(default_factory=lambda: ["sgd"], min_length=1)
    momentum: float | Range = 0.9  # a value keeps it fixed; a range searches it
    weight_decay: float | Range = 0.0
    # Trial parameter -> value, e.g. {"lr": 0.05, "StepLR.gamma": 0.5} (names: `lrsearch schedulers`).
    fixed: dict[str, Any] = Field(default_factory=dict)
    # Seeds each trial trains at (in one stack); its val loss each epoch is their mean. 1 by measurement:
    # benchmarks/quality.py found 2 and 3 no better in the same time (see the README). `seeds` is its old
    # name, still read (a count, easily mistaken for the study's `seed`).
    seeds_per_trial: int = Field(1, ge=1, le=MAX_SEEDS)
    # Trials of the search given to each control schedule (`problem.controls`: constant, linear decay to zero,
    # ...), at most: their shape pinned and their LR walked (`trials.control_trials`), so that
    # certification starts from controls tuned at the search's length; 0 leaves it to certification alone.
    control_trials: int = Field(4, ge=0, le=MAX_CONTROL_TRIALS)

    @model_validator(mode="before")
    @classmethod
    def _old_name(cls, values: Any) -> Any:
        if isinstance(values, dict) and "seeds" in values:
            values = dict(values)
            old = values.pop("seeds")
            values.setdefault("seeds_per_trial", old)
        return values

    @field_validator("schedules")
    @classmethod
    def _known_schedules(cls, names: list[str]) -> list[str]:
        for name in names:
            if name not in SCHEDULES:
                raise ValueError(f"unknown schedule {name!r}; choose from {', '.join(SCHEDULES)}")
        return list(dict.fromkeys(names))

    @field_validator("lr")
    @classmethod
    def _positive_lr(cls, lr: Range) -> Range:
        if lr.low <= 0:
            raise ValueError(f"the LR range must be positive, got low={lr.low}")
        return lr.model_copy(update={"log": True})

    @field_validator("momentum")
    @classmethod
    def _momentum_below_one(cls, momentum: float | Range) -> float | Range:
        low, high = (momentum, momentum) if isinstance(momentum, float) else (momentum.low, momentum.high)
        if low < 0 or high >= 1:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        return momentum

    @field_validator("weight_decay")
    @classmethod
    def _weight_decay_not_negative(cls, weight_decay: float | Range) -> float | Range:
        low = weight_decay.low if isinstance(weight_decay, Range) else weight_decay
        if low < 0:
            raise ValueError(f"weight_decay must be at least 0, got {weight_decay}")
        return weight_decay

    @model_validator(mode="after")
    def _known_fixed(self) -> SearchSpace:
        allowed = searchable_parameters(self.schedules)
        for name in self.fixed:
            if name not in allowed:
                raise ValueError(f"fixed: {name!r} is not a searched parameter; choose from {', '.join(allowed)}")
        return self


class StudySettings(StrictModel):
    # The same name resumes the stored study; left out, SearchConfig names it after the task (default_study_name).
    name: str = Field(DEFAULT_STUDY, min_length=1)
    storage: str = DEFAULT_STORAGE  # an Optuna storage URL
    trials: int | None = Field(50, ge=1)  # trials this run adds to the study (None: until the timeout)
    timeout: float | None = Field(None, gt=0)  # seconds; stops starting new trials after it
    sampler: SamplerName = "tpe"
    pruner: PrunerName = "quartile"
    seed: int = Field(0, ge=0, le=MAX_SEED)  # seeds the sampler, the data and every run (worker i: seed + i)
    # auto, or a comma-separated list of cpu, cuda, cuda:N (workers take turns); `device` is its old name
    devices: str = Field("auto", validation_alias=AliasChoices("devices", "device"))
    jobs: int = Field(1, ge=1)  # worker processes on this machine
    stack: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"  # trials a worker trains at once; 1: one at a time
    heartbeat: int = Field(10, ge=1)  # seconds; a trial silent for 3 heartbeats is failed and retried
    export: Path | None = None  # where the best RunSpec goes; default studies/<name>-best.yaml
    figures: bool = True  # attach LR and loss pictures to trials and the study, for the dashboard
    artifacts: Path | None = None  # where trial pictures go; default: artifacts/ beside the study file
    certify: bool = True  # after the search, train its best trial and tuned controls at fresh seeds
    certify_seeds: int = Field(10, ge=2, le=100)  # the most fresh seeds a candidate races at
    certify_top: int = Field(CERTIFY_TOP, ge=1, le=20)  # the best distinct searched trials raced
    # Certify at the length you train for (every candidate's LR chosen at it); None: the length the study
    # was last certified at (`store.certificate.kept_length`), else the search's.
    certify_epochs: int | None = Field(None, ge=1, le=MAX_EPOCHS)
    # Each run judged at its last epoch (as the exported run trains) or its best val epoch (early stopping).
    judge: Literal["last", "best"] = "last"

    @field_validator("devices")
    @classmethod
    def _devices_form(cls, devices: str) -> str:
        if not DEVICES.fullmatch(devices.replace(" ", "")):
            raise ValueError(f"devices must be auto or a list like cpu or cuda:0,cuda:1, got {devices!r}")
        return devices.replace(" ", "")

    @property
    def export_path(self) -> Path:
        """Where the best RunSpec goes; the study name becomes a file name only when it is a plain one.

        Raises:
            ConfigError: no `export` is set and the name would lead out of `studies/` (`../x`, `a/b`).
        """
        if self.export is not None:
            return self.export
        if not is_plain_name(self.name):
            raise ConfigError(
                f"--study-name: {self.name!r} would name the export file studies/{self.name}-best.yaml; "
                f"use {PLAIN_NAME}, or give --export PATH"
            )
        return Path("studies") / f"{self.name}-best.yaml"


class SearchConfig(StrictModel):
    """Everything `lrsearch optimize` needs; the YAML file has these five sections."""

    data: DataSpec = Field(default_factory=DataSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    train: TrainSettings = Field(default_factory=TrainSettings)
    search: SearchSpace = Field(default_factory=SearchSpace)
    study: StudySettings = Field(default_factory=StudySettings)

    @model_validator(mode="before")
    @classmethod
    def _study_named_after_the_task(cls, raw: Any) -> Any:
        """No study name given: each task gets its own study (`default`, `digits`, `my_task.build`), so a
        search of another task does not run into the default study's problem."""
        if not isinstance(raw, dict):
            return raw
        study, data = raw.get("study", {}), raw.get("data", {})
        if not isinstance(study, dict) or study.get("name") is not None:
            return raw
        task = data.get("task", DEFAULT_TASK) if isinstance(data, dict) else DEFAULT_TASK
        if not isinstance(task, str):
            return raw  # the data section's own validation says what is wrong with it
        return raw | {"study": study | {"name": default_study_name(task)}}

    def problem(self) -> dict[str, Any]:
        """The settings that make trials comparable: a study keeps the ones it was created with."""
        train = self.train
        return problem_settings(
            self.data, self.model, epochs=train.epochs, batch_size=train.batch_size, seed=self.study.seed
        )


def searchable_parameters(schedules: list[str]) -> list[str]:
    """Names of the trial parameters the space may hold (what `fixed` accepts)."""
    names = ["lr", "optimizer", "momentum", "weight_decay", "schedule"]
    for name in schedules:
        names += [f"{name}.{p.name}" for p in searched_ranges(SCHEDULES[name], Budget(20, 1))]
    return names


def load_config(path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> SearchConfig:
    """Read the YAML config (the default one when `path` is None) and apply flag overrides.

    Args:
        path: a config file; None reads `studies/default.yaml` when it exists, else uses the defaults.
        overrides: dotted field -> value (keys of `FLAGS`), None values ignored.
    """
    if path is None:
        raw = load_yaml_mapping(DEFAULT_CONFIG) if DEFAULT_CONFIG.exists() else {}
        source = str(DEFAULT_CONFIG)
    else:
        raw, source = load_yaml_mapping(path), str(path)
        if looks_like_run(raw):
            raise ConfigError(
                f"{source}: this is an exported run, not a search config: `lrsearch train --config {source}` "
                "replays it; `--config` of a search takes sections data, model, train, search, study"
            )
    config = with_overrides(raw, overrides or {}, source)
    require_an_end(config, source)
    return config


def require_an_end(config: SearchConfig, source: str) -> None:
    if config.study.trials is None and config.study.timeout is None:
        raise ConfigError(f"{source}: study.trials: set trials or timeout, or the search never ends")


def require_shared_storage(config: SearchConfig) -> None:
    if config.study.jobs > 1 and parse_storage_url(config.study.storage).kind == "memory":
        raise ConfigError(
            "--jobs: worker processes need a storage they share (an SQLite or journal file, or PostgreSQL), "
            "not sqlite:///:memory:"
        )


def overrides_from(options: Mapping[str, Any]) -> dict[str, Any]:
    """Options named as the command line's (`trials`, `study_name`, ...) -> the config fields they set.

    Raises:
        ConfigError: an option that `lrsearch optimize` does not have.
    """
    by_name = {flag.removeprefix("--").replace("-", "_"): key for key, flag in FLAGS.items()}
    if "seeds" in options:  # the old name of seeds_per_trial
        warnings.warn("seeds= is now seeds_per_trial= (a count of seeds a trial trains at)", DeprecationWarning, 3)
        options = {("seeds_per_trial" if name == "seeds" else name): value for name, value in options.items()}
    unknown = sorted(set(options) - set(by_name))
    if unknown:
        raise ConfigError(f"{unknown[0]}: not a search setting; choose from {', '.join(sorted(by_name))}")
    return {by_name[name]: value for name, value in options.items()}


def with_overrides(raw: dict[str, Any], overrides: Mapping[str, Any], source: str) -> SearchConfig:
    """Validate config values (`raw`, read from `source`) with flag overrides applied.

    Args:
        overrides: dotted field -> value (keys of `FLAGS`), None values ignored.

    Raises:
        ConfigError: naming the flag when an override is bad, else the source and its field.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    for key, value in given.items():
        section, field = key.split(".")
        values = raw.setdefault(section, {})
        if isinstance(values, dict):  # otherwise validation reports the file's bad section
            values[field] = value
    try:
        return SearchConfig.model_validate(raw)
    except ValidationError as error:
        field = error_field(error)
        # A flag sets a known field: an unknown one (named first) is the file's.
        flags = {} if has_unknown_field(error) else given
        flag = next((FLAGS[key] for key in flags if field == key or field.startswith(key + ".")), None)
        if flag is None:
            raise from_validation_error(error, source, model=SearchConfig) from None
        raise from_validation_error(error, flag, name_field=False) from None
