"""The progress of a search and of its certification, for the command line and the Python API: rich's
bar, and the same steps as events for a caller's own `callback`.

In a terminal the bar is rich's live one. In a notebook (Jupyter, VS Code, Colab) rich's live display
needs ipywidgets, which a notebook need not have; there the bar is one output that IPython's display
updates in place (`display_id`), rich rendering itself as HTML, as every rich object does in a notebook.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import optuna
from optuna.trial import TrialState
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn

NOTEBOOK_EVERY_S = 0.2  # a notebook's output is redrawn at most this often (and once at the end)


@dataclass(frozen=True)
class ProgressEvent:
    """A step of `lrsearch.search` or `lrsearch.certify`, as a `callback=` receives it.

    Attributes:
        phase: "search" (trials of this run ended) or "certify" (run-epochs certification trained).
        done: how many so far; it only grows. A search counts its pruned and failed trials too, and is
            looked at after a trial ends at most every half second, so `done` may grow by several.
        total: of how many. A search's is the trials it adds (None: no count, as for a worker's).
            Certification's grows as its LR sweeps and its race add runs; `done <= total` always, and
            they are equal when it ends.
        best: the study's lowest val loss so far, all workers' trials included (search); None before a
            trial completes, and in certification.
    """

    phase: Literal["search", "certify"]
    done: int
    total: int | None
    best: float | None = None


ProgressCallback = Callable[[ProgressEvent], None]


class _Bar:
    """One rich progress bar: live in a terminal, one output updated in place in a notebook, or kept
    without being shown (`shown=False`, for a callback alone)."""

    def __init__(self, *columns: str | ProgressColumn, total: int | None, shown: bool, **fields: Any) -> None:
        self.rich = Progress(*columns, transient=False)
        self.task = self.rich.add_task("", total=total, **fields)
        self._where = "nowhere" if not shown else "notebook" if self.rich.console.is_jupyter else "terminal"
        self._output: Any = None  # the notebook's display handle
        self._drawn_at = -float("inf")

    def start(self) -> None:
        if self._where == "terminal":
            self.rich.start()
        elif self._where == "notebook":
            from IPython.display import display

            self._output = display(self.rich, display_id=True)
            self._drawn_at = time.monotonic()

    def update(self, **fields: Any) -> None:
        self.rich.update(self.task, **fields)
        if self._output is not None and time.monotonic() - self._drawn_at >= NOTEBOOK_EVERY_S:
            self._draw()

    def stop(self) -> None:
        if self._where == "terminal":
            self.rich.stop()
        elif self._output is not None:
            self._draw()

    def _draw(self) -> None:
        self._output.update(self.rich)
        self._drawn_at = time.monotonic()


class TrialProgress:
    """A progress bar of the trials this run finished, pruned ones among them, the study's best value
    and elapsed time, read from the study (so it counts every worker's trials).

    Args:
        shown: draw the bar; False keeps it for `callback` alone.
        callback: called with a `ProgressEvent` each time the count of ended trials grows.
    """

    def __init__(
        self,
        total: int | None,
        study: optuna.Study,
        before: int,
        *,
        shown: bool = True,
        callback: ProgressCallback | None = None,
    ) -> None:
        self._study, self._before, self._total, self._callback = study, before, total, callback
        self.bar = _Bar(
            TextColumn("trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("best {task.fields[best]}"),
            TextColumn("pruned {task.fields[pruned]}"),
            TimeElapsedColumn(),
            total=total,
            shown=shown,
            best="-",
            pruned=0,
        )
        self._reported = 0

    def __enter__(self) -> TrialProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.refresh()
        self.bar.stop()

    def refresh(self, study: optuna.Study | None = None) -> None:
        """Show the study as it is now, read through `study` (the same study, opened by the worker that
        calls this: its reads are the cheaper ones) or the bar's own."""
        from lrsearch.trials.budget import trials_of_run

        trials = (study or self._study).get_trials(deepcopy=False)
        # A dead worker's trial and its retry are one trial of the budget, and so one step of the bar.
        ours = [trial for trial in trials_of_run(trials, self._before) if trial.state.is_finished()]
        values = [trial.value for trial in trials if trial.state == TrialState.COMPLETE]
        best = min(values) if values else None
        self.bar.update(
            completed=len(ours),
            best="-" if best is None else f"{best:.4f}",
            pruned=sum(trial.state == TrialState.PRUNED for trial in ours),
        )
        if self._callback is not None and len(ours) > self._reported:
            self._reported = len(ours)
            self._callback(ProgressEvent("search", len(ours), self._total, best))


class CertifyProgress:
    """A progress bar of the run-epochs certification trained, of those it has planned so far; called
    as certification's `progress(done, total)`.

    Args:
        shown: draw the bar; False keeps it for `callback` alone.
        callback: called with a `ProgressEvent` after each epoch certification trains.
    """

    def __init__(self, *, shown: bool = True, callback: ProgressCallback | None = None) -> None:
        self._callback = callback
        self.bar = _Bar(
            TextColumn("certifying"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("run-epochs"),
            TimeElapsedColumn(),
            total=None,
            shown=shown,
        )

    def __enter__(self) -> CertifyProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def __call__(self, done: int, total: int) -> None:
        self.bar.update(completed=done, total=total)
        if self._callback is not None:
            self._callback(ProgressEvent("certify", done, total))
