"""The `lrsearch` command: each command parses its options and calls the library.

This is the only module that prints or exits. Mistakes a user can make arrive as `ConfigError` and leave
as one line on stderr with exit code 2. Heavy imports (torch, optuna) happen inside the commands, so
`lrsearch --help` is instant.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from lrsearch.errors import ConfigError, Interrupted

app = typer.Typer(
    help="Find the learning-rate schedule to train with: an Optuna search over torch LR schedulers.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # usage errors as one plain "Error: ..." line
)

F = TypeVar("F", bound=Callable[..., Any])

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def _user_errors_exit_2(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ConfigError as error:
            typer.echo(f"Error: {error}", err=True)
            raise typer.Exit(EXIT_USER_ERROR) from None

    return wrapper  # type: ignore[return-value]


def _console() -> Any:
    from rich.console import Console

    # Piped into a file or CI log, rich would assume 80 columns and fold the tables' parameters.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def _drop_interrupt_traceback(record: Any) -> bool:
    if record.exc_info and issubclass(record.exc_info[0], KeyboardInterrupt | Interrupted):
        record.exc_info, record.exc_text = None, None  # Ctrl-C is no crash: its one-line notice will do
    return True


def _quiet_optuna() -> None:
    import logging
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # failures still show; per-trial chatter doesn't
    for handler in logging.getLogger("optuna").handlers:
        if _drop_interrupt_traceback not in handler.filters:
            handler.addFilter(_drop_interrupt_traceback)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


StudyNameOption = Annotated[str | None, typer.Option("--study-name", help="Study to create or resume.")]
StorageOption = Annotated[str | None, typer.Option(help="Optuna storage URL [default: sqlite:///studies/lrsearch.db].")]


@app.command()
@_user_errors_exit_2
def optimize(
    trials: Annotated[int | None, typer.Option(help="Trials to add to the study [default: 50].")] = None,
    timeout: Annotated[float | None, typer.Option(help="Stop starting trials after this many seconds.")] = None,
    study_name: StudyNameOption = None,
    storage: StorageOption = None,
    config: Annotated[
        Path | None, typer.Option(help="Search configuration YAML [default: studies/default.yaml].")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seeds the sampler, the data and every run.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda or cuda:N [default: auto].")] = None,
    sampler: Annotated[str | None, typer.Option(help="tpe, random, gp or qmc [default: tpe].")] = None,
    pruner: Annotated[
        str | None,
        typer.Option(help="median, successive-halving, hyperband, patient, wilcoxon or none [default: median]."),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs per trial [default: 20].")] = None,
    export: Annotated[
        Path | None, typer.Option(help="Where to write the best run [default: studies/<study>-best.yaml].")
    ] = None,
) -> None:
    """Search LR schedules; re-running with the same study name adds trials to it."""
    from lrsearch.config import load_config
    from lrsearch.data import load_data
    from lrsearch.device import pin_threads, resolve_device
    from lrsearch.objective import Objective
    from lrsearch.study import open_study, run_trials, stop_on_interrupt

    overrides = {
        "study.trials": trials,
        "study.timeout": timeout,
        "study.name": study_name,
        "study.storage": storage,
        "study.seed": seed,
        "study.device": device,
        "study.sampler": sampler,
        "study.pruner": pruner,
        "study.export": export,
        "train.epochs": epochs,
    }
    settings = load_config(config, overrides)
    torch_device = resolve_device(settings.study.device)
    pin_threads(torch_device)
    _quiet_optuna()
    study = open_study(settings)
    data = load_data(settings.data, settings.study.seed, torch_device)
    before = len(study.get_trials(deepcopy=False))
    typer.echo(
        f"study {settings.study.name!r} in {settings.study.storage} ({before} trials so far), "
        f"{settings.train.epochs} epochs a trial on {torch_device}"
    )
    started = time.perf_counter()
    interrupted = False
    with _TrialProgress(settings.study.trials) as progress, stop_on_interrupt() as stop:
        try:
            run_trials(
                study,
                Objective(settings, data, torch_device, stop),
                settings.study.trials,
                settings.study.timeout,
                callbacks=[progress.update],
            )
        except (Interrupted, KeyboardInterrupt):
            interrupted = True
    elapsed = time.perf_counter() - started
    typer.echo(f"{'interrupted' if interrupted else 'finished'} after {elapsed:.1f} s")
    _print_report(study, settings.study.export_path)
    if interrupted:
        typer.echo(f"re-run with --study-name {settings.study.name} to add more trials")
        raise typer.Exit(EXIT_INTERRUPTED)


class _TrialProgress:
    """A progress bar of trials done, best value so far and elapsed time."""

    def __init__(self, total: int | None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

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
        self._pruned = 0

    def __enter__(self) -> _TrialProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, study: Any, trial: Any) -> None:
        from optuna.trial import TrialState

        self._pruned += trial.state == TrialState.PRUNED
        try:
            best = f"{study.best_value:.4f}"
        except ValueError:  # no completed trial yet
            best = "-"
        self._progress.update(self._task, advance=1, best=best, pruned=self._pruned)


def _print_report(study: Any, export_path: Path) -> None:
    from lrsearch.report import best_lines, counts_line, export_best, summarize, top_table

    summary = summarize(study)
    typer.echo(counts_line(summary))
    if summary.best is None:
        typer.echo("no completed trial yet: nothing to export")
        return
    typer.echo("\n".join(best_lines(summary.best)))
    _console().print(top_table(summary))
    export_best(study, export_path)
    typer.echo(f"best run written to {export_path} (replay: lrsearch train --config {export_path})")


@app.command()
@_user_errors_exit_2
def export(
    study_name: Annotated[str, typer.Option("--study-name", help="The study to export.")] = "default",
    storage: StorageOption = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the YAML.")] = Path("best.yaml"),
) -> None:
    """Write the best trial of a study as a RunSpec YAML (replay it with `lrsearch train --config`)."""
    from lrsearch.config import DEFAULT_STORAGE
    from lrsearch.report import export_best
    from lrsearch.study import load_existing_study

    study = load_existing_study(study_name, storage or DEFAULT_STORAGE)
    spec = export_best(study, output)
    typer.echo(f"wrote {output}: {spec.schedule.name}, base lr {spec.lr:.4g}")


@app.command("train")
@_user_errors_exit_2
def train_command(
    config: Annotated[Path, typer.Option(help="A RunSpec YAML, as `lrsearch export` writes.")],
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "cpu",
    baselines: Annotated[bool, typer.Option(help="Also train the two baselines and compare.")] = True,
) -> None:
    """Replay one run, then compare its test loss with a constant LR and the classic StepLR."""
    from rich.table import Table

    from lrsearch.baselines import baseline_specs
    from lrsearch.data import load_data
    from lrsearch.device import pin_threads, resolve_device
    from lrsearch.spec import load_run_spec
    from lrsearch.train import Diverged, EpochRecord, History, train

    spec = load_run_spec(config)
    torch_device = resolve_device(device)
    pin_threads(torch_device)
    data = load_data(spec.data, spec.seed, torch_device)

    def print_epoch(record: EpochRecord) -> None:
        typer.echo(
            f"Epoch [{record.epoch}/{spec.epochs}], Learning Rate: {record.lr:.6g}, "
            f"Train Loss: {record.train_loss:.4f}, Val Loss: {record.val_loss:.4f}, "
            f"Val Accuracy: {record.val_accuracy:.4f}"
        )

    runs = {f"{spec.schedule.name} (this run)": spec}
    if baselines:
        runs |= baseline_specs(spec)
    results: dict[str, History | str] = {}
    for label, run in runs.items():
        try:
            results[label] = train(
                run, data, torch_device, on_epoch=print_epoch if run is spec else None, evaluate_test=True
            )
        except Diverged as diverged:
            results[label] = f"diverged: {diverged}"
        if run is spec and isinstance(results[label], History):
            typer.echo(f"final val loss: {results[label].final.val_loss:.6f}")

    table = Table(title=f"test split ({len(data.test)} rows), seed {spec.seed}")
    for column in ("run", "test loss", "test accuracy", "final val loss"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for label, result in results.items():
        if isinstance(result, str):
            table.add_row(label, result, "-", "-")
        else:
            table.add_row(
                label, f"{result.test_loss:.4f}", f"{result.test_accuracy:.4f}", f"{result.final.val_loss:.4f}"
            )
    _console().print(table)


@app.command()
def schedulers(
    epochs: Annotated[int, typer.Option(min=1, help="Show the ranges for runs of this many epochs.")] = 20,
) -> None:
    """List every schedule in the registry with its searched parameters and ranges."""
    from lrsearch.schedules import SCHEDULES, Budget, searched_ranges

    typer.echo(
        f"Schedules and their searched ranges for {epochs}-epoch runs. A trial parameter is named\n"
        "SCHEDULE.PARAM (pin one with search.fixed in the config, e.g. {StepLR.gamma: 0.5}).\n"
    )
    for schedule in SCHEDULES.values():
        typer.echo(f"{schedule.name}  (steps every {schedule.step_on})\n    {schedule.description}")
        for searched in searched_ranges(schedule, Budget(epochs, steps_per_epoch=1)):
            typer.echo(f"    - {searched}")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
