"""One run of a search on a study: its workers (in this process or in worker processes), Ctrl-C handling,
and the dashboard figures (handed in) kept current. The CLI and the Python API both run searches through it."""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import torch

from lrsearch.base.device import resolve_devices
from lrsearch.base.logs import quiet_optuna
from lrsearch.base.stopping import StopSignal, stop_on_interrupt
from lrsearch.problem.config import SearchConfig, require_shared_storage
from lrsearch.problem.data import load_data
from lrsearch.problem.space import check_fixed
from lrsearch.problem.tasks import is_user_task, require_named
from lrsearch.searching.study import open_study
from lrsearch.searching.workers import Figures, WorkerReport, plan_workers, run_worker, run_workers
from lrsearch.store.optuna_private import storage_of
from lrsearch.store.storage import exclusive_search, open_storage
from lrsearch.trials.budget import add_to_budget

if TYPE_CHECKING:
    from lrsearch.store.certificate import Certificate

POLL_S = 0.5  # how often `on_progress` runs while worker processes train
Progress = Callable[..., None]  # shows the study's progress, read through the study given, or its own


def check_search(config: SearchConfig) -> list[torch.device]:
    """What a search needs before any study is touched: a storage its workers can share, devices that
    exist, a user's task that loads (so a mistake in it is one line, and nothing is written), and pinned
    `search.fixed` values the search could sample.

    Returns:
        The devices the workers take in turn.
    """
    require_shared_storage(config)
    devices = resolve_devices(config.study.devices)
    if is_user_task(config.data.task) or config.search.fixed:
        data = load_data(config.data, config.study.seed)
        # The pinned values' ranges may depend on the budget, whose steps an epoch the data decides.
        check_fixed(config, data.steps_per_epoch(config.train.batch_size))
    return devices


@contextmanager
def open_search(config: SearchConfig) -> Iterator[tuple[optuna.Study, list[torch.device]]]:
    """Check the search, open (or create) its study and add its trials to the study's budget; the study
    is this search's until the block ends (a second search of it is refused as busy)."""
    devices = check_search(config)
    quiet_optuna()
    storage = open_storage(config.study.storage, heartbeat=config.study.heartbeat)  # a bad one is one line first
    with exclusive_search(config.study.storage, config.study.name, holder="optimize"):
        study = open_study(config, storage)
        add_to_budget(study, config.study.trials)
        yield study, devices


@contextmanager
def open_stored_study(
    name: str, url: str, overrides: dict[str, Any], task: str | None
) -> Iterator[tuple[optuna.Study, SearchConfig, torch.device]]:
    """A stored study, its search settings (with `overrides`, dotted study fields) and the first of its
    devices, held as this command's (no search of it runs meanwhile: it would change its best trial).

    Raises:
        ConfigError: no such study, a bad setting, or the study's own task (code) not named by `task`.
    """
    from lrsearch.searching.study import load_existing_study, stored_config

    quiet_optuna()
    study = load_existing_study(name, url)
    config = stored_config(study, {"study.storage": url} | overrides)
    require_named(config.data.task, task, f"study {name!r}")
    device = resolve_devices(config.study.devices)[0]
    with exclusive_search(url, name, holder="certify"):
        yield study, config, device


def certify_and_show(
    study: optuna.Study,
    config: SearchConfig,
    device: torch.device,
    *,
    seeds: int,
    top: int,
    epochs: int | None = None,
    judge: str = "last",
    progress: Callable[[int, int], None] | None = None,
    figures: Figures | None = None,
) -> Certificate:
    """`certify.certify` the study's answer, then put the certificate in the dashboard's study note and
    figures (`figures`, when the study keeps them: the search's refresher has stopped by now). Without
    `epochs`, at the length the study was last certified at (`store.certificate.kept_length`), else the
    search's."""
    from lrsearch.certification.certify import certify
    from lrsearch.store.certificate import kept_length

    epochs = epochs or kept_length(study)

    certificate = certify(
        study, config, device=device, seeds=seeds, top=top, epochs=epochs, judge=judge, progress=progress
    )
    if figures is not None:
        figures.after_certify(study)
    return certificate


class SearchRun:
    """The workers of one run of `config` on `study`.

    Args:
        joining: a worker command joining a study another command started: its workers sample with fresh
            entropy (`seeds.sampler_seed`); otherwise worker i with the study's seed + i.
        figures: the dashboard's pictures and figures, kept as the search runs (None: none).
    """

    def __init__(
        self,
        config: SearchConfig,
        study: optuna.Study,
        devices: list[torch.device],
        *,
        joining: bool = False,
        figures: Figures | None = None,
    ) -> None:
        self.config, self.study = config, study
        self._stop_folder = Path(tempfile.mkdtemp(prefix="lrsearch-"))
        self.stop = StopSignal(self._stop_folder / "stop")
        self.figures = figures
        self.setups = plan_workers(
            config, jobs=config.study.jobs, devices=devices, joining=joining, stop_file=self.stop.path, figures=figures
        )
        self.reports: list[WorkerReport] = []
        self.seconds = 0.0

    def run(self, on_progress: Progress | None = None) -> bool:
        """Run the workers until the study's budget (or the timeout) is spent; True when Ctrl-C stopped
        them. The first Ctrl-C ends each running trial after its epoch; a second one stops at once.

        Args:
            on_progress: called after a trial ends, at most every `POLL_S` (one worker: it reads the whole
                study, running trials included), or every `POLL_S` (worker processes).
        """
        started = time.perf_counter()
        second_interrupt = False
        try:
            live = nullcontext() if self.figures is None else self.figures.while_searching(self.study)
            with live, stop_on_interrupt(self.stop):
                if len(self.setups) == 1:
                    callbacks = [] if on_progress is None else [_at_most_every(POLL_S, on_progress)]
                    # Opened by this process: not opened again, and one cache of the study's finished trials.
                    storage = storage_of(self.study)
                    self.reports = [run_worker(self.setups[0], self.stop, callbacks=callbacks, storage=storage)]
                else:
                    self.reports = _in_processes(self.setups, on_progress)
        except KeyboardInterrupt:  # a second Ctrl-C: the running trials were cut off
            second_interrupt = True
        finally:
            shutil.rmtree(self._stop_folder, ignore_errors=True)
            self.seconds = time.perf_counter() - started
        return second_interrupt or self.stop.is_set()


def _at_most_every(seconds: float, action: Progress) -> Callable[[optuna.Study, Any], None]:
    """A trial callback that runs `action` when `seconds` have passed since it last did, reading the
    study through the worker's own handle on it (whose reads don't reload the trials it runs)."""
    last = -float("inf")

    def callback(study: optuna.Study, trial: Any) -> None:
        nonlocal last
        if time.monotonic() - last >= seconds:
            last = time.monotonic()
            action(study)

    return callback


def _in_processes(setups: list[Any], on_progress: Progress | None) -> list[WorkerReport]:
    """Run worker processes while this one reports progress."""
    outcome: dict[str, Any] = {}

    def wait_for_workers() -> None:
        try:
            outcome["reports"] = run_workers(setups)
        except BaseException as error:  # re-raised in the main thread
            outcome["error"] = error

    waiter = threading.Thread(target=wait_for_workers, daemon=True)
    waiter.start()
    try:
        while waiter.is_alive():
            waiter.join(timeout=POLL_S)
            if on_progress is not None:
                on_progress()
    except KeyboardInterrupt:  # the second Ctrl-C: stop at once; the next run retries what was running
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=False, kill_workers=True)
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["reports"]
