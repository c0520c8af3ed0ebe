"""The `lrsearch` command: each command parses its options and calls the library.

This is the only module that prints or exits. Mistakes a user can make arrive as `ConfigError` and leave
as one line on stderr with exit code 2. Heavy imports (torch, optuna) happen inside the commands, so
`lrsearch --help` is instant.
"""

from __future__ import annotations

import functools
import gc
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from lrsearch.base.errors import ConfigError, StorageFault, fault_line, is_fault
from lrsearch.base.logs import quiet_optuna

app = typer.Typer(
    help="Find the learning-rate schedule to train with: an Optuna search over torch LR schedulers.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # usage errors as one plain "Error: ..." line
)

F = TypeVar("F", bound=Callable[..., Any])

EXIT_FAULT = 1
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell tool whose reader went away


def _errors_in_one_line(command: F) -> F:
    """Mistakes a user can make become one line and exit code 2; a storage or file that fails under the
    command (disk full, read-only, server gone) one line and exit code 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ConfigError as error:
            typer.echo(f"Error: {error}", err=True)
            raise typer.Exit(EXIT_USER_ERROR) from None
        except StorageFault as error:
            typer.echo(f"Error: {error}", err=True)
            raise typer.Exit(EXIT_FAULT) from None
        except BrokenPipeError:  # `lrsearch ... | head`: the reader has what it wanted
            sys.stdout = None  # type: ignore[assignment]  # nothing more to flush at exit
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        except Exception as error:
            if not is_fault(error):
                raise
            from lrsearch.store.storage import scrubbed

            typer.echo(f"Error: {scrubbed(fault_line(error), kwargs.get('storage') or '')}", err=True)
            raise typer.Exit(EXIT_FAULT) from None

    return wrapper  # type: ignore[return-value]


def _console() -> Any:
    from rich.console import Console

    # Piped into a file or CI log, rich would assume 80 columns and fold the tables' parameters.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


StudyNameOption = Annotated[
    str | None,
    typer.Option(
        "--study-name",
        help="Study to create or resume [default: the config's, else named after the task: default for "
        "classification, digits for digits, module.function for module:function].",
    ),
]
StorageOption = Annotated[
    str | None,
    typer.Option(help="sqlite:///FILE, postgresql://..., or a journal FILE [default: sqlite:///studies/lrsearch.db]."),
]
JobsOption = Annotated[int | None, typer.Option(help="Worker processes on this machine [default: 1].")]
StackOption = Annotated[
    str | None, typer.Option(help="Trials each worker trains at once; 1 trains one at a time [default: auto].")
]
TaskOption = Annotated[
    str | None,
    typer.Option(
        help="A built-in task (`lrsearch tasks`) or your own, module:function; your own task is code, and it "
        "runs only when this option names it [default: classification, or the config's]."
    ),
]
StudyTaskOption = Annotated[
    str | None,
    typer.Option(help="The study's own task (module:function), when it is one: naming it runs its code here."),
]
DevicesOption = Annotated[
    str | None,
    typer.Option("--devices", "--device", help="auto (every GPU, else CPU), cpu, or cuda:0,cuda:1 [default: auto]."),
]


class JudgeAt(str, Enum):
    last = "last"
    best = "best"


# `--seeds`, a count, read as `--seed` mistyped: renamed, still taken, with a line saying so.
OldSeedsOption = Annotated[int | None, typer.Option("--seeds", hidden=True, min=1, max=100)]
OldFreshSeedsOption = Annotated[int | None, typer.Option("--seeds", hidden=True, min=2, max=100)]


def _renamed(old: int | None, flag: str, new: int | None) -> int | None:
    """The value of a renamed flag: the new name's, else the old name's (said in one line)."""
    if old is None:
        return new
    used = old if new is None else new
    typer.echo(f"--seeds is now {flag} (a count of seeds, not a run's --seed): taking {flag} {used}", err=True)
    return used


JudgeOption = Annotated[
    JudgeAt | None,
    typer.Option(
        help="Judge each run at its last epoch (the exported run, trained as it is) or at its best val epoch "
        "(what a checkpoint or early stopping keeps) [default: last].",
    ),
]


@app.command()
@_errors_in_one_line
def optimize(
    trials: Annotated[
        int | None, typer.Option(help="Trials to add to the study, all workers together [default: 50].")
    ] = None,
    timeout: Annotated[float | None, typer.Option(help="Stop starting trials after this many seconds.")] = None,
    study_name: StudyNameOption = None,
    storage: StorageOption = None,
    config: Annotated[
        Path | None, typer.Option(help="Search configuration YAML [default: studies/default.yaml].")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seeds the sampler, the data and every run.")] = None,
    jobs: JobsOption = None,
    stack: StackOption = None,
    devices: DevicesOption = None,
    sampler: Annotated[str | None, typer.Option(help="tpe, random, gp or qmc [default: tpe].")] = None,
    pruner: Annotated[
        str | None,
        typer.Option(
            help="quartile, median, successive-halving, hyperband, patient, wilcoxon or none [default: quartile]."
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs per trial [default: 20].")] = None,
    task: TaskOption = None,
    export: Annotated[
        Path | None, typer.Option(help="Where to write the recommended run [default: studies/<study>-best.yaml].")
    ] = None,
    seeds_per_trial: Annotated[
        int | None, typer.Option(help="Seeds each trial trains at (one stack); it reports their mean [default: 1].")
    ] = None,
    old_seeds: OldSeedsOption = None,
    certify: Annotated[
        bool | None,
        typer.Option(
            "--certify/--no-certify",
            help="After the search, train its best trial and tuned control schedules at fresh seeds, and "
            "recommend what the numbers support [default: certify].",
        ),
    ] = None,
    certify_epochs: Annotated[
        int | None,
        typer.Option(
            help="Certify at the length you will train for [default: the length the study was last certified "
            "at, else the search's --epochs]."
        ),
    ] = None,
    judge: JudgeOption = None,
) -> None:
    """Search LR schedules; re-running with the same study name adds trials to it."""
    from lrsearch.base.paths import check_writable
    from lrsearch.problem.config import DEFAULT_CONFIG, load_config
    from lrsearch.problem.tasks import require_named
    from lrsearch.searching.run import open_search

    overrides = {
        "study.trials": trials,
        "study.timeout": timeout,
        "study.name": study_name,
        "study.storage": storage,
        "study.seed": seed,
        "study.jobs": jobs,
        "study.stack": stack,
        "study.devices": devices,
        "study.sampler": sampler,
        "study.pruner": pruner,
        "study.export": export,
        "train.epochs": epochs,
        "data.task": task,
        "search.seeds_per_trial": _renamed(old_seeds, "--seeds-per-trial", seeds_per_trial),
        "study.certify": certify,
        "study.certify_epochs": certify_epochs,
        "study.judge": None if judge is None else judge.value,
    }
    settings = load_config(config, overrides)
    require_named(settings.data.task, task, str(config or DEFAULT_CONFIG))
    check_writable(settings.study.export_path, "--export")  # before the search, not after it
    with open_search(settings) as (study, torch_devices):
        before = len(study.get_trials(deepcopy=False))
        interrupted = _run_search(settings, study, torch_devices, False, before, settings.study.trials)
        if _print_summary(study):
            if not interrupted and settings.study.certify:
                interrupted = _certify(
                    study,
                    settings,
                    torch_devices[0],
                    seeds=settings.study.certify_seeds,
                    top=settings.study.certify_top,
                    epochs=settings.study.certify_epochs,
                    judge=settings.study.judge,
                    length_flag="--certify-epochs",
                )
            _print_export(study, settings.study.export_path, settings.study.storage)
    if interrupted:
        typer.echo(f"re-run with --study-name {settings.study.name} to add more trials")
        raise typer.Exit(EXIT_INTERRUPTED)
    _fail_if_nothing_completed(study, before)


@app.command()
@_errors_in_one_line
def worker(
    study_name: Annotated[str, typer.Option("--study-name", help="The study to work on.")] = "default",
    storage: StorageOption = None,
    jobs: JobsOption = None,
    stack: StackOption = None,
    devices: DevicesOption = None,
    timeout: Annotated[float | None, typer.Option(help="Stop starting trials after this many seconds.")] = None,
    task: StudyTaskOption = None,
) -> None:
    """Join a study that `lrsearch optimize` started (on this or another machine) and run its trials
    until its trial budget is spent. The search settings come from the study itself."""
    from lrsearch.problem.config import DEFAULT_STORAGE
    from lrsearch.problem.tasks import require_named
    from lrsearch.searching.run import check_search
    from lrsearch.searching.study import load_existing_study, stored_config
    from lrsearch.views.summary import best_lines, best_score_line, counts_line, summarize

    url = storage or DEFAULT_STORAGE
    quiet_optuna()
    study = load_existing_study(study_name, url)
    flags = {"study.storage": url, "study.jobs": jobs, "study.stack": stack, "study.devices": devices}
    flags["study.timeout"] = timeout
    settings = stored_config(study, flags)
    require_named(settings.data.task, task, f"study {study_name!r}")
    torch_devices = check_search(settings)
    before = len(study.get_trials(deepcopy=False))
    # Workers sample with fresh seeds: a fixed one would repeat what the first machine's workers propose.
    interrupted = _run_search(settings, study, torch_devices, True, before, total=None)
    summary = summarize(study)
    typer.echo(counts_line(summary))
    if summary.best is not None:
        typer.echo("\n".join(best_lines(summary.best)))
    if best_score_line(summary) is not None:
        typer.echo(best_score_line(summary))
    if interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


def _run_search(settings: Any, study: Any, devices: list[Any], joining: bool, before: int, total: int | None) -> bool:
    """Run the study's workers with a progress bar of `total` trials; True when Ctrl-C stopped them.

    Args:
        joining: the workers join a study another command started (`seeds.sampler_seed`).
        before: trials the study held before; the bar counts the ones after.
    """
    from lrsearch.base.torch_private import skip_dynamo_on_optimizer_setup
    from lrsearch.searching.run import SearchRun
    from lrsearch.store.storage import shown_url
    from lrsearch.views.search_figures import SearchFigures

    skip_dynamo_on_optimizer_setup()  # this command's process builds optimizers, and compiles nothing
    search = SearchRun(settings, study, devices, joining=joining, figures=SearchFigures.of(settings))
    jobs, stacks = len(search.setups), {setup.stack for setup in search.setups}
    typer.echo(
        f"study {settings.study.name!r} in {shown_url(settings.study.storage)} ({before} trials so far), "
        f"{settings.train.epochs} epochs a trial, {jobs} worker{'s' if jobs > 1 else ''} on "
        + ", ".join(setup.device for setup in search.setups)
        + ("" if stacks == {1} else f", {'/'.join(map(str, sorted(stacks)))} trials at once each")
    )
    for why in dict.fromkeys(setup.why for setup in search.setups if setup.why):
        typer.echo(why)
    from lrsearch.searching.progress import TrialProgress

    with TrialProgress(total, study, before) as progress:
        interrupted = search.run(on_progress=progress.refresh)
    typer.echo(f"{'interrupted' if interrupted else 'finished'} after {search.seconds:.1f} s")
    if jobs > 1 and search.reports:
        typer.echo("trials per worker: " + ", ".join(f"{r.worker} on {r.device}: {r.trials}" for r in search.reports))
    return interrupted


def _certify(
    study: Any,
    settings: Any,
    device: Any,
    *,
    seeds: int,
    top: int,
    epochs: int | None,
    judge: str = "last",
    length_flag: str = "--epochs",
) -> bool:
    """Certify the study's answer with a progress bar, and print what it found; True when Ctrl-C stopped
    it (the search's trials are all stored: `lrsearch certify` can run it again)."""
    from lrsearch.base.torch_private import skip_dynamo_on_optimizer_setup
    from lrsearch.searching.progress import CertifyProgress
    from lrsearch.searching.run import certify_and_show
    from lrsearch.store.certificate import kept_length
    from lrsearch.views.search_figures import SearchFigures
    from lrsearch.views.summary import certificate_lines, certificate_table

    skip_dynamo_on_optimizer_setup()
    if epochs is None and (kept := kept_length(study)) is not None:
        epochs = kept
        typer.echo(
            f"certifying at {kept} epochs, the length this study was last certified at "
            f"({length_flag} N chooses another; the search's is {settings.train.epochs})"
        )
    try:
        with CertifyProgress() as bar:
            certificate = certify_and_show(
                study,
                settings,
                device,
                seeds=seeds,
                top=top,
                epochs=epochs,
                judge=judge,
                progress=bar,
                figures=SearchFigures.of(settings),
            )
    except KeyboardInterrupt:
        typer.echo(f"certification interrupted; run it again: lrsearch certify --study-name {study.study_name}")
        return True
    console = _console()
    console.print(certificate_table(certificate, console.width))
    typer.echo("\n".join(certificate_lines(certificate)))
    return False


def _fail_if_nothing_completed(study: Any, before: int) -> None:
    """A search whose trials all failed, diverged or were pruned found nothing: say why, and exit non-zero.
    Where the pruner ended them all beside a study's completed trials, it judged them worse than those: a
    few trials added to a study end so (3 in 4 do, one by one, under the quartile)."""
    from optuna.trial import TrialState

    from lrsearch.store.records import DIVERGED, FAIL_REASON, PRUNED_REASON
    from lrsearch.trials.budget import trials_of_run

    trials = study.get_trials(deepcopy=False)
    ran = [trial for trial in trials_of_run(trials, before) if trial.state.is_finished()]
    if not ran or any(trial.state == TrialState.COMPLETE for trial in ran):
        return
    failed = [trial for trial in ran if trial.state == TrialState.FAIL]
    diverged = [trial for trial in ran if str(trial.user_attrs.get(PRUNED_REASON, "")).startswith(DIVERGED)]
    if not failed and not diverged and any(trial.state == TrialState.COMPLETE for trial in trials):
        ended = "the one trial" if len(ran) == 1 else f"all {len(ran)} trials"
        typer.echo(f"the pruner ended {ended} of this run: the study's completed trials were better")
        return
    why = ""
    if failed:
        why = f"; the first failure: {failed[0].user_attrs.get(FAIL_REASON, 'no reason recorded')}"
    elif diverged:
        why = f"; the first divergence: {diverged[0].user_attrs[PRUNED_REASON].removeprefix(DIVERGED)}"
    typer.echo(
        f"Error: none of the {len(ran)} trials of this run completed ({len(failed)} failed, "
        f"{len(ran) - len(failed)} pruned){why}",
        err=True,
    )
    raise typer.Exit(EXIT_FAULT)


def _print_summary(study: Any) -> bool:
    """The trial counts, the best trial and the top table; False when no trial completed."""
    from lrsearch.views.summary import best_lines, best_score_line, counts_line, summarize, top_table

    summary = summarize(study)
    typer.echo(counts_line(summary))
    if summary.best is None:
        typer.echo("no completed trial yet: nothing to export")
        return False
    typer.echo("\n".join(best_lines(summary.best)))
    _console().print(top_table(summary))
    score_line = best_score_line(summary)
    if score_line is not None:
        typer.echo(score_line)
    return True


def _print_export(study: Any, export_path: Path, storage: str) -> None:
    from lrsearch.base.storage_url import parse_storage_url
    from lrsearch.problem.config import DEFAULT_STORAGE
    from lrsearch.store.storage import shown_url
    from lrsearch.views.summary import current_certificate, export_best

    spec = export_best(study, export_path)
    certified = current_certificate(study) is not None
    typer.echo(f"{'recommended' if certified else 'best'} run written to {export_path}")
    if (
        parse_storage_url(storage).kind == "memory"
    ):  # the study ends with this process: nothing to record the replay beside
        typer.echo(f"replay it beside the baselines: lrsearch train --config {export_path}{spec.replay_options}")
        return
    record = f"{spec.replay_options} --study-name {study.study_name}" + (
        "" if storage == DEFAULT_STORAGE else f" --storage {shown_url(storage)}"
    )
    typer.echo(
        f"replay it beside the baselines, recorded for `lrsearch report`: lrsearch train --config {export_path}{record}"
    )


@app.command()
@_errors_in_one_line
def export(
    study_name: Annotated[str, typer.Option("--study-name", help="The study to export.")] = "default",
    storage: StorageOption = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the YAML.")] = Path("best.yaml"),
) -> None:
    """Write a study's recommended run as a RunSpec YAML: its certificate's recommendation, else its best
    trial (replay it with `lrsearch train --config`)."""
    from lrsearch.base.paths import check_writable
    from lrsearch.problem.config import DEFAULT_STORAGE
    from lrsearch.searching.study import load_existing_study
    from lrsearch.views.summary import current_certificate, export_best

    check_writable(output, "--output")
    study = load_existing_study(study_name, storage or DEFAULT_STORAGE)
    spec = export_best(study, output)
    what = (
        "the certificate's recommendation"
        if current_certificate(study) is not None
        else "the best trial, not certified"
    )
    typer.echo(f"wrote {output}: {spec.schedule.name}, base lr {spec.lr:.4g} ({what})")


@app.command("certify")
@_errors_in_one_line
def certify_command(
    study_name: Annotated[str, typer.Option("--study-name", help="The study to certify.")] = "default",
    storage: StorageOption = None,
    fresh_seeds: Annotated[
        int | None,
        typer.Option(
            min=2,
            max=100,
            help="The most fresh seeds a candidate races at: one clearly worse than the leader stops "
            "earlier [default: 10].",
        ),
    ] = None,
    old_seeds: OldFreshSeedsOption = None,
    top: Annotated[
        int | None,
        typer.Option(min=1, max=20, help="The best distinct searched trials raced beside the controls [default: 1]."),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Certify at the length you will train for (every candidate's LR chosen at it) "
            "[default: the length the study was last certified at, else the search's].",
        ),
    ] = None,
    judge: JudgeOption = None,
    devices: DevicesOption = None,
    task: StudyTaskOption = None,
    export: Annotated[
        Path | None, typer.Option(help="Where to write the recommended run [default: studies/<study>-best.yaml].")
    ] = None,
) -> None:
    """Race a study's best trial and tuned control schedules (constant, linear decay, warmup-stable-decay,
    StepLR) at fresh seeds, each stopped once clearly worse than the leader; say,
    with 95% intervals, whether the search's answer beats the best control, and store the certificate in
    the study."""
    from lrsearch.base.paths import check_writable
    from lrsearch.certification.certify import DEFAULT_SEEDS
    from lrsearch.problem.config import DEFAULT_STORAGE, MAX_EPOCHS
    from lrsearch.searching.run import open_stored_study
    from lrsearch.views.summary import export_best

    if epochs is not None and epochs > MAX_EPOCHS:
        raise ConfigError(f"--epochs: at most {MAX_EPOCHS}, got {epochs}")
    overrides = {"study.devices": devices, "study.export": export}
    with open_stored_study(study_name, storage or DEFAULT_STORAGE, overrides, task) as (study, settings, device):
        export_path = settings.study.export_path
        check_writable(export_path, "--export")
        if _certify(
            study,
            settings,
            device,
            seeds=_renamed(old_seeds, "--fresh-seeds", fresh_seeds) or DEFAULT_SEEDS,
            top=top or settings.study.certify_top,
            epochs=epochs or settings.study.certify_epochs,
            judge=judge.value if judge else settings.study.judge,
        ):
            raise typer.Exit(EXIT_INTERRUPTED)
        spec = export_best(study, export_path)
    typer.echo(f"recommended run written to {export_path}: lrsearch train --config {export_path}{spec.replay_options}")


@app.command()
def tasks() -> None:
    """List the built-in tasks and their settings (the config's `data` section)."""
    from lrsearch.problem.tasks import BUILTIN_TASKS

    for task in BUILTIN_TASKS.values():
        settings = ", ".join(f"{name}={value}" for name, value in task.defaults.items()) or "none"
        typer.echo(f"{task.name:<15} {task.kind:<15} {task.about}\n{'':<31}settings: {settings}")
    typer.echo("your own: --task module:function or path/to/file.py:function, returning lrsearch.Task")


@app.command()
@_errors_in_one_line
def dashboard(
    study_name: Annotated[
        str | None, typer.Option("--study-name", help="Open at this study and refresh its figures first.")
    ] = None,
    storage: StorageOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 lets other machines in.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free one).")] = 8080,
    artifacts: Annotated[
        Path | None, typer.Option(help="The trials' pictures [default: artifacts/ beside the study file].")
    ] = None,
) -> None:
    """Watch and inspect studies in optuna-dashboard, with every trial's LR and loss picture."""
    import threading

    from lrsearch.problem.config import DEFAULT_STORAGE
    from lrsearch.searching.study import load_existing_study
    from lrsearch.store.storage import artifact_folder, open_storage, shown_url
    from lrsearch.views.dashboard import figures_lock, refresh_study, serving

    url = storage or DEFAULT_STORAGE
    quiet_optuna()
    study_storage = open_storage(url, must_exist=True, wrapped=False)  # optuna-dashboard's own, as Optuna made it
    path = "/dashboard/"
    if study_name is not None:
        study = load_existing_study(study_name, url)
        with figures_lock(url, study_name):  # a search may be refreshing them too
            refresh_study(study)  # a study from before figures existed, or whose search was stopped
        path += f"studies/{study_storage.get_study_id_from_name(study_name)}"
    with serving(study_storage, artifact_folder(url, artifacts), host, port) as server:
        shown_host = f"[{host}]" if ":" in host else host
        typer.echo(f"optuna-dashboard on {shown_url(url)}: http://{shown_host}:{server.server_port}{path}")
        typer.echo("press Ctrl-C to stop")
        sys.stdout.flush()
        try:
            threading.Event().wait()  # the server runs in its own thread
        except KeyboardInterrupt:
            typer.echo("dashboard stopped")


@app.command()
@_errors_in_one_line
def report(
    study_name: Annotated[
        list[str] | None,
        typer.Option(
            "--study-name",
            metavar="NAME",
            help="The study to report on; given twice or more, those studies side by side [default: default].",
        ),
    ] = None,
    storage: StorageOption = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")] = Path("report.html"),
    png: Annotated[bool, typer.Option(help="Also write each figure as OUTPUT-STEM-NAME.png beside it.")] = False,
    allow_different_problems: Annotated[
        bool,
        typer.Option(
            "--allow-different-problems",
            help="Compare studies whose data (or its seed), model or batch size differ: their losses do not compare.",
        ),
    ] = False,
) -> None:
    """Write one self-contained HTML report of a study: history, best LR curves and their val losses,
    schedule types compared, parameter importances, the best config, and the baselines. Of several
    studies: their best runs and certificates side by side, in one table and one figure."""
    from rich.progress import Progress

    from lrsearch.base.paths import check_writable
    from lrsearch.problem.config import DEFAULT_STORAGE
    from lrsearch.searching.study import load_existing_study
    from lrsearch.views.report_page import report_title, sections, write_page, write_pngs

    check_writable(output, "--output")  # --png writes beside it
    quiet_optuna()
    names = list(dict.fromkeys(study_name or ["default"]))
    studies = [load_existing_study(name, storage or DEFAULT_STORAGE) for name in names]
    if len(studies) > 1:
        from lrsearch.views.compare_page import comparison_sections, comparison_title

        drawers = comparison_sections(studies, allow_different_problems=allow_different_problems)
        title = comparison_title(studies)
    else:
        drawers, title = sections(studies[0]), report_title(studies[0])
    drawn = []
    # Drawn for a terminal only: piped, rich leaves an empty line where the bar was.
    with Progress(transient=True, disable=not sys.stdout.isatty()) as progress:
        task = progress.add_task("drawing the report", total=len(drawers))
        for draw in drawers:
            drawn.append(draw())
            progress.advance(task)
    write_page(title, drawn, output)
    typer.echo(f"wrote {output}")
    if png:
        for path in write_pngs(drawn, output.parent, output.stem):
            typer.echo(f"wrote {path}")


@app.command("train")
@_errors_in_one_line
def train_command(
    config: Annotated[Path, typer.Option(help="A RunSpec YAML, as `lrsearch export` writes.")],
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "cpu",
    baselines: Annotated[
        bool, typer.Option(help="Also train the baselines (the certificate's controls) and compare.")
    ] = True,
    study_name: Annotated[
        str | None, typer.Option("--study-name", help="Record the results in this study, for `lrsearch report`.")
    ] = None,
    storage: StorageOption = None,
    task: Annotated[
        str | None,
        typer.Option(help="The config's own task (module:function), when it is one: naming it runs its code."),
    ] = None,
) -> None:
    """Replay one run, then compare its test loss with the controls its certificate tuned (without one:
    a constant LR and the classic StepLR)."""
    from rich.table import Table
    from rich.text import Text

    from lrsearch.api import replay
    from lrsearch.problem.batches import rows
    from lrsearch.problem.build import load_run_spec
    from lrsearch.problem.data import whole
    from lrsearch.store.records import EpochRecord, score_label

    spec = load_run_spec(config)

    def print_epoch(record: EpochRecord) -> None:
        typer.echo(
            f"Epoch [{record.epoch}/{spec.epochs}], Learning Rate: {record.lr:.6g}, "
            f"Train Loss: {record.train_loss:.4f}, Val Loss: {record.val_loss:.4f}"
            + ("" if record.val_score is None else f", Val Score: {record.val_score:.4f}")
        )

    replayed = replay(
        config,
        device=device,
        baselines=baselines,
        study_name=study_name,
        storage=storage,
        task=task,
        on_epoch=print_epoch,
    )
    if replayed.history is not None:
        typer.echo(f"final val loss: {replayed.history.final.val_loss:.6f}")

    def figure(value: float | None) -> str:
        return "-" if value is None else f"{value:.4f}"

    data, score = replayed.data, score_label(replayed.data.score)
    split = "no test split" if data.test is None else f"test split ({rows(whole(data.test, replayed.device))} rows)"
    table = Table(title=f"{split}, seed {replayed.spec.seed}, {replayed.spec.epochs} epochs")
    for column in ("run", "test loss", f"test {score or 'score'}", "final val loss"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for label, result in replayed.runs.items():
        if isinstance(result, str):
            table.add_row(Text(label), Text(result), "-", "-")  # an error's text, not rich markup
        else:
            table.add_row(
                Text(label), figure(result.test_loss), figure(result.test_score), figure(result.final.val_loss)
            )
    _console().print(table)
    if replayed.failure is not None:  # nothing recorded: the study keeps the replay it had
        typer.echo(f"Error: the run failed: {replayed.failure}", err=True)
        raise typer.Exit(EXIT_FAULT)
    if study_name is not None:
        typer.echo(f"recorded in study {study_name!r} (see `lrsearch report --study-name {study_name}`)")


@app.command()
@_errors_in_one_line
def schedulers(
    epochs: Annotated[int, typer.Option(help="Show the ranges for runs of this many epochs.")] = 20,
) -> None:
    """List every schedule in the registry with its searched parameters and ranges."""
    from lrsearch.problem.config import with_overrides
    from lrsearch.problem.schedules import SCHEDULES, STEPS, Budget, searched_ranges

    with_overrides({}, {"train.epochs": epochs}, "--epochs")  # a search's bounds, said as a search says them

    typer.echo(
        f"Schedules and their searched ranges for {epochs}-epoch runs. A trial parameter is named\n"
        "SCHEDULE.PARAM (pin one with search.fixed in the config, e.g. {StepLR.gamma: 0.5}).\n"
    )
    for schedule in SCHEDULES.values():
        typer.echo(f"{schedule.name}  ({STEPS[schedule.step_on]})\n    {schedule.description}")
        for searched in searched_ranges(schedule, Budget(epochs, steps_per_epoch=1)):
            typer.echo(f"    - {searched}")


def main() -> None:
    from lrsearch.base.logs import one_line_thread_faults

    one_line_thread_faults()
    try:
        app()
    finally:
        # Python's last garbage collection at exit walks every object the command made, torch's and Optuna's
        # among them: 0.4 s of a 7.8 s `lrsearch optimize`. Frozen, they are never collected, so nothing may
        # wait for the collector to be closed: files close in `with` blocks, storages at exit (`store.storage`).
        gc.freeze()


if __name__ == "__main__":
    sys.exit(main())
