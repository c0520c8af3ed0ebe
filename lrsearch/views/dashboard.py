"""What optuna-dashboard shows of a study beyond its own plots, and the server itself.

- every finished trial carries a picture of its LR schedule and losses: an Optuna artifact of the trial,
  shown full size by the trial's note (the artifact list shows only a thumbnail);
- the study carries plotly figures (the top trials' LR curves and val losses, schedule types compared)
  and a note with the best RunSpec as YAML; the process that shows the search's progress refreshes them.
"""

from __future__ import annotations

import logging
import math
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import FileSystemArtifactStore, get_all_artifact_meta, upload_artifact
from optuna.trial import FrozenTrial, TrialState

from lrsearch.base.errors import ConfigError
from lrsearch.base.stats import mean_interval
from lrsearch.base.text import LINE, clipped
from lrsearch.problem.spec import RunSpec
from lrsearch.store.certificate import Certificate, stored_certificate
from lrsearch.store.dashboard_formats import (
    artifact_path,
    save_figure,
    save_new_trial_note,
    save_study_note,
    study_attrs,
    study_note,
)
from lrsearch.store.optuna_private import storage_of
from lrsearch.store.records import EpochRecord, TrialCurves
from lrsearch.views.curves import best_loss_by_schedule, finished_curves, lr_curve, top_completed
from lrsearch.views.summary import current_certificate, format_params

_log = logging.getLogger(__name__)
Figure = dict[str, Any]  # a plotly figure as JSON data: {"data": [traces], "layout": {...}}

TRIAL_PICTURE = "lr-and-loss.svg"
TOP_K = 5
# The study's figures, by the id the dashboard stores each under (overwritten on every refresh).
FIGURE_IDS = ("top-lr-curves", "top-val-loss", "schedule-types")
CERTIFICATE_FIGURE = "certificate"


class TrialPictures:
    """Attaches the picture of a trial's curves to it as it ends (`Objective.pictures`): an artifact can
    only be added to a trial that is still running."""

    def __init__(self, folder: Path) -> None:
        self.store = FileSystemArtifactStore(str(folder))

    def __call__(
        self, trial: optuna.Trial, spec: RunSpec, records: list[EpochRecord], state: TrialState, steps_per_epoch: int
    ) -> None:
        from lrsearch.views.trial_svg import trial_svg

        curves = TrialCurves.of_run(trial.number, spec, records, state, steps_per_epoch)
        try:
            artifact_id = attach_trial_picture(trial, trial_svg(curves), self.store)
            save_new_trial_note(trial, trial_note(curves, artifact_path(trial, artifact_id)))
        except Exception as error:  # noqa: BLE001 - a picture must never fail the trial it shows
            _log.warning("trial %d: no picture attached: %s: %s", trial.number, type(error).__name__, error)


def attach_trial_picture(trial: optuna.Trial, svg: str, store: Any) -> str:
    """Upload the trial's picture (SVG text) as an artifact of the trial; returns its artifact id."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / TRIAL_PICTURE
        path.write_text(svg, encoding="utf-8")
        return upload_artifact(
            artifact_store=store, file_path=str(path), study_or_trial=trial, mimetype="image/svg+xml"
        )


def trial_note(curves: TrialCurves, picture_url: str) -> str:
    """The trial page's note: what the trial ran, and its picture (the artifact list shows only a thumbnail)."""
    spec, optimizer = curves.spec, curves.spec.optimizer
    return (
        f"**{spec.schedule.name}**({format_params(spec.schedule.params)}), base LR {spec.lr:.4g}, "
        f"{optimizer.name} (momentum {optimizer.momentum:.3g}, weight decay {optimizer.weight_decay:.3g})"
        f"\n\n![LR schedule and losses of trial {curves.number}]({picture_url})\n"
    )


def trial_pictures(study: optuna.Study, trial: FrozenTrial) -> list[str]:
    """Artifact ids of the pictures attached to a trial."""
    metas = get_all_artifact_meta(trial, storage=storage_of(study))  # a FrozenTrial knows no storage
    return [meta.artifact_id for meta in metas if meta.filename == TRIAL_PICTURE]


def study_figures(trials: list[FrozenTrial], k: int = TOP_K) -> dict[str, Figure]:
    """The study's plotly figures by id (empty before any trial finished)."""
    curves = finished_curves(trials)
    if not curves:
        return {}
    top = top_completed(curves, k)
    lr_traces, loss_traces = [], []
    for trial in top:
        xs, ys = lr_curve(trial)
        lr_traces.append(_scatter(xs, _rounded(ys), name=trial.label, line={"shape": "hv"}, mode="lines"))
        loss_traces.append(_scatter(trial.epochs, _rounded(trial.val_loss), name=trial.label, mode="lines+markers"))
    types = [
        {"type": "box", "x": _rounded(losses), "name": name, "boxpoints": "all", "orientation": "h"}
        for name, losses in best_loss_by_schedule(curves).items()
    ]
    epoch = {"title": {"text": "epoch"}}
    return {
        "top-lr-curves": _figure(
            lr_traces,
            f"LR schedules of the {len(top)} best trials",
            xaxis=epoch,
            yaxis={"type": "log", "title": {"text": "learning rate"}},
        ),
        "top-val-loss": _figure(loss_traces, f"val loss of the {len(top)} best trials", xaxis=epoch),
        "schedule-types": _figure(
            types,
            "best val loss per trial, by schedule type (lower is better)",
            showlegend=False,
            yaxis={"autorange": "reversed", "automargin": True},
        ),
    }


def certificate_figure(certificate: Certificate) -> Figure:
    """The certificate as a plotly figure: each schedule's test loss per fresh seed, mean and 95% interval."""
    traces = []
    for candidate in [c for c in certificate.ranked if c.shown_losses is not None]:
        losses = candidate.shown_losses
        test = mean_interval(losses)
        label = clipped(candidate.label) + (" (recommended)" if candidate.label == certificate.recommended else "")
        colour = "#1f77b4" if candidate.kind == "searched" else "#7f7f7f"
        shared = {"mode": "markers", "showlegend": False, "name": label}
        dots = _scatter(_rounded(losses), [label] * len(losses), marker={"color": colour, "opacity": 0.5}, **shared)
        mean = _scatter(
            [round(test.mean, 6)], [label], marker={"color": colour, "symbol": "diamond", "size": 10}, **shared
        )
        traces.append(dots)
        if test.half_width is not None:
            mean["error_x"] = {"type": "data", "array": [test.high - test.mean], "arrayminus": [test.mean - test.low]}
        traces.append(mean)
    title = (
        f"certificate: {certificate.shown_loss} at {certificate.seeds_text}, {certificate.epochs} epochs "
        f"({certificate.judge} epoch; mean, 95% interval)"
    )
    return _figure(traces, title, yaxis={"autorange": "reversed", "automargin": True})


def _scatter(xs: list[Any], ys: list[Any], **style: Any) -> dict[str, Any]:
    return {"type": "scatter", "x": xs, "y": ys, **style}


def _figure(traces: list[dict[str, Any]], title: str, **layout: Any) -> Figure:
    """A plotly figure as the plain data plotly.js draws (plotly's own Python objects validate every
    property as they are built: their first figure in a process took 1.4 s here, the search's time)."""
    return {
        "data": traces,
        "layout": {"title": {"text": title}, "margin": {"l": 60, "r": 20, "t": 50, "b": 40}, **layout},
    }


def best_note(study: optuna.Study, trials: list[FrozenTrial]) -> str | None:
    """The study note: the certificate's recommendation while it is current (`summary.current_certificate`);
    else the best trial so far and its RunSpec as YAML, ready to export and replay."""
    top = top_completed(finished_curves(trials), 1)
    if not top:
        return None
    best = top[0]
    certificate = current_certificate(study, trials)
    if certificate is not None:
        chosen = certificate.recommended_candidate
        if chosen is not None:
            return (
                f"## Recommended: {clipped(chosen.label)}, {certificate.epochs} epochs\n\n"
                f"{clipped(certificate.sentence, LINE)}.\n\n"
                + (f"{clipped(certificate.overfit, LINE)}.\n\n" if certificate.overfit else "")
                + (f"{clipped(certificate.edge, LINE)}.\n\n" if certificate.edge else "")
                + f"Certified at {certificate.seeds_text}, {certificate.epochs} epochs "
                f"(the search's {certificate.search_epochs}; each run judged at its {certificate.judge} epoch) "
                f"({clipped(certificate.when)}); the figure `certificate` shows every schedule's test loss. "
                f"`lrsearch export --study-name {study.study_name} -o best.yaml` writes this RunSpec; "
                "`lrsearch train --config best.yaml` replays it.\n\n"
                f"```yaml\n{chosen.run.to_yaml()}```\n"
            )
    return (
        f"## Best schedule so far: trial #{best.number}\n\n"
        f"{best.spec.schedule.name}, base LR {best.spec.lr:.4g}, final val loss {best.value:.6f}.\n"
        f"`lrsearch export --study-name {study.study_name} -o best.yaml` writes this RunSpec; "
        "`lrsearch train --config best.yaml` replays it.\n\n"
        f"```yaml\n{best.spec.to_yaml()}```\n"
    )


def refresh_study(study: optuna.Study) -> None:
    """Write the study's figures and note from its trials as they are now (the caller holds the figures
    lock, so the study's attributes read once at the start stay true for every figure written)."""
    trials = study.get_trials(deepcopy=False)
    stored = study_attrs(study)  # every trial's note is among them: read once, not once a figure
    for figure_id, figure in study_figures(trials).items():
        save_figure(study, figure_id, figure, stored)
    certificate = stored_certificate(study)
    if isinstance(certificate, Certificate):
        save_figure(study, CERTIFICATE_FIGURE, certificate_figure(certificate), stored)
    note = best_note(study, trials)
    if note is not None and note != study_note(study, stored):
        save_study_note(study, note, stored)


def figures_lock(storage_url: str, study_name: str) -> Any:
    """Held while the study's figures are written: two commands on one study must not interleave the
    chunks a figure is stored in."""
    from lrsearch.store.storage import admission_lock

    return admission_lock(storage_url, study_name, role="figures")


def refresh_locked(study: optuna.Study, storage_url: str) -> None:
    """`refresh_study` under the study's figures lock: after a search's refresher stopped (a certificate
    stored since, say)."""
    with figures_lock(storage_url, study.study_name):
        refresh_study(study)


class StudyRefresher:
    """Refreshes a study's figures at most every `interval` seconds, in a background thread, while a
    search runs; `study_lock` keeps two commands on one study from writing the figures at once."""

    def __init__(self, study: optuna.Study, study_lock: Any, interval: float = 5.0) -> None:
        self._study, self._lock, self._interval = study, study_lock, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._finished_seen = -1

    def __enter__(self) -> StudyRefresher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._refresh_quietly()  # the last trials' results, whatever the interval

    def refresh(self) -> None:
        finished = sum(1 for t in self._study.get_trials(deepcopy=False) if t.state.is_finished())
        if finished != self._finished_seen:
            with self._lock:
                refresh_study(self._study)
            self._finished_seen = finished

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._refresh_quietly()

    def _refresh_quietly(self) -> None:
        try:
            self.refresh()
        except Exception as error:  # noqa: BLE001 - a figure must never stop a search; the next refresh retries
            _log.warning("the study's figures were not refreshed: %s: %s", type(error).__name__, error)


@contextmanager
def serving(storage: Any, artifacts: Path | None, host: str, port: int) -> Iterator[Any]:
    """Run optuna-dashboard on the storage (and the trials' pictures) in a thread while in the block.

    Raises:
        ConfigError: the port is taken or the host can't be bound.
    """
    import socketserver
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from optuna_dashboard import wsgi

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
            pass  # one line per request would bury the address the user needs

    class ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
        daemon_threads = True  # the page polls the API; one slow request must not stall the others

    store = FileSystemArtifactStore(str(artifacts)) if artifacts is not None and artifacts.is_dir() else None
    app = _fitting_the_window(wsgi(storage, artifact_store=store))
    try:
        server = make_server(host, port, app, server_class=ThreadingServer, handler_class=QuietHandler)
    except OSError as error:
        raise ConfigError(f"--port: cannot listen on {host}:{port}: {error.strerror}") from None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    with warnings.catch_warnings():  # the filters are the process's: the server's threads see them too
        # Optuna warns on every importance request of a study whose schedules have parameters of their
        # own ("Some regimes for parameter ... have less than 2 trials"): a page's poll would fill stderr.
        warnings.filterwarnings("ignore", message="Some regimes for parameter", category=UserWarning)
        thread.start()
        try:
            yield server
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


# optuna-dashboard's trial page was as wide as its widest user attribute (`run_spec`, the curves: one
# line each, in boxes of their own that scroll): its <main>, a flex item, keeps the `min-width: auto` of
# its content, 4,200 px at a 1280-px window. At `min-width: 0` it is the window's width, and each long
# attribute scrolls in its box, as the dashboard's own style means it to.
PAGE_STYLE = b"<style>main{min-width:0}</style>"
_CONDITIONAL = ("HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE", "HTTP_IF_RANGE", "HTTP_RANGE")


def _fitting_the_window(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """The dashboard's WSGI app whose page (the HTML of every /dashboard address) carries `PAGE_STYLE`."""

    def styled(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not environ.get("PATH_INFO", "").startswith("/dashboard"):
            return app(environ, start_response)
        for name in _CONDITIONAL:  # the whole page each time: a copy cached unstyled, or a part, won't do
            environ.pop(name, None)
        answer: dict[str, Any] = {}

        def keep(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            answer.update(status=status, headers=headers, exc_info=exc_info)
            return answer.setdefault("written", []).append

        body = app(environ, keep)
        try:
            page = b"".join([*answer.get("written", []), *body])
        finally:
            if hasattr(body, "close"):
                body.close()
        headers = answer["headers"]
        if b"</head>" in page and any(k.lower() == "content-type" and "text/html" in v for k, v in headers):
            page = page.replace(b"</head>", PAGE_STYLE + b"</head>", 1)
            dropped = ("content-length", "etag", "last-modified")
            headers = [(k, v) for k, v in headers if k.lower() not in dropped] + [("Content-Length", str(len(page)))]
        start_response(answer["status"], headers, answer["exc_info"])
        return [page]

    return styled


def _rounded(values: list[float]) -> list[float | None]:
    """Five significant digits: plenty on a screen, and the figure's JSON (stored in the study) stays
    small. A value that isn't finite is null, as plotly writes it (JSON has no NaN)."""
    return [float(f"{value:.5g}") if math.isfinite(value) else None for value in values]
