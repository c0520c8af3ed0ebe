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
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lrsearch.base.stats import Interval, mean_interval
from lrsearch.problem.spec import MAX_EPOCHS, RunSpec

CERTIFICATE_ATTR = "lrsearch_certificate"

MAX_ROWS = 100  # candidates, controls, seeds, LRs tried: a stored list longer than this is unreadable
Verdict = Literal["beats", "within noise", "control beats", "no searched candidate"]


Judge = Literal["last", "best"]  # a run judged at its last epoch, or at its best val epoch (early stopping)


# How each of the race's stops (`certification.race`) begins its stored reason, and the word for it: the
# one place the stored reasons are read.
RACE_WORDS = (
    ("worse than", "worse"),  # beaten beyond noise by the leader
    ("within noise", "tied"),  # within noise of its own kind's finalist
    ("decided", "decided"),  # a finalist: the certificate's interval excluded zero
    ("in the race", "cap"),  # a finalist: raced to the cap of seeds
    ("settled", "settled"),  # a finalist: stopped for futility
)


class Candidate(BaseModel):
    """One schedule certified: its run and its figures at each fresh seed (None where it diverged), at
    the run's last epoch and at its best val epoch (what a checkpoint or early stopping keeps).

    `val_loss`, `test_loss` and `test_score` are the last epoch's, `best_*` the best val epoch's; `val`,
    `test`, `score` and `shown_losses` are those it is judged by (`judged`), `other_test` the other."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    label: str  # e.g. "#12 PolynomialLR, lr 0.08" or "linear decay to zero, lr 0.05"
    kind: Literal["searched", "control"]
    trial: int | None = None  # the study's trial it came from (searched candidates)
    spec: dict[str, Any]  # its RunSpec as JSON (the study's seed; trained at the certificate's seeds)
    val_loss: list[float] | None = Field(None, min_length=1, max_length=MAX_ROWS)  # at the last epoch, per seed
    test_loss: list[float] | None = Field(None, min_length=1, max_length=MAX_ROWS)
    test_score: list[float] | None = Field(None, min_length=1, max_length=MAX_ROWS)
    best_epoch: list[int] | None = Field(None, min_length=1, max_length=MAX_ROWS)  # of the lowest val loss, per seed
    best_val_loss: list[float] | None = Field(None, min_length=1, max_length=MAX_ROWS)  # at that epoch
    best_test_loss: list[float] | None = Field(None, min_length=1, max_length=MAX_ROWS)
    best_test_score: list[float] | None = Field(None, min_length=1, max_length=MAX_ROWS)
    val_curve: list[float] | None = Field(None, max_length=10_000)  # mean val loss over the seeds, per epoch
    judged: Judge = "last"
    diverged: str | None = None  # why a seed's run did not finish; the figures are None then
    # Why it stopped racing (`certification.race`): worse than the leader after n seeds, or at the cap.
    # It trained at the certificate's first len(val_loss) seeds.
    raced: str | None = None

    @property
    def seeds(self) -> int:
        """How many fresh seeds it trained at (all finished)."""
        return len(self.val_loss or ())

    @property
    def race_word(self) -> str | None:
        """Why it stopped racing, in one word (`RACE_WORDS`); None when the race did not say."""
        why = self.raced or ""
        return next((word for start, word in RACE_WORDS if why.startswith(start)), None)

    @property
    def beaten(self) -> bool:
        """Stopped in the race as worse than the leader: its figures are over fewer seeds than the rest."""
        return self.race_word == "worse"

    @property
    def finalist(self) -> bool:
        """One of the race's two finalists (`certification.race`), which the verdict compares."""
        return self.race_word in ("decided", "cap", "settled")

    @property
    def settled(self) -> bool:
        """A finalist the race stopped for futility: more seeds were unlikely to change the recommendation."""
        return self.race_word == "settled"

    @property
    def rank_key(self) -> tuple[bool, bool, bool, int, float]:
        """How the race ranks it: trained to the end first, then not beaten, then the race's finalists, then
        the most seeds, then the lowest mean judged val loss; a mean over fewer seeds never jumps ahead."""
        val = self.val
        return (val is None, self.beaten, not self.finalist, -self.seeds, val.mean if val is not None else 0.0)

    @field_validator("spec")
    @classmethod
    def _a_run(cls, spec: dict[str, Any]) -> dict[str, Any]:
        RunSpec.model_validate(spec)  # stored data: a run that does not parse makes the record unreadable
        return spec

    def _judged(self, figure: str) -> list[float] | None:
        if self.judged == "best" and self.best_val_loss is not None:
            return getattr(self, f"best_{figure}")
        return getattr(self, figure)

    @property
    def judged_val_loss(self) -> list[float] | None:
        return self._judged("val_loss")

    @property
    def judged_test_loss(self) -> list[float] | None:
        return self._judged("test_loss")

    @property
    def val(self) -> Interval | None:
        losses = self.judged_val_loss
        return None if losses is None else mean_interval(losses)

    @property
    def test(self) -> Interval | None:
        losses = self.judged_test_loss
        return None if losses is None else mean_interval(losses)

    @property
    def score(self) -> Interval | None:
        scores = self._judged("test_score")
        return None if not scores else mean_interval(scores)

    @property
    def other_test(self) -> Interval | None:
        """The test loss by the criterion it is not judged by (at the best epoch when judged at the last)."""
        losses = self.test_loss if self.judged == "best" else self.best_test_loss
        return None if losses is None else mean_interval(losses)

    @property
    def shown_losses(self) -> list[float] | None:
        """What the figures show: test losses, or val losses for a task without a test split."""
        test = self.judged_test_loss
        return self.judged_val_loss if test is None else test

    @property
    def run(self) -> RunSpec:
        return RunSpec.model_validate(self.spec)

    def overfits(self) -> tuple[int, float, float] | None:
        """(epoch, lowest, last) of its mean val curve when that rises over the run's last part: lowest
        before the last fifth of the run, and the last at least 2% above it. None otherwise."""
        curve = self.val_curve
        if not curve or len(curve) < 5:
            return None
        lowest = min(range(len(curve)), key=curve.__getitem__)
        if lowest < 0.8 * len(curve) - 1 and curve[-1] > 1.02 * curve[lowest]:
            return lowest + 1, curve[lowest], curve[-1]
        return None


class TunedControl(BaseModel):
    """How a control's base LR was chosen: its mean val loss at each LR tried (None: diverged)."""

    model_config = ConfigDict(frozen=True)

    name: str
    lrs: list[float] = Field(max_length=MAX_ROWS)
    val_losses: list[float | None] = Field(max_length=MAX_ROWS)
    chosen: float | None  # None: it diverged at every LR

    @model_validator(mode="after")
    def _consistent(self) -> TunedControl:
        # Stored data: an LR per loss, and a chosen LR among those tried with a finite loss.
        if len(self.lrs) != len(self.val_losses):
            raise ValueError(f"{len(self.lrs)} LRs but {len(self.val_losses)} val losses")
        if self.chosen is not None and self.chosen_loss is None:
            raise ValueError(f"the chosen LR {self.chosen} is not among the LRs tried with a val loss")
        return self

    @property
    def chosen_loss(self) -> float | None:
        """The mean val loss at the chosen LR."""
        return dict(zip(self.lrs, self.val_losses, strict=True)).get(self.chosen) if self.chosen is not None else None


class Certificate(BaseModel):
    model_config = ConfigDict(frozen=True)

    # The fresh seeds of the race, in order: a candidate trained at the first `Candidate.seeds` of them.
    seeds: list[int] = Field(max_length=MAX_ROWS)
    # The length certified at (the search's, or `certify --epochs`); bounded, as a stored length is trained at.
    epochs: int = Field(ge=1, le=MAX_EPOCHS)
    search_epochs: int = Field(ge=1, le=MAX_EPOCHS)
    device: str
    when: str  # e.g. "2026-01-31 12:00 UTC"
    seconds: float  # what certification took
    trained_epochs: int | None = None  # run-epochs certification trained, LR sweeps included
    score: str | None = None  # what test_score is: "accuracy", "r2" or None
    controls: list[TunedControl] = Field(max_length=MAX_ROWS)
    # How each searched candidate's LR was chosen at the certified length, when it is not the search's.
    searched_lrs: list[TunedControl] = Field([], max_length=MAX_ROWS)
    judge: Judge = "last"  # the epoch every candidate is judged at
    overfit: str | None = None  # one line when the runs' val loss rises over their last part
    edge: str | None = None  # one line when a tuned LR is the edge of the search's LR range
    horizon: str | None = None  # at another length than the search's: how the LRs there were predicted
    # The best searched trial when certified (`records.searched_best_first`): a better one since makes it stale.
    answer_trial: int
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
        """The candidates in the race's order (`Candidate.rank_key`), those that did not train to the end last."""
        return sorted(self.candidates, key=lambda c: c.rank_key)

    @property
    def seeds_text(self) -> str:
        """`10 fresh seeds`, or `3 to 10 fresh seeds` where the race stopped some candidates early."""
        counts = [c.seeds for c in self.candidates if c.seeds] or [len(self.seeds)]
        low, high = min(counts), max(counts)
        return f"{high} fresh seed{'s' if high > 1 else ''}" if low == high else f"{low} to {high} fresh seeds"

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
            other = "test_loss_at_last_epoch" if self.judge == "best" else "test_loss_at_best_epoch"
            figures[other] = c.other_test
            rows[c.label] = (
                (
                    {"diverged": c.diverged}
                    if c.diverged is not None
                    else {name: _figure(value) for name, value in figures.items() if value is not None}
                )
                | {"kind": c.kind, "run": _run_of(c)}
                | ({"raced": c.raced} if c.raced else {})
            )
        return {
            "sentence": self.sentence,
            "recommended": self.recommended,
            "seeds": self.seeds,
            "epochs": self.epochs,
            "judged_at": "the best val epoch" if self.judge == "best" else "the last epoch",
            **({"overfit": self.overfit} if self.overfit else {}),
            **({"edge": self.edge} if self.edge else {}),
            **({"horizon": self.horizon} if self.horizon else {}),
            "when": self.when,
            "candidates": rows,
        }


def _run_of(candidate: Candidate) -> dict[str, Any]:
    """What a candidate's run sets beyond the problem (shared by every candidate): for a replay's
    baselines, and for a reader of the exported YAML."""
    return {key: candidate.spec.get(key) for key in ("optimizer", "lr", "schedule", "epochs")}


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


def kept_length(study: optuna.Study) -> int | None:
    """The length the study was last certified at, where that is not the search's: certified again (after
    more trials, say) without a length of its own, a study keeps the length its user trains for rather
    than fall back to the search's and overwrite the longer answer. None: none kept."""
    stored = stored_certificate(study)
    return stored.epochs if isinstance(stored, Certificate) and stored.epochs != stored.search_epochs else None
