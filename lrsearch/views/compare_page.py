"""`lrsearch report` of several studies side by side: each study's best run and its certificate in one
table and one figure. Studies of different problems are refused unless asked for: their losses are
measured on other data, or by another model, and do not compare."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass

import optuna

from lrsearch.base.errors import ConfigError
from lrsearch.base.text import LINE, clipped
from lrsearch.problem.spec import RunSpec
from lrsearch.store.certificate import Candidate, Certificate, stored_certificate
from lrsearch.store.records import TrialRecord
from lrsearch.views import plots
from lrsearch.views.report_page import Section
from lrsearch.views.summary import Summary, counts_line, current_certificate, format_params, summarize

ALLOW_FLAG = "--allow-different-problems"


@dataclass(frozen=True)
class Compared:
    """One study of the comparison: its counts and best trial, and its certificate while current."""

    name: str
    summary: Summary
    val_curve: list[float]  # the best trial's val loss per epoch (empty when its curves do not parse)
    certificate: Certificate | None
    uncertified: str  # why there is no certificate to show ("" when there is one)

    @property
    def spec(self) -> RunSpec:
        return self.summary.best.spec

    @property
    def recommended(self) -> Candidate | None:
        return None if self.certificate is None else self.certificate.recommended_candidate


def compared(study: optuna.Study) -> Compared:
    """The study as the comparison shows it.

    Raises:
        ConfigError: the study has no completed trial with a readable run: nothing to compare.
    """
    summary = summarize(study, k=1)
    if summary.best is None:
        raise ConfigError(f"--study-name: study {clipped(study.study_name)!r} has no completed trial to compare")
    trial = next(t for t in study.get_trials(deepcopy=False) if t.number == summary.best.number)
    record = TrialRecord.of(trial)
    curves = None if record is None else record.curves
    certificate = current_certificate(study)
    stored = stored_certificate(study)
    if certificate is not None:
        why = ""
    elif isinstance(stored, Certificate):
        made = f"made when trial #{stored.answer_trial} was the best searched trial"
        why = f"not certified: its certificate is stale ({made})"
    elif isinstance(stored, str):
        why = f"not certified: {stored}"
    else:
        why = "not certified"
    return Compared(study.study_name, summary, [] if curves is None else curves.val_loss, certificate, why)


def problem_of(spec: RunSpec) -> dict[str, object]:
    """What makes two studies' losses comparable, flat: the data (its seed draws the data set and its
    split), the model and the batch size. The run length may differ: comparing lengths is a question."""
    flat = {f"data.{key}": value for key, value in spec.data.model_dump(mode="json").items()}
    flat |= {f"model.{key}": value for key, value in spec.model.model_dump(mode="json").items()}
    return flat | {"batch_size": spec.batch_size, "seed": spec.seed}


def problem_difference(studies: list[Compared]) -> str | None:
    """One line naming the first setting in which a study's problem differs from the first study's;
    None when they all agree."""
    first = studies[0]
    wanted = problem_of(first.spec)
    for other in studies[1:]:
        theirs = problem_of(other.spec)
        for key in wanted.keys() | theirs.keys():
            if wanted.get(key) != theirs.get(key):
                return (
                    f"study {clipped(first.name)!r} has {key}={clipped(repr(wanted.get(key)))}, "
                    f"study {clipped(other.name)!r} has {key}={clipped(repr(theirs.get(key)))}"
                )
    return None


def comparison_sections(
    studies: list[optuna.Study], *, allow_different_problems: bool = False
) -> list[Callable[[], Section]]:
    """The page's one section, drawn when called.

    Raises:
        ConfigError: a study with nothing to compare, or studies of different problems (unless allowed).
    """
    rows = [compared(study) for study in studies]
    difference = problem_difference(rows)
    if difference is not None and not allow_different_problems:
        raise ConfigError(f"the studies are of different problems ({difference}); {ALLOW_FLAG} compares them anyway")
    return [lambda: _side_by_side(rows, difference)]


def comparison_title(studies: list[optuna.Study]) -> str:
    return "lrsearch report: studies " + ", ".join(clipped(study.study_name) for study in studies)


def _side_by_side(rows: list[Compared], difference: str | None) -> Section:
    warning = (
        ""
        if difference is None
        else f"<p><strong>Different problems ({html.escape(difference)}): their losses do not compare "
        f"directly.</strong></p>"
    )
    headers = "".join(
        f"<th>{header}</th>"
        for header in (
            "study",
            "trials",
            "best trial",
            "its val loss",
            "certified recommendation",
            "its test loss (mean ± 95%)",
            "fresh seeds",
        )
    )
    table = f"<table><tr>{headers}</tr>{''.join(_row(row) for row in rows)}</table>"
    sentences = "".join(
        f"<li><strong>{html.escape(clipped(row.name))}</strong>: {html.escape(clipped(row.certificate.sentence, LINE))}"
        "</li>"
        for row in rows
        if row.certificate is not None
    )
    text = (
        f"{warning}<p>Each study's best trial (by its one run, at the search's seed) and what its certificate "
        "recommends (the best searched trial and tuned controls trained again at fresh seeds).</p>"
        f"{table}{f'<ul>{sentences}</ul>' if sentences else ''}"
    )
    certified = [row.certificate for row in rows if row.certificate is not None]
    figure = plots.studies_compared(
        [(row.name, row.val_curve, None if row.recommended is None else row.recommended.shown_losses) for row in rows],
        loss=certified[0].shown_loss if certified else "test loss",
    )
    return Section("studies", "The studies side by side", text, figure)


def _row(row: Compared) -> str:
    best, spec = row.summary.best, row.spec
    params = f" ({format_params(spec.schedule.params)})" if spec.schedule.params else ""
    schedule = f"{spec.schedule.name}{params}, lr {spec.lr:.4g}, {spec.epochs} epochs"
    cells = [clipped(row.name), counts_line(row.summary), f"#{best.number} {clipped(schedule, LINE)}"]
    cells.append(f"{best.val_loss:.4f}")
    chosen = row.recommended
    if row.certificate is None or chosen is None:
        why = row.uncertified or "not certified: every candidate diverged"
        shown = "".join(f"<td>{html.escape(text)}</td>" for text in cells)
        return f"<tr>{shown}<td colspan='3'>{html.escape(clipped(why, LINE))}</td></tr>"
    if chosen.test is not None:
        loss = chosen.test.text()
    else:  # a task without a test split: the certificate's figures are val losses
        loss = "-" if chosen.val is None else f"{chosen.val.text()} (val loss: no test split)"
    cells += [f"{clipped(chosen.label)}, {row.certificate.epochs} epochs", loss, str(chosen.seeds)]
    return "<tr>" + "".join(f"<td>{html.escape(text)}</td>" for text in cells) + "</tr>"
