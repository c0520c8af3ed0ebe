"""The Python API, for notebooks and scripts: run a search, get a result object.

import lrsearch

result = lrsearch.search(trials=50, task="moons")
result.best              # the winning RunSpec
result.trials            # a pandas DataFrame, one row per trial
result.certificate       # the best trial and tuned controls at fresh seeds: what is recommended
lrsearch.search(trials=50, task="moons", progress=False, callback=print)  # ProgressEvents, no bars
result.export("best.yaml")
lrsearch.replay("best.yaml")   # train it again beside its baselines, as `lrsearch train` does
schedule = lrsearch.load_schedule("best.yaml")  # for your own optimizer and loop
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lrsearch.base.errors import ConfigError
from lrsearch.problem.config import (
    CERTIFY_TOP,
    SearchConfig,
    load_config,
    overrides_from,
    require_an_end,
    with_overrides,
)
from lrsearch.problem.spec import RunSpec
from lrsearch.store.records import TrialRecord

if TYPE_CHECKING:
    import pandas

    from lrsearch.certification.replay import Replayed
    from lrsearch.searching.progress import ProgressCallback
    from lrsearch.store.certificate import Certificate
    from lrsearch.store.records import EpochRecord


@dataclass(frozen=True)
class SearchResult:
    """What a search found, and the study it ran on (which holds every trial)."""

    study: optuna.Study
    config: SearchConfig
    interrupted: bool  # Ctrl-C stopped it before its budget was spent

    @property
    def best_trial(self) -> FrozenTrial:
        """The completed trial with the lowest final val loss, in the whole study."""
        try:
            return self.study.best_trial
        except ValueError:  # Optuna's way of saying there is none
            raise ConfigError(f"study {self.study.study_name!r} has no completed trial") from None

    @property
    def best(self) -> RunSpec:
        """The best trial's RunSpec: `best.schedule`, `best.lr`, `best.optimizer`...

        Raises:
            ConfigError: the study has no completed trial, or the best one's stored RunSpec does not parse.
        """
        trial = self.best_trial
        record = TrialRecord.of(trial)
        if record is None:
            raise ConfigError(f"study {self.study.study_name!r}: trial #{trial.number} stores no readable RunSpec")
        return record.spec

    @property
    def best_value(self) -> float:
        return self.best_trial.value

    @property
    def trials(self) -> pandas.DataFrame:
        """One row per trial: number, state, final val loss (`value`), start, duration, and the sampled
        parameters (`params_schedule`, `params_lr`, `params_<schedule>.<name>`...)."""
        return self.study.trials_dataframe(attrs=("number", "state", "value", "datetime_start", "duration", "params"))

    @property
    def certificate(self) -> Certificate | None:
        """The certificate of the study's best searched trial (`lrsearch.certify`), or None: not certified
        (`certify=False`, an interrupted search), or a better trial came since."""
        from lrsearch.views.summary import current_certificate

        return current_certificate(self.study)

    def export(self, path: str | Path) -> RunSpec:
        """Write the recommended RunSpec as YAML (replay: `lrsearch train --config PATH`): the
        certificate's recommendation, with its summary, or the best trial's when not certified."""
        from lrsearch.views.summary import export_best

        return export_best(self.study, Path(path))


def search(
    config: str | Path | dict[str, Any] | SearchConfig | None = None,
    *,
    progress: bool = True,
    callback: ProgressCallback | None = None,
    **settings: Any,
) -> SearchResult:
    """Run a search and return its result; a stored study with the same name gets the new trials.

    Args:
        config: a config file, a dict shaped like one, a `SearchConfig`, or None for
            `studies/default.yaml` (when it exists, else the built-in defaults).
        progress: show progress bars (trials done, best value, pruned, time; then certification's
            run-epochs), in a terminal or a notebook; False shows nothing.
        callback: called with a `ProgressEvent` as trials end and as certification trains, whether or
            not the bars show (to log elsewhere).
        settings: the command-line options by their names: trials, timeout, study_name, storage, seed,
            jobs, stack, devices, sampler, pruner, epochs, export, task, seeds, certify (True by default:
            after the search, `certify` its answer). No `study_name` (here or in the config): the study is
            named after the task, `default` for the default task, else the task's name (`moons`).

    Raises:
        ConfigError: a setting is not valid (its message names it), before anything is written; or a
            config file names a task of your own (code) that `task=` does not name.
    """
    overrides = overrides_from(settings)
    if isinstance(config, SearchConfig):
        config = config.model_dump(mode="json")
    if isinstance(config, dict):
        resolved = with_overrides(copy.deepcopy(config), overrides, "config")
        require_an_end(resolved, "config")
    else:
        from lrsearch.problem.config import DEFAULT_CONFIG
        from lrsearch.problem.tasks import require_named

        resolved = load_config(None if config is None else Path(config), overrides)
        # A config file may come from someone else; a dict is the caller's own code.
        require_named(resolved.data.task, settings.get("task"), str(config or DEFAULT_CONFIG))
    return _run(resolved, progress, callback)


def _run(config: SearchConfig, progress: bool, callback: ProgressCallback | None) -> SearchResult:
    from lrsearch.searching.progress import CertifyProgress, TrialProgress
    from lrsearch.searching.run import SearchRun, certify_and_show, open_search
    from lrsearch.views.search_figures import SearchFigures

    with open_search(config) as (study, devices):
        figures = SearchFigures.of(config)
        run = SearchRun(config, study, devices, figures=figures)
        if progress or callback is not None:
            before = len(study.get_trials(deepcopy=False))
            with TrialProgress(config.study.trials, study, before, shown=progress, callback=callback) as bar:
                interrupted = run.run(on_progress=bar.refresh)
        else:  # nobody watches: no reads of the study for a bar
            interrupted = run.run()
        if config.study.certify and not interrupted and study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            seeds, top, length = config.study.certify_seeds, config.study.certify_top, config.study.certify_epochs
            with CertifyProgress(shown=progress, callback=callback) as certifying:
                certify_and_show(
                    study,
                    config,
                    devices[0],
                    seeds=seeds,
                    top=top,
                    epochs=length,
                    judge=config.study.judge,
                    progress=certifying,
                    figures=figures,
                )
    return SearchResult(study=study, config=config, interrupted=interrupted)


def certify(
    study_name: str = "default",
    storage: str | None = None,
    *,
    fresh_seeds: int = 10,
    top: int = CERTIFY_TOP,
    epochs: int | None = None,
    judge: str = "last",
    devices: str | None = None,
    task: str | None = None,
    seeds: int | None = None,
    progress: bool = True,
    callback: ProgressCallback | None = None,
) -> Certificate:
    """Race a stored study's best trial (its best `top` distinct ones) and tuned control schedules at up to
    `fresh_seeds` fresh seeds (at `epochs`, every candidate's LR chosen at that length; default the length
    the study was last certified at, else the search's), store the certificate in the study and return it:
    `certificate.sentence`, `certificate.recommended_candidate.run`.

    Args:
        judge: "last" judges each run at its last epoch, "best" at its best val epoch (early stopping).
        task: the study's own task (module:function), when it is one: naming it runs its code.
        seeds: the old name of `fresh_seeds` (deprecated).
        progress: show a progress bar of the run-epochs trained, in a terminal or a notebook.
        callback: called with a `ProgressEvent` (phase "certify") after each epoch trained.

    Raises:
        ConfigError: no such study, no completed trial, or a setting out of range.
    """
    from lrsearch.problem.config import DEFAULT_STORAGE
    from lrsearch.searching.progress import CertifyProgress
    from lrsearch.searching.run import certify_and_show, open_stored_study
    from lrsearch.views.search_figures import SearchFigures

    if seeds is not None:
        import warnings

        warnings.warn("seeds= is now fresh_seeds= (a count of fresh seeds)", DeprecationWarning, stacklevel=2)
        fresh_seeds = seeds
    with open_stored_study(study_name, storage or DEFAULT_STORAGE, {"study.devices": devices}, task) as opened:
        study, config, device = opened
        figures = SearchFigures.of(config)
        with CertifyProgress(shown=progress, callback=callback) as certifying:
            return certify_and_show(
                study,
                config,
                device,
                seeds=fresh_seeds,
                top=top,
                epochs=epochs,
                judge=judge,
                progress=certifying,
                figures=figures,
            )


def replay(
    config: str | Path,
    *,
    device: str = "cpu",
    baselines: bool = True,
    study_name: str | None = None,
    storage: str | None = None,
    task: str | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> Replayed:
    """Train an exported run (`result.export`, `lrsearch export`) again as the search trained it, and
    beside it the runs its certificate compared it with (its controls at their tuned LRs; without a
    certificate, a constant LR and the classic StepLR(10, 0.1) recipe), each measured on the test split:
    what `lrsearch train` runs. `replayed.runs` maps each run's label to its `History` or why it stopped.

    Args:
        study_name: record the replay in this stored study (for `lrsearch report`); the run must be of
            the study's problem (its length may be the one its certificate was made at).
        task: the run's own task (module:function), when it is one: naming it runs its code.
        on_epoch: called with each epoch of the replayed run.

    Raises:
        ConfigError: a file, a device or a study that does not fit, before anything trains.
    """
    from lrsearch.base.device import resolve_device
    from lrsearch.base.text import clipped
    from lrsearch.certification.baselines import baseline_specs
    from lrsearch.certification.replay import record, replay_run
    from lrsearch.problem.build import load_run_spec
    from lrsearch.problem.spec import CERTIFICATE_KEY, load_yaml_mapping
    from lrsearch.problem.tasks import require_named

    spec = load_run_spec(config)
    require_named(spec.data.task, task, str(config))
    torch_device = resolve_device(device)
    study = None
    if study_name is not None:  # checked before training: a wrong name should not cost a whole replay
        from lrsearch.problem.config import DEFAULT_STORAGE
        from lrsearch.searching.study import check_replay_problem, load_existing_study

        study = load_existing_study(study_name, storage or DEFAULT_STORAGE)
        check_replay_problem(study, spec)
    block = load_yaml_mapping(Path(config)).get(CERTIFICATE_KEY)
    certified = block.get("recommended") if isinstance(block, dict) else None
    label = f"{clipped(str(certified)) if certified else spec.schedule.name} (this run)"
    others = baseline_specs(spec, block) if baselines else {}
    replayed = replay_run(spec, label=label, baselines=others, device=torch_device, on_epoch=on_epoch)
    if study is not None:
        record(study, replayed)
    return replayed
