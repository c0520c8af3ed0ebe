"""One trial record: the user attributes every trial stores, written and read back in this one place.

The search writes them (`run_attrs` when a trial starts, `curve_attrs` as it ends, the reasons and the
worker as they happen); the views read a stored trial back with `TrialRecord.of`. Stored attributes are
data anyone who can write to the storage can write, so each is validated on its own: a field that does
not parse is None (and its key listed in `unreadable`), and a trial without a readable RunSpec has no
record at all.

A trial's per-epoch curves have one record, `TrialCurves`: a stored trial's are its record's `curves`
(None unless its LR and loss curves parse and line up), a trial ending now has them from its epochs
(`TrialCurves.of_run`); the views draw from it. An `EpochRecord` is one epoch, as the engines yield it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from optuna.trial import FrozenTrial, TrialState
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from lrsearch.problem.hooks import SCORE_NAME, Direction
from lrsearch.problem.spec import MAX_ROWS, RunSpec

# The user attributes of a trial.
RUN_SPEC = "run_spec"  # the RunSpec it trained, as JSON
DEVICE = "device"  # the device it trained on
WORKER_ATTR = "worker"  # host:pid of the process that ran it
FAIL_REASON = "fail_reason"  # why a FAIL trial failed (Optuna 5 keeps it only in its log)
PRUNED_REASON = "pruned_reason"  # why a PRUNED trial was stopped (by the pruner, or diverged)
DIVERGED = "diverged: "  # how a diverged trial's PRUNED_REASON begins (then what became NaN or infinite, when)
CONTROL_ATTR = "control"  # a control trial: the control whose LR it tunes ("linear decay to zero")
CONTROL_CENTRE_ATTR = "control_centre"  # the LR a control trial's walk started around (`trials.control_trials`)
CURVES = ("lr", "train_loss", "val_loss")  # per epoch; and val_<score>, e.g. val_accuracy, when the task has a score
STEPS_PER_EPOCH = "steps_per_epoch"  # lets a picture replay per-batch schedules step by step
SCORE_LABELS = {"accuracy": "accuracy", "r2": "R²"}  # a task's score -> how it is shown
# A score of the task's own (`lrsearch.Score`): {"name": "f1", "direction": "maximize"}; a built-in one's is
# known (both are maximised), so a trial of a built-in task stores none.
SCORE_ATTR = "score"

_FLOATS = TypeAdapter(list[float])
_STEPS = TypeAdapter(Annotated[int, Field(ge=1, le=MAX_ROWS)] | None)  # steps an epoch: at most a step a row
_TEXT = TypeAdapter(str | None)


class StoredScore(BaseModel):
    """Which score a trial's `val_<name>` curve holds, and which way it is better."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=f"^{SCORE_NAME.pattern}$")
    direction: Direction = "maximize"


_STORED_SCORE = TypeAdapter(StoredScore)


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of one run, as every engine reports it and every view reads it."""

    epoch: int  # 1-based
    lr: float  # the LR at the start of the epoch (per-batch schedules move it within the epoch)
    train_loss: float  # mean over the epoch's batches
    val_loss: float
    val_score: float | None  # the task's score (accuracy, R²), None when it has none
    # The LR of the epoch's `recorded_steps`, evenly spaced, for per-batch schedules (others hold `lr`).
    step_lrs: tuple[float, ...] = ()


def score_key(score: str) -> str:
    """The attribute that holds the per-epoch curve of the task's score `score` ("accuracy" -> "val_accuracy")."""
    return f"val_{score}"


def score_label(score: str | None) -> str | None:
    """How a score is shown: "accuracy", "R²", a score of the user's own by its name; None for none."""
    return None if score is None else SCORE_LABELS.get(score, score)


def run_attrs(spec: RunSpec, device: str) -> dict[str, Any]:
    """What a trial stores as it starts: its RunSpec and its device."""
    return {RUN_SPEC: spec.model_dump(mode="json"), DEVICE: device}


def curve_attrs(
    records: Sequence[EpochRecord], score: str | None, steps_per_epoch: int, *, direction: Direction = "maximize"
) -> dict[str, Any]:
    """What a trial stores as it ends: its per-epoch curves (the score's when the task has one, and which
    score it is when it is the user's own) and the steps of an epoch."""
    attrs: dict[str, Any] = {name: [getattr(record, name) for record in records] for name in CURVES}
    if score is not None:
        attrs[score_key(score)] = [record.val_score for record in records]
        if score not in SCORE_LABELS or direction != "maximize":
            attrs[SCORE_ATTR] = StoredScore(name=score, direction=direction).model_dump()
    return attrs | {STEPS_PER_EPOCH: steps_per_epoch}


def final_score(trial: FrozenTrial, score: str) -> float | None:
    """The trial's last stored value of the score `score`, read alone (not the whole record); None when it
    stores none that parses, or a NaN."""
    try:
        values = _FLOATS.validate_python(trial.user_attrs.get(score_key(score)))
    except ValidationError:
        return None
    return values[-1] if values and not math.isnan(values[-1]) else None


def stores_run(trial: FrozenTrial) -> bool:
    """Whether the trial stored a RunSpec (readable or not): it got as far as being sampled."""
    return RUN_SPEC in trial.user_attrs


def searched_best_first(trials: Sequence[FrozenTrial]) -> Iterator[TrialRecord]:
    """The completed searched trials with a readable run, lowest val loss first: what a certificate
    answers for (the first; `certification.certify.top_distinct` the first few distinct ones). A control
    trial is left out: certification trains it as its control, tuned, beside the answer, so a study
    whose best trial is a control trial still has a current certificate. Parses no more trials than
    the caller takes."""
    complete = sorted((t for t in trials if t.state == TrialState.COMPLETE and stores_run(t)), key=lambda t: t.value)
    for trial in complete:
        record = TrialRecord.of(trial)
        if record is not None and record.control is None:
            yield record


@dataclass(frozen=True)
class TrialCurves:
    """One trial's run and what it recorded, epoch by epoch: the curves as long as each other (and never
    empty), the task's score's too where the trial has one."""

    number: int
    state: TrialState
    value: float | None  # the final val loss of a completed trial
    spec: RunSpec
    lr: list[float]  # the LR at the start of each epoch, as training recorded it
    train_loss: list[float]
    val_loss: list[float]
    steps_per_epoch: int | None
    score: str | None = None  # the task's score whose curve the trial stores ("accuracy", "r2", or the user's own)
    val_score: list[float] | None = None  # that score, per epoch (never empty)
    # The LR of each step of each epoch as training recorded it (per-batch schedules; empty for the
    # others): known for a trial ending now, not stored in the study, where it would be too big.
    recorded_step_lrs: tuple[tuple[float, ...], ...] | None = None

    @classmethod
    def of_run(
        cls,
        number: int,
        spec: RunSpec,
        records: Sequence[EpochRecord],
        state: TrialState,
        steps_per_epoch: int | None,
    ) -> TrialCurves:
        """The curves of a trial that is ending now as `state`, from its epoch records (the score's
        curve left out: its name is the task's)."""
        value = records[-1].val_loss if state == TrialState.COMPLETE and records else None
        return cls(
            number=number,
            state=state,
            value=value,
            spec=spec,
            lr=[r.lr for r in records],
            train_loss=[r.train_loss for r in records],
            val_loss=[r.val_loss for r in records],
            steps_per_epoch=steps_per_epoch,
            recorded_step_lrs=tuple(r.step_lrs for r in records),
        )

    @property
    def epochs(self) -> list[int]:
        return list(range(1, len(self.val_loss) + 1))

    @property
    def best_val_loss(self) -> float:
        return min(self.val_loss)

    @property
    def label(self) -> str:
        return f"#{self.number} {self.spec.schedule.name}"

    @property
    def score_label(self) -> str | None:
        """How the task's score is shown ("accuracy", "R²", the user's own score's name); None for none."""
        return score_label(self.score)


@dataclass(frozen=True)
class TrialRecord:
    """What one stored trial ran and recorded; a field is None where the trial stored nothing readable."""

    number: int
    state: TrialState
    value: float | None  # the final val loss of a completed trial
    spec: RunSpec
    device: str | None
    worker: str | None
    curves: TrialCurves | None  # None: the trial recorded none (failed before training), or none readable
    pruned_reason: str | None
    fail_reason: str | None
    control: str | None = None  # the control it tunes (`problem.controls`), for a control trial
    unreadable: frozenset[str] = frozenset()  # attributes the trial stores that do not parse
    score_direction: Direction = "maximize"  # which way the score is better

    @classmethod
    def of(cls, trial: FrozenTrial) -> TrialRecord | None:
        """The trial's record, or None when it stores no RunSpec or one that does not parse."""
        attrs = trial.user_attrs
        if RUN_SPEC not in attrs:
            return None
        try:
            spec = RunSpec.model_validate(attrs[RUN_SPEC])
        except ValidationError:
            return None
        unreadable: set[str] = set()

        def read(key: str, adapter: TypeAdapter) -> Any:
            try:
                return adapter.validate_python(attrs.get(key))
            except ValidationError:
                unreadable.add(key)
                return None

        def curve(key: str) -> list[float] | None:
            return read(key, _FLOATS) if key in attrs else None

        lr, train_loss, val_loss = curve("lr"), curve("train_loss"), curve("val_loss")
        steps_per_epoch = read(STEPS_PER_EPOCH, _STEPS)
        own = read(SCORE_ATTR, _STORED_SCORE) if SCORE_ATTR in attrs else None
        scores = {name: curve(score_key(name)) for name in ([own.name] if own else SCORE_LABELS)}
        # The first score with a non-empty curve (a trial's task has at most one).
        score, val_score = next(((name, values) for name, values in scores.items() if values), (None, None))
        curves: TrialCurves | None = None
        lined_up = (
            lr is not None and train_loss is not None and val_loss and len(lr) == len(train_loss) == len(val_loss)
        )
        if lined_up and STEPS_PER_EPOCH not in unreadable:
            curves = TrialCurves(
                number=trial.number,
                state=trial.state,
                value=trial.value,
                spec=spec,
                lr=lr,
                train_loss=train_loss,
                val_loss=val_loss,
                steps_per_epoch=steps_per_epoch,
                score=score,
                val_score=val_score,
            )
        return cls(
            number=trial.number,
            state=trial.state,
            value=trial.value,
            spec=spec,
            device=read(DEVICE, _TEXT),
            worker=read(WORKER_ATTR, _TEXT),
            curves=curves,
            pruned_reason=read(PRUNED_REASON, _TEXT),
            fail_reason=read(FAIL_REASON, _TEXT),
            control=read(CONTROL_ATTR, _TEXT) if CONTROL_ATTR in attrs else None,
            unreadable=frozenset(unreadable),
            score_direction=own.direction if own else "maximize",
        )

    @property
    def score(self) -> str | None:
        """The task's score whose curve the trial stores ("accuracy", "r2", or the user's own); None for none."""
        return None if self.curves is None else self.curves.score

    @property
    def score_label(self) -> str | None:
        """How the task's score is shown ("accuracy", "R²", the user's own score's name); None for none."""
        return score_label(self.score)
