"""What a finished (or interrupted) search tells the user: the best run, a top-k table, trial counts,
its certificate, and the recommended RunSpec exported as YAML."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.table import Table
from rich.text import Text

from lrsearch.base.errors import ConfigError
from lrsearch.base.text import LINE, clipped
from lrsearch.problem.hooks import Direction
from lrsearch.problem.spec import RunSpec
from lrsearch.store.certificate import Candidate, Certificate, stored_certificate
from lrsearch.store.records import TrialRecord, final_score, score_label, searched_best_first, stores_run


@dataclass(frozen=True)
class TrialRow:
    number: int
    spec: RunSpec
    val_loss: float
    val_score: float | None
    score_label: str | None  # "accuracy", "R²", a score of the user's own; None for a task without a score
    score_direction: Direction = "maximize"  # which way the score is better
    score: str | None = None  # the score's stored name ("accuracy", "r2", the user's own)

    @classmethod
    def of(cls, trial: FrozenTrial) -> TrialRow | None:
        """The trial's row, or None when what it stores does not parse (anyone who can write to the
        storage can write its attributes: a view shows them as data, or not at all)."""
        record = TrialRecord.of(trial)
        if record is None:
            return None
        curves = record.curves
        score = None if curves is None or curves.val_score is None else curves.val_score[-1]
        return cls(
            record.number, record.spec, record.value, score, record.score_label, record.score_direction, record.score
        )

    @property
    def score_text(self) -> str:
        return "-" if self.val_score is None else f"{self.val_score:.4f}"


@dataclass(frozen=True)
class Summary:
    study_name: str
    counts: dict[str, int]  # trial state name -> how many
    top: list[TrialRow]  # best first
    unreadable: list[int] = field(default_factory=list)  # better trials than top[-1] whose records don't parse
    # The completed trial with the best final val score, the score's way (highest F1, lowest error rate).
    best_by_score: TrialRow | None = None

    @property
    def best(self) -> TrialRow | None:
        return self.top[0] if self.top else None


def summarize(study: optuna.Study, k: int = 5) -> Summary:
    """The study's trial counts and its `k` best completed trials."""
    trials = study.get_trials(deepcopy=False)
    counts = Counter(trial.state.name for trial in trials)
    complete = [t for t in trials if t.state == TrialState.COMPLETE and stores_run(t)]
    complete.sort(key=lambda t: t.value)
    top: list[TrialRow] = []
    unreadable: list[int] = []
    for trial in complete:  # best first, parsing no more trials than it takes
        if len(top) == k:
            break
        row = TrialRow.of(trial)
        if row is None:
            unreadable.append(trial.number)
        else:
            top.append(row)
    by_score = _best_by_score(complete, top[0]) if top and top[0].score is not None else None
    return Summary(study.study_name, dict(counts), top, unreadable, by_score)


def _best_by_score(complete: list[FrozenTrial], best: TrialRow) -> TrialRow | None:
    """Of the completed trials, the one whose final val score is best, read as the best trial's score reads
    (its name and direction); each trial's score curve alone is read, not its whole record."""
    finals = [(value, trial) for trial in complete if (value := final_score(trial, best.score)) is not None]
    if not finals:
        return None
    sign = 1 if best.score_direction == "maximize" else -1
    _, trial = max(finals, key=lambda pair: (sign * pair[0], -pair[1].number))  # a tie: the earlier trial
    return TrialRow.of(trial)


def export_best(study: optuna.Study, path: Path) -> RunSpec:
    """Write the recommended RunSpec to `path` as YAML (for `lrsearch train --config`): the run the
    study's current certificate recommends, with the certificate's summary; else the best trial's."""
    best = summarize(study, k=1).best
    if best is None:
        raise ConfigError(f"study {study.study_name!r} has no completed trial yet; nothing to export")
    certificate = current_certificate(study)
    chosen = certificate.recommended_candidate if certificate is not None else None
    if certificate is not None and chosen is not None:
        spec = chosen.run
        spec.save(
            path,
            comment=f"lrsearch: {chosen.label}, recommended by the certificate of study {study.study_name!r}\n"
            f"{certificate.sentence}\n{_optimizer_line(spec)}\n"
            f"replay: lrsearch train --config {path}{spec.replay_options}",
            certificate=certificate.summary(),
        )
        return spec
    best.spec.save(
        path,
        comment=f"lrsearch: best trial #{best.number} of study {study.study_name!r}, val loss {best.val_loss:.6f}\n"
        f"not certified: `lrsearch certify --study-name {study.study_name}` compares it with tuned controls\n"
        f"{_optimizer_line(best.spec)}\nreplay: lrsearch train --config {path}{best.spec.replay_options}",
    )
    return best.spec


def _optimizer_line(spec: RunSpec) -> str:
    """What the exported LR is for: an LR does not carry over from one optimizer to another."""
    optimizer = spec.optimizer
    return (
        f"its LR was found with {optimizer.name} (momentum {optimizer.momentum:g}, weight decay "
        f"{optimizer.weight_decay:g}); another optimizer needs its own search"
    )


def current_certificate(study: optuna.Study, trials: Sequence[FrozenTrial] | None = None) -> Certificate | None:
    """The study's certificate while it still speaks for the study's best searched trial (a better one
    since makes it stale; a control trial never does: `records.searched_best_first`); None when there is
    none, it is stale, or it is unreadable. `trials`: the study's, where the caller has read them."""
    certificate = stored_certificate(study)
    if not isinstance(certificate, Certificate):
        return None
    answer = next(searched_best_first(study.get_trials(deepcopy=False) if trials is None else trials), None)
    return certificate if answer is not None and answer.number == certificate.answer_trial else None


def certificate_lines(certificate: Certificate) -> list[str]:
    """What certification found, in a few lines."""
    at = "its best val epoch" if certificate.judge == "best" else "its last epoch"
    return [
        f"certified: {len(certificate.candidates)} schedules at {certificate.seeds_text}, "
        f"{certificate.epochs} epochs (the search's {certificate.search_epochs}), each run judged at {at}, "
        f"in {certificate.seconds:.1f} s",
        *([clipped(certificate.horizon, LINE)] if certificate.horizon else []),
        *([clipped(certificate.overfit, LINE)] if certificate.overfit else []),
        *([clipped(certificate.edge, LINE)] if certificate.edge else []),
        clipped(certificate.sentence, LINE),
        f"recommended: {clipped(certificate.recommended or 'nothing (every candidate diverged)')}, "
        f"{certificate.epochs} epochs",
    ]


SCHEDULE_MIN = 16  # the schedule column's narrowest, its name folded over lines


def certificate_table(certificate: Certificate, width: int | None = None) -> Table:
    """Each candidate's mean and 95% interval over the fresh seeds, best val loss first. In `width`
    columns (a terminal's), the names fold and the figures keep their width; where they still do not
    fit, the other criterion's test loss, then the kind, are left out (a searched label starts `#`)."""
    score = score_label(certificate.score)
    table = Table(title=Text(f"certificate: mean ± 95% interval over {certificate.seeds_text}"))
    other = other_test_column(certificate)
    figures_columns = ("val loss", "test loss", *([f"test {score}"] if score else []), *([other] if other else []))
    rows = []
    for candidate in certificate.ranked:
        mark = " (recommended)" if candidate.label == certificate.recommended else ""
        if candidate.val is None:  # why it stopped, folded within the figures' width (`widths` leaves it out)
            reason = Text(clipped(candidate.diverged or "-", LINE), no_wrap=False, overflow="fold")
            figures = [reason, "-", *(["-"] if score else []), *(["-"] if other else [])]
        else:
            figures = [candidate.val.text(), "-" if candidate.test is None else candidate.test.text()]
            if score:
                figures.append("-" if candidate.score is None else candidate.score.text())
            if other:
                figures.append(other_test_text(candidate))
        rows.append([Text(clipped(candidate.label) + mark), candidate.kind, race_text(candidate), *figures])
    names = ["kind", "seeds", *figures_columns]
    widths = {
        name: max([len(name), *(len(str(row[i])) for row in rows if not isinstance(row[i], Text))])
        for i, name in enumerate(names, start=1)
    }
    shown = list(names)
    for optional in (other, "kind"):
        needed = SCHEDULE_MIN + sum(widths[name] for name in shown) + 3 * (len(shown) + 1) + 1
        if width is not None and optional in shown and needed > width:
            shown.remove(optional)
    table.add_column("schedule", overflow="fold", min_width=SCHEDULE_MIN)
    for name in shown:
        justify = "left" if name in ("kind", "seeds") else "right"
        table.add_column(name, justify=justify, min_width=widths[name])  # wide enough: no figure wraps
    for row in rows:
        table.add_row(row[0], *(row[names.index(name) + 1] for name in shown))
    return table


def race_text(candidate: Candidate) -> str:
    """`3, worse`: the fresh seeds it trained at, and in a word why it stopped racing (`Candidate.race_word`)."""
    word = candidate.race_word
    return f"{candidate.seeds}, {word}" if word else str(candidate.seeds)


def other_test_column(certificate: Certificate) -> str | None:
    """The column of the test loss by the criterion the certificate does not judge by (None: not stored)."""
    if not any(c.best_test_loss for c in certificate.candidates):
        return None
    return "test loss, last epoch" if certificate.judge == "best" else "test loss, best val epoch"


def other_test_text(candidate: Candidate) -> str:
    """e.g. `0.2431 ± 0.0102 (ep 14)`: the other criterion's test loss, and the median best epoch."""
    other = candidate.other_test
    if other is None:
        return "-"
    epochs = sorted(candidate.best_epoch or [])
    return other.text() + (f" (ep {epochs[len(epochs) // 2]})" if epochs and candidate.judged == "last" else "")


def format_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{key}={_short(value)}" for key, value in params.items()) or "-"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def counts_line(summary: Summary) -> str:
    order = ["COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING"]
    parts = [f"{summary.counts.get(state, 0)} {state.lower()}" for state in order if state in summary.counts]
    return f"{sum(summary.counts.values())} trials: " + ", ".join(parts) if parts else "no trials"


def best_lines(row: TrialRow) -> list[str]:
    """The best trial, a line per fact."""
    spec = row.spec
    lines = [
        f"best trial: #{row.number}",
        f"  schedule:     {spec.schedule.name} ({format_params(spec.schedule.params)})",
        f"  base lr:      {spec.lr:.4g}",
        # Adam and AdamW take the spec's momentum as beta1 (`problem.build.build_optimizer`).
        f"  optimizer:    {spec.optimizer.name} ({'momentum' if spec.optimizer.name == 'sgd' else 'beta1'}="
        f"{spec.optimizer.momentum:.4g}, "
        f"weight_decay={spec.optimizer.weight_decay:.4g})",
        f"  val loss:     {row.val_loss:.6f}",
    ]
    if row.score_label is not None:
        lines.append(f"  val {row.score_label + ':':<9} {row.score_text}")
    return lines


def best_score_line(summary: Summary) -> str | None:
    """The trial with the best final val score, its way (`highest val f1: 0.9312, trial #12`); None when
    the task has no score. The search ranks by val loss: this is where a score's own ranking shows."""
    row = summary.best_by_score
    if row is None or row.val_score is None:
        return None
    best = "highest" if row.score_direction == "maximize" else "lowest"
    return f"{best} val {row.score_label}: {row.score_text}, trial #{row.number}"


def top_table(summary: Summary) -> Table:
    # Stored strings go in as Text: rich would read "[...]" in them as markup (and fail on a stray "[/x]").
    table = Table(title=Text(f"top {len(summary.top)} of study {summary.study_name!r}"))
    labels = {row.score_label for row in summary.top} - {None}
    score_column = f"val {labels.pop()}" if len(labels) == 1 else "val score"
    for column in ("#", "trial", "val loss", score_column, "lr"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("schedule", no_wrap=True)
    table.add_column("params", overflow="fold")
    for rank, row in enumerate(summary.top, start=1):
        table.add_row(
            str(rank),
            str(row.number),
            f"{row.val_loss:.4f}",
            row.score_text,
            f"{row.spec.lr:.4g}",
            row.spec.schedule.name,
            Text(format_params(row.spec.schedule.params)),
        )
    return table
