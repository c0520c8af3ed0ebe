"""The progress bar of a search, for the command line and for `lrsearch.search(progress=True)`."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class TrialProgress:
    """A progress bar of the trials this run finished, pruned ones among them, the study's best value
    and elapsed time, read from the study (so it counts every worker's trials)."""

    def __init__(self, total: int | None, study: optuna.Study, before: int) -> None:
        self._study, self._before = study, before
        self._progress = Progress(
            TextColumn("trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("best {task.fields[best]}"),
            TextColumn("pruned {task.fields[pruned]}"),
            TimeElapsedColumn(),
            transient=False,
        )
        self._task = self._progress.add_task("trials", total=total, best="-", pruned=0)

    def __enter__(self) -> TrialProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.refresh()
        self._progress.stop()

    def refresh(self, study: optuna.Study | None = None) -> None:
        """Show the study as it is now, read through `study` (the same study, opened by the worker that
        calls this: its reads are the cheaper ones) or the bar's own."""
        from lrsearch.trials.budget import trials_of_run

        trials = (study or self._study).get_trials(deepcopy=False)
        # A dead worker's trial and its retry are one trial of the budget, and so one step of the bar.
        ours = [trial for trial in trials_of_run(trials, self._before) if trial.state.is_finished()]
        values = [trial.value for trial in trials if trial.state == TrialState.COMPLETE]
        self._progress.update(
            self._task,
            completed=len(ours),
            best=f"{min(values):.4f}" if values else "-",
            pruned=sum(trial.state == TrialState.PRUNED for trial in ours),
        )
