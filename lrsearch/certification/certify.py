"""Certification: the search's answer and the control schedules, trained again at fresh seeds.

A search ranks its trials by one run each, at one seed: its winner's val loss is partly luck. Here its
answer (the best trial; the best `top` distinct ones where asked: `config.CERTIFY_TOP` says why one),
the controls (`controls.controls_for`, each at its own tuned base LR) and the classic recipe
(`controls.CLASSIC`, untuned) train again at `seeds` seeds none of them was chosen at (new initial
weights and batch orders; the data split stays), to the end, many at once in stacks;
`verdict.judge` then says what the numbers support. Every candidate's base LR is chosen at the certified
length, by the same rule: a grid of LRs, widened while its best LR is at an edge, at the search's seeds,
by val loss as the trials were judged. At the search's own length the searched trials' LRs already are
chosen so, and a control goes on from its control trials in the search (or, without any that finished,
from a grid around the LR that gives it the answer's mean LR). At another length (`epochs`) the searched
trials are stretched (their epoch counts scaled, and named so) and swept like the controls, since the
best LR of a run moves with its length: there one control is swept first around its best LR in the
search, and every other candidate starts from its own search-length LR moved as the horizon rule
fitted on it says (`horizon.HorizonRule`). Two things are trained, in as few rounds as they allow
(`_Trainer.train_round`): the LR sweeps, and the race (`race.race`) of every candidate
whose LR is chosen, its first seeds beside the sweeps' next round as soon as it is chosen; at the
search's length an open walk's best LR so far starts racing beside its next step, so that a step that does
not move it costs no round more than the step (where the step moves it, those 3 runs were spent for
nothing). Each run is
measured at its last epoch and at its best val epoch (what a checkpoint or early stopping keeps); `judge`
says which one decides.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from lrsearch.base.device import pinned_threads
from lrsearch.base.errors import ConfigError
from lrsearch.certification.controls import (
    CLASSIC,
    classic_run,
    control_label,
    lr_grid,
    robustness_rank,
)
from lrsearch.certification.horizon import NARROW_FACTORS, PILOT, HorizonRule, lr_area
from lrsearch.certification.race import FIRST_SEEDS, Entrant, race
from lrsearch.certification.verdict import judge as judge_candidates
from lrsearch.engines.autostack import choose_stack
from lrsearch.engines.driver import RunResult, train_to_end
from lrsearch.engines.factory import engine_for
from lrsearch.engines.seeds import fresh_seeds, search_seeds
from lrsearch.problem.config import CERTIFY_TOP, SearchConfig
from lrsearch.problem.controls import CONTROLS, control_run, controls_for, matched_lr, searched_as
from lrsearch.problem.data import Data, load_data
from lrsearch.problem.lr_walk import best_lr, grid_around, walk_step
from lrsearch.problem.spec import RunSpec
from lrsearch.store.certificate import CERTIFICATE_ATTR, Candidate, Certificate, Judge, TunedControl
from lrsearch.store.records import TrialRecord, searched_best_first

DEFAULT_SEEDS = 10  # the race's cap: a candidate still undecided after 10 seeds is within noise
# Runs trained at once: the built-in MLP's throughput grows up to here on a 2-core CPU (benchmarks/
# throughput.py: K=50 1.8x K=10 per trial), and certification, unlike a search, waits for no sampler.
STACK_CPU = 50
STACK_GPU = 512
MAX_LRS_TRIED = 9  # per candidate: its first grid (5 LRs, or 3 where a horizon rule predicts), then steps out

Progress = Callable[[int, int], None]  # (run-epochs done, run-epochs in all)


@dataclass(frozen=True)
class _Tunable:
    """A candidate whose base LR certification chooses: its run at an LR, where its grid starts."""

    name: str  # "linear decay to zero", "#12 MultiStepLR stretched to 100 epochs"
    trial: int | None  # the searched trial it came from; None for a control
    run: Callable[[float], RunSpec]  # its run at the certified length, at a base LR
    grid: list[float]  # the LRs it is tried at first, when the search tried none and no rule predicts it
    tried: dict[float, float | None] = field(default_factory=dict)  # the search's control trials: LR -> loss
    short_lr: float | None = None  # at another length than the search's: its LR at the search's length
    area_ratio: float = 1.0  # its LR area at the certified length over that at the search's (`horizon`)

    def label(self, lr: float) -> str:
        return control_label(self.name, lr)


def certify(
    study: optuna.Study,
    config: SearchConfig,
    *,
    device: torch.device,
    seeds: int = DEFAULT_SEEDS,
    top: int = CERTIFY_TOP,
    epochs: int | None = None,
    judge: Judge = "last",
    progress: Progress | None = None,
) -> Certificate:
    """Certify the study's answer (module docstring) and store the certificate in the study.

    Args:
        config: the study's search settings (its problem, LR range and search seeds).
        epochs: certify at this length (every candidate's LR chosen at it); None: the search's.
        judge: "last" judges every run at its last epoch (what the exported run gives as it is trained);
            "best" at its best val epoch (what a checkpoint or early stopping keeps).

    Raises:
        ConfigError: the study has no completed trial with a readable run, or a setting is out of range.
    """
    if not 1 <= seeds <= 100:
        raise ConfigError(f"--fresh-seeds: certification trains at 1 to 100 fresh seeds, got {seeds}")
    if top < 1:
        raise ConfigError(f"--top: certify at least the best trial, got {top}")
    if judge not in ("last", "best"):
        raise ConfigError(f"--judge: judge each run at its 'last' epoch or its 'best' val epoch, got {judge!r}")
    started = time.perf_counter()
    searched = top_distinct(study, top)
    if not searched:
        raise ConfigError(f"study {study.study_name!r} has no completed trial to certify")
    answer = searched[0][1]
    length = epochs or answer.epochs
    data = load_data(config.data, config.study.seed, device)
    trainer = _Trainer(config, data, device, progress, judge)

    fresh = fresh_seeds(config.study.seed, seeds, avoid=config.search.seeds_per_trial)
    fixed, tunables = _candidates(study, searched, config, length, judge)

    def start_racing(label: str, spec: RunSpec) -> None:  # its first seeds train beside the tuning left
        first = fresh[:FIRST_SEEDS]
        trainer.beside_next_round({(label, seed): spec.model_copy(update={"seed": seed}) for seed in first})

    for label, (_, spec) in fixed.items():
        start_racing(label, spec)
    tuned, chosen = trainer.tune(
        tunables, search_seeds(config.study.seed, config.search.seeds_per_trial), on_chosen=start_racing
    )
    everyone = dict(sorted((fixed | chosen).items(), key=lambda item: item[1][0] is None))  # searched first
    results = trainer.raced_results

    def train(runs: dict[Hashable, RunSpec]) -> None:  # what did not train beside the tuning
        trainer.train_round({key: spec for key, spec in runs.items() if key not in results}, tested=set(runs))

    # The controls in the race, by name, for the race's preference among those its seeds cannot tell apart.
    control_names = {
        t.name: tunable.label(t.chosen)
        for t, tunable in zip(tuned, tunables, strict=True)
        if tunable.trial is None and t.chosen is not None
    } | {CLASSIC: CLASSIC}
    raced = race(
        {label: spec for label, (_, spec) in everyone.items()},
        {label: "control" if number is None else "searched" for label, (number, _) in everyone.items()},
        fresh,
        train,
        lambda key: results[key].judged_val(judge),
        preference=[control_names[name] for name in sorted(control_names, key=robustness_rank)],
    )
    rows = [_candidate(raced[label], number, results, fresh, judge) for label, (number, _) in everyone.items()]
    verdict = judge_candidates(rows)
    certificate = Certificate(
        seeds=fresh,
        epochs=length,
        search_epochs=answer.epochs,
        device=str(device),
        when=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        seconds=round(time.perf_counter() - started, 2),
        trained_epochs=trainer.trained,
        score=data.score,
        controls=[t for t, tunable in zip(tuned, tunables, strict=True) if tunable.trial is None],
        searched_lrs=[t for t, tunable in zip(tuned, tunables, strict=True) if tunable.trial is not None],
        judge=judge,
        overfit=overfit_line(rows, verdict["recommended"], judge, length),
        edge=edge_line(tuned, config.search.lr.low, config.search.lr.high),
        horizon=trainer.horizon and trainer.horizon.describe(answer.epochs, length),
        answer_trial=searched[0][0],
        candidates=rows,
        **verdict,
    )
    study.set_user_attr(CERTIFICATE_ATTR, certificate.model_dump(mode="json"))
    return certificate


def _candidates(
    study: optuna.Study, searched: list[tuple[int, RunSpec]], config: SearchConfig, length: int, judge: Judge
) -> tuple[dict[str, tuple[int | None, RunSpec]], list[_Tunable]]:
    """What certification trains: the runs it takes as they are (label -> (trial, run)), and those whose
    LR it chooses at `length` first (module docstring); a control starts from its trials in the search."""
    low, high = config.search.lr.low, config.search.lr.high
    answer = searched[0][1]
    fixed: dict[str, tuple[int | None, RunSpec]] = {}
    tunables = []
    for number, spec in searched:
        if spec.epochs == length:  # the search chose its LR at this length
            fixed[f"#{number} {spec.schedule.name}, lr {spec.lr:.3g}"] = (number, spec)
            continue
        stretched = spec.stretched(length)
        grid = grid_around(spec.lr, low, high)
        name = f"#{number} {spec.schedule.name} stretched to {length} epochs"
        run = lambda lr, s=stretched: s.model_copy(update={"lr": lr})  # noqa: E731
        tunables.append(_Tunable(name, number, run, grid, short_lr=spec.lr, area_ratio=_area_ratio(stretched, spec)))
    tried = _control_trials(study, answer, length, judge)
    short = _control_trials(study, answer, answer.epochs, judge) if length != answer.epochs else {}
    for name, make in controls_for(length, answer.epochs).items():
        schedule = make(length)
        run = lambda lr, s=schedule: control_run(answer, s, lr, length)  # noqa: E731
        if length == answer.epochs:
            grid = lr_grid(answer, schedule, low, high, length)
            tunables.append(_Tunable(name, None, run, grid, tried.get(name, {})))
            continue
        # Its LR in the search (its best control trial there), else the one matching the answer's mean LR.
        at_search = CONTROLS[searched_as(name)](answer.epochs)
        short_lr = best_lr(short.get(searched_as(name), {})) or matched_lr(answer, at_search, answer.epochs)
        ratio = _area_ratio(run(short_lr), control_run(answer, at_search, short_lr, answer.epochs))
        grid = grid_around(short_lr, low, high)
        tunables.append(_Tunable(name, None, run, grid, tried.get(name, {}), short_lr=short_lr, area_ratio=ratio))
    fixed[CLASSIC] = (None, classic_run(answer, length))
    return fixed, tunables


def _area_ratio(long: RunSpec, short: RunSpec) -> float:
    return lr_area(long) / lr_area(short)


def _control_trials(
    study: optuna.Study, answer: RunSpec, length: int, judge: Judge
) -> dict[str, dict[float, float | None]]:
    """The search's control trials as LR sweeps: control -> LR -> its val loss (None: pruned or diverged,
    worse than any that finished). Only trials whose run is the control's run at `length` with the
    answer's optimizer count: what certification would have trained to tune it, at the same seed; a
    completed searched trial whose run is a control's (a constant LR, say) counts for it too, as its walk
    in the search counted it (`trials.control_trials`)."""
    runs = {name: make(length) for name, make in CONTROLS.items()}
    sweeps: dict[str, dict[float, float | None]] = {}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        record = TrialRecord.of(trial)
        if record is None:
            continue
        spec = record.spec
        if spec.epochs != length or spec.optimizer != answer.optimizer or spec.seed != answer.seed:
            continue
        control = record.control
        if control is None and record.state == TrialState.COMPLETE:
            control = next((name for name, schedule in runs.items() if schedule == spec.schedule), None)
        if control is None:
            continue
        loss = None
        if record.state == TrialState.COMPLETE:
            loss = record.curves.best_val_loss if judge == "best" and record.curves else record.value
        sweeps.setdefault(control, {})[spec.lr] = loss
    return sweeps


def overfit_line(rows: list[Candidate], recommended: str | None, judge: Judge, length: int) -> str | None:
    """One line when the runs overfit: the recommended run's mean val loss is lowest well before its end
    and rises after (`Candidate.overfits`), so the length itself is too long."""
    chosen = next((row for row in rows if row.label == recommended), None)
    rising = None if chosen is None else chosen.overfits()
    if rising is None:
        return None
    epoch, lowest, last = rising
    alike = sum(row.overfits() is not None for row in rows)
    advice = (
        "each run was judged at its best val epoch, as early stopping keeps it"
        if judge == "best"
        else "a shorter run, or keeping the best epoch (--judge best), does better"
    )
    return (
        f"the runs overfit: the recommended run's val loss is lowest at epoch {epoch} of {length} ({lowest:.4g}) "
        f"and {last:.4g} at the end ({alike} of {len(rows)} candidates alike); {advice}"
    )


def edge_line(tuned: list[TunedControl], low: float, high: float) -> str | None:
    """One line when a candidate's LR was chosen at an end of the search's LR range (`search.lr`), which
    its walk does not step past: its best LR may lie beyond, and only a wider range would say."""
    at_edge: dict[str, list[str]] = {}
    for t in tuned:
        if t.chosen is None:
            continue
        end = "lowest" if t.chosen <= low * (1 + 1e-9) else "highest" if t.chosen >= high * (1 - 1e-9) else None
        if end is not None:
            at_edge.setdefault(end, []).append(t.name)
    if not at_edge:
        return None
    parts = [
        f"{', '.join(names)} chose the range's {end} LR, {low if end == 'lowest' else high:.3g}"
        for end, names in at_edge.items()
    ]
    return f"at the edge of the search's LR range: {'; '.join(parts)}; a wider search.lr may find a better LR"


def train_as_certified(
    runs: dict[Hashable, RunSpec], config: SearchConfig, data: Data, device: torch.device
) -> dict[Hashable, RunResult]:
    """Train runs of the config's problem to their end as certification trains them (many at once
    where that pays): for measuring a run at seeds of one's choosing."""
    return _Trainer(config, data, device, None).train_all(runs, tested=set(runs))


def top_distinct(study: optuna.Study, top: int) -> list[tuple[int, RunSpec]]:
    """The `top` best completed searched trials (lowest val loss; not control trials:
    `store.records.searched_best_first`) whose runs differ, with their RunSpecs."""
    chosen: list[tuple[int, RunSpec]] = []
    seen: set[str] = set()
    for record in searched_best_first(study.get_trials(deepcopy=False)):
        run = json.dumps(record.spec.model_dump(mode="json"), sort_keys=True)
        if run not in seen:
            seen.add(run)
            chosen.append((record.number, record.spec))
        if len(chosen) == top:
            break
    return chosen


class _Trainer:
    """Trains sets of runs of one problem to their end, as many at once as pays on the device."""

    def __init__(
        self,
        config: SearchConfig,
        data: Data,
        device: torch.device,
        progress: Progress | None,
        judge: Judge = "last",
    ) -> None:
        self.config, self.data, self.device, self.progress, self.judge = config, data, device, progress, judge
        self.threads = len(os.sched_getaffinity(0))
        self._stack: int | None = None
        self.done = self.total = 0
        self.trained = 0  # run-epochs trained
        self.horizon: HorizonRule | None = None  # how LRs at another length were predicted, once fitted
        self._waiting: dict[Hashable, RunSpec] = {}  # fresh-seed runs for the next round, beside its own
        self.raced_results: dict[Hashable, RunResult] = {}  # every run measured on test: the race's

    def stack(self, runs: int) -> int:
        """Built-in MLP: `STACK_CPU`/`STACK_GPU`; a model of one's own: what `--stack auto` measures for it."""
        if self._stack is None:
            if self.data.stackable:
                self._stack = STACK_GPU if self.device.type == "cuda" else STACK_CPU
            else:
                # Chosen as for a search of 4 trials per run, whose largest stack (a quarter) holds every run.
                sized = self.config.model_copy(
                    update={"study": self.config.study.model_copy(update={"trials": 4 * runs, "stack": "auto"})}
                )
                self._stack = choose_stack(sized, self.device, self.data, self.threads).size
        return max(1, min(self._stack, runs))

    def tune(
        self,
        tunables: list[_Tunable],
        seeds: list[int],
        on_chosen: Callable[[str, RunSpec], None] = lambda label, spec: None,
    ) -> tuple[list[TunedControl], dict[str, tuple[int | None, RunSpec]]]:
        """Choose every tunable's LR: its mean val loss at `seeds` (the search's; an LR is chosen by val
        loss, as the trials were) at its first grid, or at what the search tried, then, in rounds, one
        LR more for each whose best LR is not yet surrounded closely enough by what it tried (`lr_walk.walk_step`).
        At another length than the search's, the pilot control is tuned so first, and the others start
        from their search-length LRs moved by the horizon rule fitted on it (`horizon`), on a narrow grid.
        `on_chosen(label, run)` hears of each tuned candidate before the next round, so that its own runs
        can train beside the tuning left (`beside_next_round`), and, at the search's length, of each open
        walk's best LR so far before its next step, so that they train beside the step (`_walk`); so a label
        it hears may never be chosen, its runs then trained for nothing.

        Returns:
            How each tunable's LR was chosen, in order; the tuned candidates, label -> (trial, run).
        """
        low, high = self.config.search.lr.low, self.config.search.lr.high
        by_name = {tunable.name: tunable for tunable in tunables}
        tried = {tunable.name: dict(tunable.tried) for tunable in tunables}  # LR -> mean val loss

        def announce(names: Iterable[str]) -> None:
            for name in names:
                if (lr := best_lr(tried[name])) is not None:
                    on_chosen(by_name[name].label(lr), by_name[name].run(lr))

        pilot = _pilot(tunables)  # None at the search's length
        first = tunables if pilot is None else [pilot]
        self._walk(first, {t.name: t.grid for t in first}, tried, seeds, announce, race_ahead=pilot is None)
        if pilot is not None and pilot.short_lr is not None:
            rest = [t for t in tunables if t is not pilot]
            grids = {t.name: t.grid for t in rest}
            if (long_lr := best_lr(tried[pilot.name])) is not None:
                self.horizon = HorizonRule.fit(pilot.name, pilot.short_lr, long_lr, pilot.area_ratio)
                for t in rest:
                    if t.short_lr is not None:
                        predicted = self.horizon.predict(t.short_lr, t.area_ratio)
                        grids[t.name] = grid_around(predicted, low, high, NARROW_FACTORS)
            self._walk(rest, grids, tried, seeds, announce, race_ahead=False)
        tuned = [
            TunedControl(
                name=name,
                lrs=sorted(tried[name]),
                val_losses=[tried[name][lr] for lr in sorted(tried[name])],
                chosen=best_lr(tried[name]),
            )
            for name in by_name
        ]
        chosen = {
            by_name[t.name].label(t.chosen): (by_name[t.name].trial, by_name[t.name].run(t.chosen))
            for t in tuned
            if t.chosen is not None
        }
        return tuned, chosen

    def _walk(
        self,
        tunables: list[_Tunable],
        grids: dict[str, list[float]],
        tried: dict[str, dict[float, float | None]],
        seeds: list[int],
        announce: Callable[[Iterable[str]], None],
        race_ahead: bool,
    ) -> None:
        """Tune these tunables' LRs into `tried`: at their first grid (`grids`) or what the search tried,
        then one LR more a round while `_next` gives one; each announced as soon as its LR is chosen, and,
        with `race_ahead`, each open walk's best LR so far before every step (below)."""
        low, high = self.config.search.lr.low, self.config.search.lr.high
        by_name = {tunable.name: tunable for tunable in tunables}
        # A control the search tried at no LR that finished (all pruned, or none tried) starts from its grid.
        todo = {t.name: [lr for lr in grids[t.name] if lr not in t.tried] for t in tunables if best_lr(t.tried) is None}
        todo |= {name: [lr] for name in by_name if name not in todo and (lr := self._next(tried[name], low, high))}
        announce(name for name in by_name if name not in todo)
        while todo:
            # At the search's length, each open walk's best LR so far starts racing beside its next step:
            # where the step does not move it, its race seeds have trained already, and need no round of
            # their own. There a walk goes on from the search's, and a step seldom moves its best (in none
            # of the 8 searches of `quality.py sweep`); at another length a walk starts from a prediction,
            # and on digits at 100 epochs 4 steps moved it, 1,200 run-epochs for nothing.
            if race_ahead:
                announce(todo)
            sweep = {
                (name, lr, seed): by_name[name].run(lr).model_copy(update={"seed": seed})
                for name, lrs in todo.items()
                for lr in lrs
                for seed in seeds
            }
            results = self.train_round(sweep, tested=set())
            for name, lrs in todo.items():
                for lr in lrs:
                    values = [results[name, lr, seed].judged_val(self.judge) for seed in seeds]
                    tried[name][lr] = None if None in values else sum(values) / len(values)
            left = {name: [lr] for name in todo if (lr := self._next(tried[name], low, high))}
            announce(name for name in todo if name not in left)
            todo = left

    @staticmethod
    def _next(tried: dict[float, float | None], low: float, high: float) -> float | None:
        """The next LR to try for a tunable, or None when its LR is chosen (or it diverged everywhere)."""
        return None if len(tried) >= MAX_LRS_TRIED else walk_step(tried, low, high)

    def beside_next_round(self, runs: dict[Hashable, RunSpec]) -> None:
        """Train these fresh-seed runs (measured on test) in the next round, beside its own runs: a round
        costs a run's length in wall time almost however many runs it stacks. Their results: `raced_results`
        (a run already there is not trained again)."""
        self._waiting |= {key: spec for key, spec in runs.items() if key not in self.raced_results}

    def train_round(self, runs: dict[Hashable, RunSpec], tested: set[Hashable]) -> dict[Hashable, RunResult]:
        """`train_all` the runs and, beside them, those waiting for this round; the runs' results."""
        if not runs and not self._waiting:  # the race's first seeds all trained beside the LR tuning
            return {}
        waiting, self._waiting = self._waiting, {}
        results = self.train_all(runs | waiting, tested=tested | set(waiting))
        self.raced_results |= {key: results[key] for key in waiting}
        self.raced_results |= {key: results[key] for key in tested if key in runs}
        return {key: results[key] for key in runs}

    def train_all(self, runs: dict[Hashable, RunSpec], tested: set[Hashable]) -> dict[Hashable, RunResult]:
        """Train every run to its end, `stack` at a time (`driver.train_to_end`); the runs in `tested` are
        measured on the test split at their last and at their best val epoch."""
        stack = self.stack(len(runs))
        self.total += sum(spec.epochs for spec in runs.values())

        def tally(trained: int, skipped: int) -> None:
            self.trained += trained
            self.done += trained + skipped
            if self.progress is not None:
                self.progress(self.done, self.total)

        with pinned_threads(self.device, self.threads if stack > 1 else 1):
            new_engine = engine_for(self.data, self.device, stack)
            has_test = self.data.test is not None
            return train_to_end(runs, new_engine, stack=stack, tested=tested, has_test=has_test, tally=tally)


def _pilot(tunables: list[_Tunable]) -> _Tunable | None:
    """The tunable the horizon rule is fitted on (`horizon.PILOT`, else the first control), when the
    certified length is not the search's (the tunables know their LR at the search's length); else None."""
    controls = [t for t in tunables if t.trial is None and t.short_lr is not None]
    return next((t for t in controls if t.name == PILOT), controls[0] if controls else None)


def _candidate(
    entrant: Entrant, trial: int | None, results: dict[Hashable, RunResult], seeds: list[int], judge: Judge
) -> Candidate:
    """A raced candidate's row: its figures at the seeds it trained at, and why it stopped racing."""
    kind = "control" if trial is None else "searched"
    run = entrant.spec.model_dump(mode="json")
    every = [results[entrant.label, seed] for seed in seeds if (entrant.label, seed) in results]
    stopped = next((r.stopped for r in every if r.stopped is not None), None)
    if stopped is not None:  # a run that diverged or failed: its reason, and no figures
        return Candidate(label=entrant.label, kind=kind, trial=trial, spec=run, diverged=stopped, judged=judge)
    ran = [results[entrant.label, seed] for seed in entrant.seeds]

    def each(name: str) -> list[Any] | None:
        values = [getattr(r, name) for r in ran]
        return None if None in values else values  # a task without a test split: no test figures

    curve = [sum(values) / len(values) for values in zip(*(r.val_curve for r in ran), strict=True)]
    return Candidate(
        label=entrant.label,
        kind=kind,
        trial=trial,
        spec=run,
        val_loss=each("val_loss"),
        test_loss=each("test_loss"),
        test_score=each("test_score"),
        best_epoch=each("best_epoch"),
        best_val_loss=each("best_val_loss"),
        best_test_loss=each("best_test_loss"),
        best_test_score=each("best_test_score"),
        val_curve=[round(value, 6) for value in curve],
        judged=judge,
        raced=entrant.stopped,
    )
