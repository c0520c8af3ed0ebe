"""`lrsearch report`: one self-contained HTML file about a study (figures inline as SVG, no scripts, no
links to fetch), and the same figures as PNG files on request."""

from __future__ import annotations

import html
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import optuna
from matplotlib.figure import Figure
from pydantic import ValidationError

from lrsearch.base.errors import error_field
from lrsearch.base.text import LINE, clipped
from lrsearch.problem.spec import RunSpec
from lrsearch.store.certificate import stored_certificate
from lrsearch.store.records import TrialCurves, score_label
from lrsearch.store.replay import REPLAY_ATTR, Replay
from lrsearch.views import plots
from lrsearch.views.curves import best_loss_by_schedule, finished_curves, top_completed
from lrsearch.views.summary import (
    best_score_line,
    counts_line,
    current_certificate,
    format_params,
    other_test_column,
    other_test_text,
    race_text,
    summarize,
)

TOP_K = 5

MAX_SHOWN_SWEEPS = 30  # LR sweeps listed: stored data may hold more


@dataclass(frozen=True)
class Section:
    name: str  # also the PNG's file name
    title: str
    text: str = ""  # HTML
    figure: Figure | None = None


def sections(study: optuna.Study) -> list[Callable[[], Section]]:
    """The report's sections, each drawn when called (so a progress bar can follow); those with nothing
    to show yet are left out."""
    curves = finished_curves(study.get_trials(deepcopy=False))
    top = top_completed(curves, TOP_K)
    # The answer first: the recommendation and its certificate, then how the search got there.
    drawers: list[Callable[[], Section]] = [partial(_certificate, study), partial(_summary, study)]
    if top:
        drawers += [partial(_history, study), partial(_best_lr_curves, top), partial(_best_val_losses, top)]
    if curves:
        drawers.append(partial(_schedule_types, curves))
    if len(top) > 1:
        drawers.append(partial(_importances, study))
    drawers.append(partial(_replay, study))
    return drawers


def report_title(study: optuna.Study) -> str:
    return f"lrsearch report: study {study.study_name}"


def write_html(study: optuna.Study, drawn: list[Section], path: Path) -> None:
    write_page(report_title(study), drawn, path)


def write_page(title: str, drawn: list[Section], path: Path) -> None:
    """One self-contained HTML page of `drawn` (every text in it escaped or built escaped)."""
    body = []
    for section in drawn:
        body.append(f'<section id="{section.name}"><h2>{html.escape(section.title)}</h2>{section.text}')
        if section.figure is not None:
            body.append(f"<figure>{_inline_svg(section.figure)}</figure>")
        body.append("</section>")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"<p class='stamp'>written {stamp}</p>{''.join(body)}</body></html>\n",
        encoding="utf-8",
    )


def write_pngs(drawn: list[Section], folder: Path, stem: str) -> list[Path]:
    written = []
    for section in drawn:
        if section.figure is not None:
            path = folder / f"{stem}-{section.name}.png"
            path.write_bytes(plots.to_bytes(section.figure, "png"))
            written.append(path)
    return written


def _summary(study: optuna.Study) -> Section:
    summary = summarize(study, k=TOP_K)
    parts = [f"<p>{html.escape(counts_line(summary))}</p>"]
    if summary.unreadable:
        numbers = ", ".join(f"#{number}" for number in summary.unreadable)
        parts.append(f"<p>Left out, their stored records unreadable: trial {numbers}.</p>")
    score_line = best_score_line(summary)
    if score_line is not None:
        parts.append(f"<p>{html.escape(score_line)}</p>")
    if summary.best is not None:
        rows = "".join(
            f"<tr><td>{rank}</td><td>#{row.number}</td><td>{row.val_loss:.4f}</td><td>{row.spec.lr:.4g}</td>"
            f"<td>{html.escape(row.spec.schedule.name)}</td>"
            f"<td>{html.escape(format_params(row.spec.schedule.params))}</td></tr>"
            for rank, row in enumerate(summary.top, start=1)
        )
        certificate = current_certificate(study)
        chosen = None if certificate is None else certificate.recommended_candidate
        if chosen is not None:
            label = html.escape(clipped(chosen.label))
            what = f"The recommended run ({label}, {certificate.epochs} epochs; see the certificate)"
            spec = chosen.run
        else:
            what = f"The best trial's run (#{summary.best.number}, not certified)"
            spec = summary.best.spec
        parts.append(
            "<table><tr><th>rank</th><th>trial</th><th>val loss</th><th>base LR</th><th>schedule</th>"
            f"<th>parameters</th></tr>{rows}</table>"
            f"<h3>{what}</h3>"
            f"<p><code>lrsearch export --study-name {html.escape(study.study_name)} -o best.yaml</code> writes it; "
            f"<code>lrsearch train --config best.yaml</code> replays it:</p>"
            f"<pre>{html.escape(spec.to_yaml())}</pre>"
        )
    return Section("summary", "The search", "".join(parts))


def _history(study: optuna.Study) -> Section:
    from optuna.visualization.matplotlib import plot_optimization_history

    axes = plot_optimization_history(study)
    return Section("history", "Optimization history", figure=_detached(axes))


def _best_lr_curves(top: list[TrialCurves]) -> Section:
    return Section("lr-curves", "LR schedules of the best trials", figure=plots.top_lr_curves(top))


def _best_val_losses(top: list[TrialCurves]) -> Section:
    return Section("val-loss", "Their val loss", figure=plots.top_val_losses(top))


def _schedule_types(curves: list[TrialCurves]) -> Section:
    text = (
        "<p>Each trial's best val loss, grouped by schedule type (pruned trials included: a type the pruner "
        "stops early shows it). The best type is on top.</p>"
    )
    return Section(
        "schedule-types", "Schedule types compared", text, plots.schedule_comparison(best_loss_by_schedule(curves))
    )


def _importances(study: optuna.Study) -> Section:
    try:
        with warnings.catch_warnings():  # "few trials in some regimes": the text below says it is rough
            warnings.simplefilter("ignore", UserWarning)
            importances = optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError) as error:  # too few trials, or every parameter constant
        return Section("importances", "Parameter importances", f"<p>not available: {html.escape(str(error))}</p>")
    if not importances:
        return Section("importances", "Parameter importances", "<p>not available: no parameter was sampled</p>")
    return Section(
        "importances",
        "Parameter importances",
        "<p>How much each parameter shared by all completed trials mattered to the final val loss, by "
        f"Optuna's default importance evaluator (the {plots.IMPORTANCES_SHOWN} that mattered most); with few "
        "trials per schedule type this is rough.</p>",
        plots.param_importances(importances),
    )


def _replay(study: optuna.Study) -> Section:
    stored = study.user_attrs.get(REPLAY_ATTR)
    if not stored:
        return Section(
            "baselines",
            "Against the baselines",
            "<p>Not measured yet: <code>lrsearch train --config best.yaml --study-name "
            f"{html.escape(study.study_name)}</code> trains the exported run beside the certificate's controls "
            "(without one: a constant LR and the classic StepLR) and records their test figures here.</p>",
        )
    try:
        replay = Replay.model_validate(stored)
    except ValidationError as error:
        return Section("baselines", "Against the baselines", _unreadable_replay(study, error))

    def cell(value: float | None) -> str:
        return "<td>-</td>" if value is None else f"<td>{value:.4f}</td>"

    rows, losses = [], {}
    for label, run in replay.runs.items():
        if run.diverged is not None:
            cells = f"<td colspan='3'>{html.escape(clipped(run.diverged, LINE))}</td>"
        else:
            if run.test_loss is not None:
                losses[label] = run.test_loss
            cells = cell(run.test_loss) + cell(run.test_score) + cell(run.val_loss)
        rows.append(f"<tr><td>{html.escape(clipped(label))}</td>{cells}</tr>")
    score = html.escape(score_label(replay.score) or "score")
    table = (
        f"{_replay_outdated(study, replay)}<p>Replayed on {html.escape(clipped(replay.device))}, seed {replay.seed}, "
        f"recorded {html.escape(clipped(replay.when))}.</p>"
        f"<table><tr><th>run</th><th>test loss</th><th>test {score}</th><th>final val loss</th></tr>"
        f"{''.join(rows)}</table>"
    )
    figure = plots.replay_comparison(losses) if losses else None
    return Section("baselines", "Against the baselines", table, figure)


def _replay_outdated(study: optuna.Study, replay: Replay) -> str:
    """A note when the recorded replay trained another run than the study's current certificate
    recommends (a certificate made since, at another length say): its figures then speak for a run the
    study no longer recommends. Seeds aside: a replay may be asked for at another seed. A stale
    certificate says so itself, and a record that is no run says nothing here."""
    certificate = current_certificate(study)
    chosen = certificate.recommended_candidate if certificate is not None else None
    if chosen is None:
        return ""
    try:
        replayed, recommended = (RunSpec.model_validate(spec) for spec in (replay.spec, chosen.spec))
    except ValidationError:
        return ""
    if replayed.model_copy(update={"seed": 0}) == recommended.model_copy(update={"seed": 0}):
        return ""
    name = html.escape(study.study_name)
    return (
        f"<p><strong>Out of date:</strong> this replay trained another run than the certificate recommends "
        f"({html.escape(clipped(chosen.label))}, {certificate.epochs} epochs). <code>lrsearch export --study-name "
        f"{name} -o best.yaml</code>, then <code>lrsearch train --config best.yaml --study-name {name}</code>, "
        "records its replay.</p>"
    )


def _certificate(study: optuna.Study) -> Section:
    title = "Certificate: the answer against tuned controls, at fresh seeds"
    stored = stored_certificate(study)
    name = html.escape(study.study_name)
    if stored is None:
        return Section(
            "certificate",
            title,
            f"<p>Not certified yet: <code>lrsearch certify --study-name {name}</code> trains the best trial and "
            "tuned control schedules again at fresh seeds and records the comparison here.</p>",
        )
    if isinstance(stored, str):
        return Section("certificate", title, f"<p>{html.escape(stored)}.</p>")
    current = current_certificate(study) is not None
    stale = (
        ""
        if current
        else f"<p><strong>Stale:</strong> made when trial #{stored.answer_trial} was the best searched trial; the "
        f"study has a better one since. <code>lrsearch certify --study-name {name}</code> certifies it.</p>"
    )
    score = score_label(stored.score)
    other = other_test_column(stored)
    rows = []
    for c in stored.ranked:
        mark = " <strong>(recommended)</strong>" if c.label == stored.recommended else ""
        if c.val is None:
            span = 2 + bool(score) + bool(other)
            cells = f"<td colspan='{span}'>{html.escape(clipped(c.diverged or '-', LINE))}</td>"
        else:
            cells = f"<td>{c.val.text()}</td><td>{'-' if c.test is None else c.test.text()}</td>"
            if score:
                cells += f"<td>{'-' if c.score is None else c.score.text()}</td>"
            if other:
                cells += f"<td>{html.escape(other_test_text(c))}</td>"
        why = html.escape(clipped(c.raced or "", LINE))  # the whole reason it stopped racing, on hover
        raced = f"<td title='{why}'>{html.escape(race_text(c))}</td>"
        rows.append(
            f"<tr><td>{html.escape(clipped(c.label))}{mark}</td><td>{html.escape(c.kind)}</td>{raced}{cells}</tr>"
        )
    headers = "".join(
        f"<th>{html.escape(h)}</th>"
        for h in (
            "schedule",
            "kind",
            "seeds",
            "val loss",
            "test loss",
            *([f"test {score}"] if score else []),
            *([other] if other else []),
        )
    )
    tuned = "".join(
        f"<tr><td>{html.escape(clipped(t.name))}</td><td>{len(t.lrs)}</td>"
        f"<td>{min(t.lrs):.3g} to {max(t.lrs):.3g}</td>"
        + (
            "<td colspan='2'>diverged at every LR</td>"
            if t.chosen is None
            else f"<td>{t.chosen:.3g}</td><td>{t.chosen_loss:.4f}</td>"
        )
        + "</tr>"
        for t in [*stored.controls, *stored.searched_lrs][:MAX_SHOWN_SWEEPS]
        if t.lrs
    )
    device, when = html.escape(clipped(stored.device)), html.escape(clipped(stored.when))
    judged = "its best val epoch (what early stopping keeps)" if stored.judge == "best" else "its last epoch"
    caveats = "".join(  # the runs overfit; an LR at the edge of the search's range
        f"<p><strong>{html.escape(clipped(line, LINE))}.</strong></p>" for line in (stored.overfit, stored.edge) if line
    )
    recommended = (
        f"{html.escape(clipped(stored.recommended))}, {stored.epochs} epochs"
        if stored.recommended
        else "nothing (every candidate diverged)"
    )
    text = (
        f"{stale}<p><strong>Recommended: {recommended}</strong></p>"
        f"<p><strong>{html.escape(clipped(stored.sentence, LINE))}.</strong></p>{caveats}"
        f"<p>{len(stored.candidates)} schedules trained at {stored.seeds_text} (new initial weights "
        f"and batch orders, the same data split), {stored.epochs} epochs each (the search's "
        f"{stored.search_epochs}), each run judged at {judged}, on {device} "
        f"in {stored.seconds:.1f} s, recorded {when}. Mean ± 95% interval (Student's t); "
        "the winner and the recommendation are chosen on val loss, never on test loss.</p>"
        f"<table><tr>{headers}</tr>{''.join(rows)}</table>"
        f"<p>How each base LR was chosen at {stored.epochs} epochs (val loss at the search's seeds; the "
        "lowest more than 2x below any LR whose run diverged or fell to the walk's worst, the edge of "
        "stability):</p>"
        "<table><tr><th>schedule</th><th>LRs tried</th><th>range</th><th>chosen</th><th>its val loss</th></tr>"
        f"{tuned}</table>"
    )
    return Section("certificate", title, text, plots.certificate_figure(stored))


def _unreadable_replay(study: optuna.Study, error: ValidationError) -> str:
    where = f"{error_field(error)}: {error.errors()[0]['msg']}"
    return (
        f"<p>The recorded replay is unreadable ({html.escape(where)}): it was not written by this version of "
        "lrsearch, or was changed since. <code>lrsearch train --config best.yaml --study-name "
        f"{html.escape(study.study_name)}</code> records it again.</p>"
    )


def _detached(axes: Any) -> Figure:
    """Optuna's matplotlib plots draw on pyplot's figures; take the figure out of pyplot's registry."""
    import matplotlib.pyplot as plt

    figure = axes.get_figure()
    figure.set_size_inches(8, 4)
    figure.tight_layout()
    plt.close(figure)  # the figure still draws; pyplot just stops holding it
    return figure


def _inline_svg(figure: Figure) -> str:
    svg = plots.to_bytes(figure, "svg").decode("utf-8")
    return re.sub(r"^.*?(?=<svg)", "", svg, flags=re.DOTALL)  # drop the XML prolog and doctype


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.8em; }
table { border-collapse: collapse; display: block; max-width: 100%; overflow-x: auto; }
td, th { padding: .25em .7em; border-bottom: 1px solid #eee; text-align: left; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; } .stamp { color: #777; }
figure { margin: 1em 0; } svg { max-width: 100%; height: auto; }
"""
