"""Certification: the search's answer and the control schedules, trained again at fresh seeds.

A search ranks its trials by one run each, at one seed, and keeps the lowest: its winner's val loss is
partly luck. Here the top `top` distinct trials and the controls (`controls.CONTROLS`, each at its own
tuned base LR) train again at `seeds` seeds none of them was chosen at (new initial weights and batch
orders; the data split stays), to the end, many at once in stacks; `verdict.judge` then says what
the numbers support. Two things are trained, in as few rounds as they allow (`_Trainer.rounds`):
- the controls' tuning: each at the LR grid around the answer's mean LR (`controls.lr_grid`), widened
  while its best LR is at an edge, at the search's own seeds and length, so that a control's LR is
  chosen as the trials' were, by val loss;
- the certification proper: the top trials and the tuned controls at the fresh seeds, at the certified
  length; the top trials from the first round on, each control as soon as its LR is chosen.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime, timezone

import optuna
import torch
from optuna.trial import TrialState

from lrsearch.base.device import pin_threads
from lrsearch.base.errors import ConfigError
from lrsearch.certification.controls import control_label, control_run, controls_for, lr_grid, next_lr
from lrsearch.certification.verdict import judge
from lrsearch.engines.autostack import choose_stack
from lrsearch.engines.factory import engine_for
from lrsearch.engines.interface import Engine
from lrsearch.engines.seeds import fresh_seeds, search_seeds
from lrsearch.problem.config import SearchConfig
from lrsearch.problem.data import Data, load_data
from lrsearch.problem.spec import RunSpec
from lrsearch.store.certificate import CERTIFICATE_ATTR, Candidate, Certificate, TunedControl
from lrsearch.store.records import TrialRecord, stores_run

DEFAULT_SEEDS = 5
DEFAULT_TOP = 3
# Runs trained at once: the built-in MLP's throughput grows up to here on a 2-core CPU (benchmarks/
# throughput.py: K=50 1.8x K=10 per trial), and certification, unlike a search, waits for no sampler.
STACK_CPU = 50
STACK_GPU = 512
MAX_LRS_TRIED = 9  # per control: the first grid of 5, and up to 4 steps beyond its edges (16x further)

Progress = Callable[[int, int], None]  # (run-epochs done, run-epochs in all)


@dataclass(frozen=True)
class RunResult:
    """One run trained to its end: its last epoch's val figures and its test figures, or why it stopped."""

    val_loss: float | None = None
    test_loss: float | None = None
    test_score: float | None = None
    stopped: str | None = None  # "diverged: ..." or "failed: ..."


def certify(
    study: optuna.Study,
    config: SearchConfig,
    *,
    device: torch.device,
    seeds: int = DEFAULT_SEEDS,
    top: int = DEFAULT_TOP,
    epochs: int | None = None,
    progress: Progress | None = None,
) -> Certificate:
    """Certify the study's answer (module docstring) and store the certificate in the study.

    Args:
        config: the study's search settings (its problem, LR range and search seeds).
        epochs: certify at this length (schedules stretched to it); None: the search's.

    Raises:
        ConfigError: the study has no completed trial with a readable run, or a setting is out of range.
    """
    if not 1 <= seeds <= 100:
        raise ConfigError(f"--seeds: certification trains at 1 to 100 fresh seeds, got {seeds}")
    if top < 1:
        raise ConfigError(f"--top: certify at least the best trial, got {top}")
    started = time.perf_counter()
    searched = top_distinct(study, top)
    if not searched:
        raise ConfigError(f"study {study.study_name!r} has no completed trial to certify")
    answer = searched[0][1]
    length = epochs or answer.epochs
    data = load_data(config.data, config.study.seed, device)
    trainer = _Trainer(config, data, device, progress)

    fresh = fresh_seeds(config.study.seed, seeds, avoid=config.search.seeds)
    candidates = {
        f"#{number} {spec.schedule.name}, lr {spec.lr:.3g}": (number, spec.stretched(length))
        for number, spec in searched
    }
    tuned, candidates, results = trainer.rounds(answer, config, candidates, fresh, length)
    rows = [
        _candidate(label, number, spec, [results[label, seed] for seed in fresh])
        for label, (number, spec) in candidates.items()
    ]
    certificate = Certificate(
        seeds=fresh,
        epochs=length,
        search_epochs=answer.epochs,
        device=str(device),
        when=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        seconds=round(time.perf_counter() - started, 2),
        score=data.score,
        controls=tuned,
        answer_trial=searched[0][0],
        candidates=rows,
        **judge(rows, len(fresh)),
    )
    study.set_user_attr(CERTIFICATE_ATTR, certificate.model_dump(mode="json"))
    return certificate


def train_to_end(
    runs: dict[Hashable, RunSpec], config: SearchConfig, data: Data, device: torch.device
) -> dict[Hashable, RunResult]:
    """Train runs of the config's problem to their end as certification trains them (many at once
    where that pays): for measuring a run at seeds of one's choosing."""
    return _Trainer(config, data, device, None).train_all(runs)


def top_distinct(study: optuna.Study, top: int) -> list[tuple[int, RunSpec]]:
    """The `top` best completed trials (lowest val loss) whose runs differ, with their RunSpecs."""
    complete = sorted(
        (t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if stores_run(t)),
        key=lambda t: t.value,
    )
    chosen: list[tuple[int, RunSpec]] = []
    seen: set[str] = set()
    for trial in complete:
        record = TrialRecord.of(trial)
        if record is None:
            continue
        run = json.dumps(record.spec.model_dump(mode="json"), sort_keys=True)
        if run not in seen:
            seen.add(run)
            chosen.append((trial.number, record.spec))
        if len(chosen) == top:
            break
    return chosen


class _Trainer:
    """Trains sets of runs of one problem to their end, as many at once as pays on the device."""

    def __init__(self, config: SearchConfig, data: Data, device: torch.device, progress: Progress | None) -> None:
        self.config, self.data, self.device, self.progress = config, data, device, progress
        self.threads = len(os.sched_getaffinity(0))
        self._stack: int | None = None
        self.done = self.total = 0

    def stack(self, runs: int) -> int:
        """Built-in MLP: `STACK_CPU`/`STACK_GPU`; a model of one's own: what `--stack auto` measures for it."""
        if self._stack is None:
            if self.data.stackable:
                self._stack = STACK_GPU if self.device.type == "cuda" else STACK_CPU
            else:
                # Measured as for a search of 4 trials per run, so the measurement may pick its largest size.
                sized = self.config.model_copy(
                    update={"study": self.config.study.model_copy(update={"trials": 4 * runs, "stack": "auto"})}
                )
                self._stack = choose_stack(sized, self.device, self.data, self.threads).size
        return max(1, min(self._stack, runs))

    def rounds(
        self,
        answer: RunSpec,
        config: SearchConfig,
        searched: dict[str, tuple[int | None, RunSpec]],
        fresh: list[int],
        length: int,
    ) -> tuple[list[TunedControl], dict[str, tuple[int | None, RunSpec]], dict[Hashable, RunResult]]:
        """Train until every control is tuned and every candidate has trained at the fresh seeds.

        Round 1 trains each control at its LR grid around the answer's mean LR (at the search's seeds and
        length; a control's LR is chosen by val loss, as the trials were) beside the searched candidates
        at the fresh seeds. Each later round tries, for a control whose best LR is at an edge of what it
        tried, one LR further out, beside the fresh-seed runs of every control whose LR has settled: no
        control's certification waits for another's tuning.

        Returns:
            The tuned controls; every candidate (searched, then the controls), label -> (trial, run);
            the results of every run, by (label, seed).
        """
        low, high = config.search.lr.low, config.search.lr.high
        seeds = search_seeds(config.study.seed, config.search.seeds)
        names = controls_for(answer.epochs)
        tried: dict[str, dict[float, float | None]] = {name: {} for name in names}  # LR -> mean val loss
        todo = {name: lr_grid(answer, name, low, high) for name in names}
        settled: set[str] = set()  # controls whose LR is chosen (or that diverged at every LR)
        pending = _at_seeds(searched, fresh)
        results: dict[Hashable, RunResult] = {}

        def candidate(name: str, lr: float) -> dict[str, tuple[int | None, RunSpec]]:
            return {control_label(name, lr): (None, control_run(answer, name, lr).stretched(length))}

        while todo or pending:
            sweep = {
                (name, lr, seed): control_run(answer, name, lr).model_copy(update={"seed": seed})
                for name, lrs in todo.items()
                for lr in lrs
                for seed in seeds
            }
            results |= self.train_all(sweep | pending)
            for name, lrs in todo.items():
                for lr in lrs:
                    values = [results[name, lr, seed].val_loss for seed in seeds]
                    tried[name][lr] = None if None in values else sum(values) / len(values)
            todo, pending = {}, {}
            for name in names:
                if name in settled or not tried[name]:
                    continue
                best = _best_lr(tried[name])
                beyond = None if best is None else next_lr(sorted(tried[name]), best, low, high)
                if beyond is not None and beyond not in tried[name] and len(tried[name]) < MAX_LRS_TRIED:
                    todo[name] = [beyond]
                    continue
                settled.add(name)
                if best is not None:
                    pending |= _at_seeds(candidate(name, best), fresh)
        tuned = [
            TunedControl(
                name=name,
                lrs=sorted(tried[name]),
                val_losses=[tried[name][lr] for lr in sorted(tried[name])],
                chosen=_best_lr(tried[name]),
            )
            for name in names
        ]
        controls = [candidate(t.name, t.chosen) for t in tuned if t.chosen is not None]
        return tuned, searched | {label: run for one in controls for label, run in one.items()}, results

    def train_all(self, runs: dict[Hashable, RunSpec]) -> dict[Hashable, RunResult]:
        """Train every run to its end, `stack` at a time, a finished run's row refilled at once."""
        stack = self.stack(len(runs))
        self.total += sum(spec.epochs for spec in runs.values())
        queue = list(runs.items())
        results: dict[Hashable, RunResult] = {}
        specs: dict[Hashable, RunSpec] = {}
        trained: dict[Hashable, int] = {}  # epochs each run trained
        engine: Engine | None = None
        outside_threads = torch.get_num_threads()
        pin_threads(self.device, self.threads if stack > 1 else 1)
        try:
            while queue or (engine is not None and len(engine)):
                while queue and (engine is None or len(engine) < stack):
                    key, spec = queue.pop(0)
                    engine = engine or engine_for(self.data, self.device, stack)(spec)
                    engine.add(key, spec)
                    specs[key] = spec
                for outcome in engine.train_epoch():
                    key = outcome.key
                    self.done += 1
                    trained[key] = trained.get(key, 0) + 1
                    if outcome.failed is not None or outcome.diverged is not None:
                        what = f"failed: {outcome.failed}" if outcome.failed else f"diverged: {outcome.diverged}"
                        results[key] = RunResult(stopped=what)
                        self.done += specs[key].epochs - trained[key]  # epochs it will not train
                    elif outcome.finished:
                        test_loss, test_score = engine.test(key) if self.data.test is not None else (None, None)
                        results[key] = RunResult(outcome.record.val_loss, test_loss, test_score)
                    else:
                        continue
                    engine.remove(key)
                if self.progress is not None:
                    self.progress(self.done, self.total)
        finally:
            torch.set_num_threads(outside_threads)
        return {key: results[key] for key in runs}


def _best_lr(losses: dict[float, float | None]) -> float | None:
    """The LR with the lowest mean val loss; None when every LR diverged."""
    finite = {lr: loss for lr, loss in losses.items() if loss is not None}
    return min(finite, key=finite.get) if finite else None


def _at_seeds(candidates: dict[str, tuple[int | None, RunSpec]], seeds: list[int]) -> dict[Hashable, RunSpec]:
    return {
        (label, seed): spec.model_copy(update={"seed": seed})
        for label, (_, spec) in candidates.items()
        for seed in seeds
    }


def _candidate(label: str, trial: int | None, spec: RunSpec, results: list[RunResult]) -> Candidate:
    kind = "control" if trial is None else "searched"
    stopped = next((r.stopped for r in results if r.stopped is not None), None)
    if stopped is not None:
        return Candidate(label=label, kind=kind, trial=trial, spec=spec.model_dump(mode="json"), diverged=stopped)
    tests, scores = [r.test_loss for r in results], [r.test_score for r in results]
    return Candidate(
        label=label,
        kind=kind,
        trial=trial,
        spec=spec.model_dump(mode="json"),
        val_loss=[r.val_loss for r in results],
        test_loss=None if None in tests else tests,  # a task without a test split
        test_score=None if None in scores else scores,
    )
