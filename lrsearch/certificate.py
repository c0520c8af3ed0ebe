"""A certificate: the search's best schedules and the tuned controls, each trained again at fresh seeds,
and what that says about the answer, in numbers and in one plain sentence.

It is stored in the study (`CERTIFICATE_ATTR`), so any machine's `lrsearch certify`, `report`, `export`
and the dashboard read it back. Whoever can write to the storage can write it: readers go through
`stored_certificate`, and what does not fit is unreadable, not a crash.

What is recommended:
- the winner is the searched candidate with the lowest mean val loss over the fresh seeds (test loss never
  chooses anything), and the best control the control with the lowest;
- the winner is recommended only when it beats the best control on validation loss, paired by seed, with
  a 95% interval that excludes zero. When the difference is within noise the best control is recommended:
  a well-known schedule at a tuned LR is as good, simpler to explain, and found without a search;
- the sentence reports the paired difference on test loss, the figure on data nobody chose anything by
  (val loss, for a task of one's own without a test split).
"""

from __future__ import annotations

from typing import Any, Literal

import optuna
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lrsearch.spec import RunSpec
from lrsearch.stats import Interval, mean_interval, paired_difference

CERTIFICATE_ATTR = "lrsearch_certificate"

Verdict = Literal["beats", "within noise", "control beats", "no searched candidate"]


class Candidate(BaseModel):
    """One schedule certified: its run and its figures at each fresh seed (None where it diverged)."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    label: str  # e.g. "#12 PolynomialLR, lr 0.08" or "linear decay to zero, lr 0.05"
    kind: Literal["searched", "control"]
    trial: int | None = None  # the study's trial it came from (searched candidates)
    spec: dict[str, Any]  # its RunSpec as JSON (the study's seed; trained at the certificate's seeds)
    val_loss: list[float] | None = Field(None, min_length=1)
    test_loss: list[float] | None = Field(None, min_length=1)
    test_score: list[float] | None = Field(None, min_length=1)
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
    lrs: list[float]
    val_losses: list[float | None]
    chosen: float | None  # None: it diverged at every LR


class Certificate(BaseModel):
    model_config = ConfigDict(frozen=True)

    seeds: list[int]  # the fresh seeds every candidate trained at
    epochs: int  # the length certified at (the search's, or `certify --epochs`)
    search_epochs: int
    device: str
    when: str  # e.g. "2026-01-31 12:00 UTC"
    seconds: float  # what certification took
    score: str | None = None  # what test_score is: "accuracy", "r2" or None
    controls: list[TunedControl]
    answer_trial: int  # the study's best trial when certified: a later, better trial makes this stale
    candidates: list[Candidate]
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


def judge(candidates: list[Candidate], seeds: int) -> dict[str, Any]:
    """The winner, the best control, what is recommended and the sentence that says why (module docstring).

    Returns:
        Certificate fields: winner, best_control, recommended, verdict, sentence, val_difference,
        test_difference.
    """
    trained = [c for c in candidates if c.val_loss is not None]
    searched = sorted((c for c in trained if c.kind == "searched"), key=lambda c: c.val.mean)
    controls = sorted((c for c in trained if c.kind == "control"), key=lambda c: c.val.mean)
    winner = searched[0] if searched else None
    control = controls[0] if controls else None
    fields: dict[str, Any] = {"winner": winner and winner.label, "best_control": control and control.label}
    seeds_text = f"95%, {seeds} seed{'s' if seeds > 1 else ''}"
    if winner is None or control is None:
        chosen = winner or control
        what = "no searched schedule" if winner is None else "no control"
        return fields | {
            "recommended": chosen and chosen.label,
            "verdict": "no searched candidate" if winner is None else "beats",
            "sentence": f"{what} trained to the end at every fresh seed"
            + ("" if chosen is None else f": {chosen.label} is recommended"),
        }
    val_difference = paired_difference(control.val_loss, winner.val_loss)
    fields["val_difference"] = val_difference
    # The sentence's figure: test loss, on data nobody chose by; val loss for a task without a test split.
    shown, loss = val_difference, "val loss"
    if winner.test_loss is not None and control.test_loss is not None:
        shown, loss = paired_difference(control.test_loss, winner.test_loss), "test loss"
        fields["test_difference"] = shown
    size, direction = _difference(shown), "lower" if shown.mean > 0 else "higher"
    if val_difference.excludes_zero() and val_difference.mean > 0:
        if shown.excludes_zero() and shown.mean > 0:
            sentence = f"{winner.label} beats the best control ({control.label}) by {size} {loss} ({seeds_text})"
        elif shown.excludes_zero():  # val says better, test says worse beyond noise: both are said
            sentence = (
                f"{winner.label} beats the best control ({control.label}) on validation loss, but its {loss} is "
                f"{size} higher ({seeds_text})"
            )
        else:
            sentence = (
                f"{winner.label} beats the best control ({control.label}) on validation loss, but its {loss}, "
                f"{size} {direction} ({seeds_text}), is within noise of the control's"
            )
        return fields | {"recommended": winner.label, "verdict": "beats", "sentence": sentence}
    if val_difference.excludes_zero():
        sentence = (
            f"the best control ({control.label}) beats {winner.label} by {size} {loss} ({seeds_text}): "
            "the control is recommended"
        )
        return fields | {"recommended": control.label, "verdict": "control beats", "sentence": sentence}
    sentence = (
        f"{winner.label} is not distinguishable from the best control ({control.label}): its {loss} is "
        f"{size} {direction} ({seeds_text}); the simpler schedule is recommended"
    )
    return fields | {"recommended": control.label, "verdict": "within noise", "sentence": sentence}


def _difference(interval: Interval) -> str:
    """`0.012 ± 0.006`: the size of a difference and its interval's half width."""
    return f"{abs(interval.mean):.3g}" + ("" if interval.half_width is None else f" ± {interval.half_width:.2g}")


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
