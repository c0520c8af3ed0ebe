"""A certificate: the search's best schedules and the tuned controls, each trained again at fresh seeds,
and what that says about the answer, in numbers and in one plain sentence.

It is stored in the study (`CERTIFICATE_ATTR`), so any machine's `lrsearch certify`, `report`, `export`
and the dashboard read it back. Whoever can write to the storage can write it: readers go through
`stored_certificate`, and what does not fit is unreadable, not a crash. Lists are bounded well above
what `lrsearch certify` writes (at most 20 searched candidates, 10 seeds, 9 LRs per control), so no view
draws a million rows; strings are not, and views clip them (`base.text.clipped`).

The rule that fills it is `certification.verdict.judge`.
"""

from __future__ import annotations

from typing import Any, Literal

import optuna
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lrsearch.base.stats import Interval, mean_interval
from lrsearch.problem.spec import RunSpec

CERTIFICATE_ATTR = "lrsearch_certificate"

MAX_ROWS = 100  # candidates, controls, seeds, LRs tried: a stored list longer than this is unreadable
Verdict = Literal["beats", "within noise", "control beats", "no searched candidate"]


class Candidate(BaseModel):
    """One schedule certified: its run and its figures at each fresh seed (None where it diverged)."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    label: str  # e.g. "#12 PolynomialLR, lr 0.08" or "linear decay to zero, lr 0.05"
    kind: Literal["searched", "control"]
    trial: int | None = None  # the study's trial it came from (searched candidates)
    spec: dict[str, Any]  # its RunSpec as JSON (the study's seed; trained at the certificate's seeds)
    val_loss: list[float] | None = Field(None, min_length=1, max_length=MAX_ROWS)
    test_loss: list[float] | None = Field(None, min_length=1, max_length=MAX_ROWS)
    test_score: list[float] | None = Field(None, min_length=1, max_length=MAX_ROWS)
    diverged: str | None = None  # why a seed's run did not finish; the figures are None then

    @field_validator("spec")
    @classmethod
    def _a_run(cls, spec: dict[str, Any]) -> dict[str, Any]:
        RunSpec.model_validate(spec)  # stored data: a run that does not parse makes the record unreadable
        return spec

    @property
    def val(self) -> Interval | None:
        return None if self.val_loss is None else mean_interval(self.val_loss)

    @property
    def test(self) -> Interval | None:
        return None if self.test_loss is None else mean_interval(self.test_loss)

    @property
    def score(self) -> Interval | None:
        return None if not self.test_score else mean_interval(self.test_score)

    @property
    def shown_losses(self) -> list[float] | None:
        """What the figures show: test losses, or val losses for a task without a test split."""
        return self.val_loss if self.test_loss is None else self.test_loss

    @property
    def run(self) -> RunSpec:
        return RunSpec.model_validate(self.spec)


class TunedControl(BaseModel):
    """How a control's base LR was chosen: its mean val loss at each LR tried (None: diverged)."""

    model_config = ConfigDict(frozen=True)

    name: str
    lrs: list[float] = Field(max_length=MAX_ROWS)
    val_losses: list[float | None] = Field(max_length=MAX_ROWS)
    chosen: float | None  # None: it diverged at every LR


class Certificate(BaseModel):
    model_config = ConfigDict(frozen=True)

    seeds: list[int] = Field(max_length=MAX_ROWS)  # the fresh seeds every candidate trained at
    epochs: int  # the length certified at (the search's, or `certify --epochs`)
    search_epochs: int
    device: str
    when: str  # e.g. "2026-01-31 12:00 UTC"
    seconds: float  # what certification took
    score: str | None = None  # what test_score is: "accuracy", "r2" or None
    controls: list[TunedControl] = Field(max_length=MAX_ROWS)
    answer_trial: int  # the study's best trial when certified: a later, better trial makes this stale
    candidates: list[Candidate] = Field(max_length=MAX_ROWS)
    winner: str | None  # label of the best searched candidate (on mean val loss)
    best_control: str | None
    recommended: str | None
    verdict: Verdict
    sentence: str
    val_difference: Interval | None = None  # best control minus winner, paired by seed (> 0: winner better)
    test_difference: Interval | None = None

    @property
    def shown_loss(self) -> str:
        """What the figures show: `test loss`, or `val loss` for a task without a test split."""
        return "test loss" if any(c.test_loss is not None for c in self.candidates) else "val loss"

    @property
    def ranked(self) -> list[Candidate]:
        """The candidates, lowest mean val loss first; those that did not train to the end last."""
        return sorted(self.candidates, key=lambda c: c.val.mean if c.val is not None else float("inf"))

    def candidate(self, label: str | None) -> Candidate | None:
        return next((c for c in self.candidates if c.label == label), None)

    @property
    def recommended_candidate(self) -> Candidate | None:
        return self.candidate(self.recommended)

    def summary(self) -> dict[str, Any]:
        """The block an exported run carries: what was recommended, why, and each candidate's figures."""
        rows: dict[str, Any] = {}
        for c in self.candidates:
            figures = {"val_loss": c.val, "test_loss": c.test, f"test_{self.score or 'score'}": c.score}
            rows[c.label] = (
                {"diverged": c.diverged}
                if c.diverged is not None
                else {name: _figure(value) for name, value in figures.items() if value is not None}
            )
        return {
            "sentence": self.sentence,
            "recommended": self.recommended,
            "seeds": self.seeds,
            "epochs": self.epochs,
            "when": self.when,
            "candidates": rows,
        }


def _figure(interval: Interval) -> dict[str, Any]:
    """A mean and its 95% interval, as the exported YAML shows them."""
    rounded = [None if end is None else round(end, 6) for end in (interval.low, interval.high)]
    return {"mean": round(interval.mean, 6), "ci95": rounded}


def stored_certificate(study: optuna.Study) -> Certificate | str | None:
    """The study's certificate; None when it has none; a line saying why when it is unreadable."""
    raw = study.user_attrs.get(CERTIFICATE_ATTR)
    if raw is None:
        return None
    try:
        return Certificate.model_validate(raw)
    except (ValidationError, ValueError) as error:
        first = error.errors()[0] if isinstance(error, ValidationError) else {"loc": (), "msg": str(error)}
        where = ".".join(str(part) for part in first["loc"]) or "the record"
        return f"the study's certificate is unreadable ({where}: {first['msg']})"
