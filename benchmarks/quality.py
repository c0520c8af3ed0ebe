"""Search quality you can trust, seven measurements (the first argument picks one):

    python benchmarks/quality.py certify [--tasks ...] [--seeds 0,1,2,3,4] [--trials 50] [--top 3] [--fresh-seeds 5]
    python benchmarks/quality.py seeds [--tasks classification,digits] [--seeds 0,1,2,3,4] [--seconds 10]
    python benchmarks/quality.py reference [--tasks ...] [--seeds 0,1,2] [--trials 50] [--reference-trials 500]
    python benchmarks/quality.py length [--tasks ...] [--seeds 0,1,2] [--trials 50] [--epochs 20] [--long 100]
    python benchmarks/quality.py sweep [--tasks ...] [--seeds 0,1] [--trials 50] [--epochs 20]
    python benchmarks/quality.py twins [--tasks ...] [--seed 0] [--trials 50] [--epochs 20] [--long 100]
    python benchmarks/quality.py epochs [--tasks ...] [--seeds 0,1] [--trials 50] [--epochs 20]

`sweep`: the certified answer against a careful practitioner's LR sweep, and what each trained. Per task
and search seed: the default search and its certification (`lrsearch optimize`'s defaults, in memory),
against the sweep: cosine and linear decay to zero at 8 base LRs log-spaced over the search's LR range, 3
seeds each, the lowest mean final val loss kept, trained by the same code. Both chosen runs then train at
the same 10 fresh seeds: test loss mean ± 95% interval, their paired difference (negative: lrsearch
better), the same difference in final val loss (what both arms choose by: a row better on val and worse on
test was let down by its split's val rows, not by its choice); the test difference on 10 new
train/val/test splits of the task's rows (2 fresh seeds each, paired by split: one split's test rows are
few on the bundled data sets, 114 for breast cancer, and the spread over seeds leaves their sampling noise
out); the run-epochs each spent (lrsearch: the search's trials, pruned ones as far as they ran, plus
certification, of which the race's finished runs in brackets, the rest its LR tuning), and the fresh seeds
each certified candidate raced at.

`epochs`: where the run-epochs of `sweep`'s lrsearch column go, without the sweep (seconds a row). Per
task and search seed, the default search (in memory) and its certification: the control trials (their
walks' LRs; never pruned) and the searched trials, each as trials/run-epochs, with the searched trials that
trained every epoch; certification's LR tuning (the walks the search left open, and race runs trained
beside a walk's step at an LR the step replaced) and its race (as `sweep`'s "(raced)": the finished seeds;
a candidate whose run diverged counts under tuning); the total and its ratio to the careful sweep's
run-epochs (2 schedules x 8 LRs x 3 seeds).

`length`: the answer at the length people train. Per task and search seed, a search of `--epochs` epochs
certified at `--long` epochs (`lrsearch certify --epochs`), against (a) a careful sweep done directly at
`--long`: every control (`controls.CONTROLS`) and cosine to zero (a control until `twins` below) at 8 LRs
log-spaced over the search's LR range, 3 seeds each, the lowest mean final val loss kept; (b) the classic
recipe (SGD lr 0.1, StepLR(10, 0.1)) as it is; (c) the search's raw winner stretched to `--long` at its
searched LR (what `load_schedule(..., epochs=)` gave before). Each is trained at the certificate's 5 fresh
seeds: test loss mean and 95% interval, the paired difference of the recommendation against (a) and (b),
the same against (a) in final val loss (what both chose by), and the run-epochs each of certification and
(a) trained; under each built-in task's row, the same differences on 10 new splits of its rows.

`twins`: whether cosine to zero and linear decay to zero, each tuned, are one control or two. Per task, on
the default search's best run (its optimizer and model), each at 8 base LRs log-spaced over the search's
LR range, 3 seeds each, at `--epochs` and at `--long`; the LR of each with the lowest mean final val
loss; both at those LRs at 10 fresh seeds: val and test loss of cosine minus linear decay, paired by seed
(positive: linear decay better).

`certify`: per task and search seed, the default search (in memory, no pictures) and its certification
(its 3 best distinct trials raced to 5 fresh seeds, or `--top` and `--fresh-seeds`: `--top 1 --fresh-seeds
10` is what `lrsearch optimize` does), each timed. From the certificate, at its fresh seeds (mean test
loss): the raw winner (the search's best trial), the certified recommendation, the best tuned control;
whether the winner beats the best control with a 95% interval on test loss excluding zero; certification's
time as a share of the search's.

`seeds`: per task and search seed, searches at `--seeds 1`, 2 and 3 with the same time budget
(`--seconds`, alternating which runs first); each winner's test loss measured at 5 fresh seeds.

`reference`: how close the default search comes to a large random search. Per task and seed, three
searches run on the same data (in memory, one process):
- default: what `lrsearch optimize` does (TPE, its default pruner), 50 trials;
- random: random sampling with the same pruner, 50 trials;
- reference: random sampling without pruning, 500 trials (every trial trained to the end).
Each search's best trial (lowest val loss) is replayed one at a time, as `lrsearch train` replays it, and
measured on the test split, which no search looked at. A trial trained in a stack at the edge of
stability can diverge on its replay (the batched matmul rounds differently in the last bit, and a chaotic
run amplifies it); then the next best trial is taken and the figure marked `*`. The table prints each
search's test loss and its gap to the reference's (negative: better than the reference), then the default
winner beside the constant-LR and StepLR baselines `lrsearch train` compares with ("div": diverged).

The user task is the example in studies/my_task.py (a small conv net on the digits).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from dataclasses import dataclass

import torch
from optuna.trial import TrialState

import lrsearch
from lrsearch.base.device import pinned_threads
from lrsearch.base.stats import mean_interval, paired_difference
from lrsearch.certification.baselines import baseline_specs
from lrsearch.certification.certify import certify, train_as_certified
from lrsearch.engines.driver import RunResult
from lrsearch.engines.lone import Diverged, train
from lrsearch.engines.seeds import fresh_seeds
from lrsearch.problem.config import SearchConfig
from lrsearch.problem.controls import CONTROLS, control_run
from lrsearch.problem.data import load_data, resplit_data
from lrsearch.problem.spec import RunSpec, ScheduleSpec
from lrsearch.problem.tasks import BUILTIN_TASKS
from lrsearch.store.certificate import Certificate
from lrsearch.store.records import RUN_SPEC, TrialRecord


@dataclass
class Found:
    spec: RunSpec
    test_loss: float
    seconds: float
    rank: int  # 1: the best trial; more: the better ones diverged on their replay

    @property
    def text(self) -> str:
        return f"{self.test_loss:.4f}" + ("*" if self.rank > 1 else " ")


def best_of(task: str, seed: int, trials: int, sampler: str, pruner: str, device: str) -> Found:
    started = time.perf_counter()
    config = {"study": {"storage": "sqlite:///:memory:", "figures": False, "devices": device, "certify": False}}
    name = f"{task}-{seed}-{sampler}-{pruner}-{trials}"  # one in-memory storage per process: a study each
    result = lrsearch.search(
        config, task=task, seed=seed, trials=trials, sampler=sampler, pruner=pruner, study_name=name, progress=False
    )
    seconds = time.perf_counter() - started
    completed = sorted(result.study.get_trials(states=(TrialState.COMPLETE,)), key=lambda t: t.value)
    for rank, trial in enumerate(completed, start=1):
        spec = RunSpec.model_validate(trial.user_attrs[RUN_SPEC])
        loss = test_loss(spec, device)
        if math.isfinite(loss):
            return Found(spec, loss, seconds, rank)
    raise SystemExit(f"{name}: every completed trial diverged on its replay")


def test_loss(spec: RunSpec, device: str) -> float:
    data = load_data(spec.data, spec.seed, device)
    try:
        return train(spec, data, device, evaluate_test=True).test_loss
    except Diverged:
        return float("inf")


def _loss(value: float) -> str:
    if not math.isfinite(value):
        return "div"
    return f"{value:.4f}" if abs(value) < 1e3 else f"{value:.2g}"  # a run that blew up, not a column-breaker


def _mean(values: list[float]) -> str:
    finite = [value for value in values if math.isfinite(value)]
    diverged = len(values) - len(finite)
    text = f"{statistics.mean(finite):+.4f}" if finite else "-"
    return text + (f" ({diverged} div)" if diverged else "")


USER_TASK = "studies/my_task.py:build"
ALL_TASKS = ",".join([*BUILTIN_TASKS, USER_TASK])
FRESH_SEEDS = 5
PRUNER = SearchConfig().study.pruner  # the default search's


def certified(args: argparse.Namespace) -> None:
    print(
        f"default search ({args.trials} trials, in memory) and its certification (up to {args.fresh_seeds} fresh "
        f"seeds, top {args.top}, tuned controls); test loss, mean over the fresh seeds"
    )
    print(
        f"{'task':<28}{'seed':>5}{'raw winner':>12}{'certified':>11}{'best control':>14}{'beats':>7}"
        f"{'search s':>10}{'certify s':>11}{'share':>7}   recommended"
    )
    rows: dict[str, list[dict[str, float]]] = {}
    for task in args.tasks.split(","):
        for seed in _seeds(args):
            config = {"study": {"storage": "sqlite:///:memory:", "figures": False, "certify": False}}
            name = f"{task}-{seed}"
            started = time.perf_counter()
            result = lrsearch.search(config, task=task, seed=seed, trials=args.trials, study_name=name, progress=False)
            search_s = time.perf_counter() - started
            started = time.perf_counter()
            certificate = certify(
                result.study, result.config, device=torch.device(args.device), seeds=args.fresh_seeds, top=args.top
            )
            certify_s = time.perf_counter() - started
            raw = next(c for c in certificate.candidates if c.trial == certificate.answer_trial)
            chosen = certificate.recommended_candidate
            control = certificate.candidate(certificate.best_control)
            difference = certificate.test_difference
            beats = certificate.verdict == "beats" and difference is not None and difference.excludes_zero()
            row = {
                "raw": _test_mean(raw),
                "certified": _test_mean(chosen),
                "control": _test_mean(control),
                "beats": float(beats and difference.mean > 0),
                "share": certify_s / search_s,
            }
            rows.setdefault(task, []).append(row)
            print(
                f"{task:<28}{seed:>5}{_loss(row['raw']):>12}{_loss(row['certified']):>11}{_loss(row['control']):>14}"
                f"{'yes' if row['beats'] else 'no':>7}{search_s:>10.1f}{certify_s:>11.1f}{row['share']:>7.0%}   "
                f"{certificate.recommended}",
                flush=True,
            )
    print("\nper task: mean test loss over search seeds; beats: searches whose winner beat the best control")
    print(f"{'task':<28}{'raw winner':>12}{'certified':>11}{'best control':>14}{'beats':>8}{'share (median)':>16}")
    for task, values in rows.items():
        beats = f"{sum(v['beats'] for v in values):.0f}/{len(values)}"
        print(
            f"{task:<28}{_mean_of(values, 'raw'):>12}{_mean_of(values, 'certified'):>11}"
            f"{_mean_of(values, 'control'):>14}{beats:>8}"
            f"{statistics.median(v['share'] for v in values):>16.0%}"
        )


def seeds_at_equal_time(args: argparse.Namespace) -> None:
    counts = (1, 2, 3)
    print(
        f"searches of {args.seconds:g} s at --seeds 1, 2, 3 (in memory); each winner's test loss at "
        f"{FRESH_SEEDS} fresh seeds (mean); trials each search finished in brackets"
    )
    print(f"{'task':<28}{'seed':>5}" + "".join(f"{f'seeds {n}':>18}" for n in counts))
    results: dict[str, dict[int, list[float]]] = {}
    for task in args.tasks.split(","):
        for seed in _seeds(args):
            order = counts if seed % 2 == 0 else counts[::-1]  # alternate which runs first
            found: dict[int, tuple[float, int]] = {}
            for count in order:
                study = {"storage": "sqlite:///:memory:", "figures": False, "certify": False, "trials": None}
                config = {"study": study, "search": {"seeds_per_trial": count}}
                result = lrsearch.search(
                    config,
                    task=task,
                    seed=seed,
                    timeout=args.seconds,
                    study_name=f"{task}-{seed}-{count}",
                    progress=False,
                )
                finished = sum(t.state.is_finished() for t in result.study.trials)
                found[count] = (_fresh_test_loss(result, args.device), finished)
                results.setdefault(task, {}).setdefault(count, []).append(found[count][0])
            print(
                f"{task:<28}{seed:>5}" + "".join(f"{f'{_loss(found[n][0])} ({found[n][1]})':>18}" for n in counts),
                flush=True,
            )
    print("\nmean over search seeds")
    for task, by_count in results.items():
        print(f"{task:<28}{'':>5}" + "".join(f"{_mean(by_count[n]):>18}" for n in counts))


def _fresh_test_loss(result: lrsearch.SearchResult, device: str) -> float:
    """The search's best trial trained at the fresh seeds certification would use: mean test loss."""
    config = result.config
    data = load_data(config.data, config.study.seed, device)
    seeds = fresh_seeds(config.study.seed, FRESH_SEEDS, avoid=3)  # none of any search's seeds
    runs = {seed: result.best.model_copy(update={"seed": seed}) for seed in seeds}
    losses = [r.test_loss for r in train_as_certified(runs, config, data, torch.device(device)).values()]
    return statistics.mean(losses) if None not in losses else float("inf")


def _test_mean(candidate) -> float:
    return float("inf") if candidate is None or candidate.test is None else candidate.test.mean


def _mean_of(rows: list[dict[str, float]], key: str) -> str:
    finite = [row[key] for row in rows if math.isfinite(row[key])]
    return _loss(statistics.mean(finite)) if finite else "-"


def _seeds(args: argparse.Namespace) -> list[int]:
    return [int(seed) for seed in args.seeds.split(",")]


SWEEP_LRS, SWEEP_SEEDS = 8, 3
# What the sweeps train: the controls, and cosine to zero, a control until `twins` showed it linear decay's
# twin; kept here so that (a) and the careful sweep stay the yardsticks they were.
SWEPT = {**CONTROLS, "cosine to zero": lambda epochs: ScheduleSpec(name="CosineAnnealingLR", params={"T_max": epochs})}


def length(args: argparse.Namespace) -> None:
    print(
        f"{args.epochs}-epoch searches ({args.trials} trials) certified at {args.long} epochs (the race's default "
        f"cap of seeds), against (a) a sweep at {args.long} ({len(CONTROLS)} controls and cosine to zero x "
        f"{SWEEP_LRS} LRs x {SWEEP_SEEDS} seeds), (b) the classic recipe, (c) the raw winner stretched; test loss "
        f"at {FRESH_SEEDS} shared fresh seeds that chose nothing, mean ± 95% interval"
    )
    print(
        f"{'task':<28}{'seed':>5}{'recommended':>18}{'(a) sweep':>18}{'(b) classic':>18}{'(c) stretched':>18}"
        f"{'rank':>6}{'rec - (a)':>20}{'rec - (b)':>20}{'val: rec - (a)':>20}{'cert ep':>9}{'(a) ep':>8}{'ratio':>7}"
        "   recommended / (a)'s choice"
    )
    for task in args.tasks.split(","):
        for seed in _seeds(args):
            result = _uncertified_search(task, seed, args)
            device = torch.device(args.device)
            settings = result.config.study
            certificate = certify(
                result.study, result.config, device=device, seeds=settings.certify_seeds, epochs=args.long
            )
            classic = next(c for c in certificate.candidates if c.label.startswith("StepLR(10, 0.1), SGD lr 0.1"))
            data = load_data(result.config.data, result.config.study.seed, device)
            sweep_choice, sweep_epochs = _sweep(result, data, args.long, device)
            chosen = {
                "rec": certificate.recommended_candidate.run,
                "a": sweep_choice,
                "b": classic.run,
                "c": result.best.stretched(args.long),
            }
            arms, val = _at_fresh_seeds(chosen, seed, FRESH_SEEDS, result, data, device)
            means = {k: (statistics.mean(v) if v and None not in v else float("inf")) for k, v in arms.items()}
            rank = 1 + sum(means[k] < means["rec"] for k in ("a", "b", "c"))
            print(
                f"{task:<28}{seed:>5}"
                + "".join(f"{_interval(arms[k]):>18}" for k in ("rec", "a", "b", "c"))
                + f"{rank:>6}{_paired(arms['a'], arms['rec']):>20}{_paired(arms['b'], arms['rec']):>20}"
                f"{_paired(val['a'], val['rec']):>20}"
                f"{certificate.trained_epochs:>9}{sweep_epochs:>8}{certificate.trained_epochs / sweep_epochs:>7.2f}"
                f"   {certificate.recommended} / {sweep_choice.schedule.name} lr {sweep_choice.lr:.3g}",
                flush=True,
            )
            resplit = _on_new_splits({k: chosen[k] for k in ("rec", "a", "b")}, seed, result, device)
            if resplit is not None:
                print(
                    f"{'':<33}on {NEW_SPLITS} new splits of its rows ({SEEDS_PER_SPLIT} seeds each): rec - (a) "
                    f"{_paired(resplit['a'], resplit['rec'])}, rec - (b) {_paired(resplit['b'], resplit['rec'])}"
                )
            for line in (certificate.horizon, certificate.overfit, certificate.edge):
                if line:
                    print(f"{'':<33}{line}")


CAREFUL = ("cosine to zero", "linear decay to zero")
CAREFUL_SEEDS = 10


def against_sweep(args: argparse.Namespace) -> None:
    print(
        f"{args.epochs}-epoch default searches ({args.trials} trials) and their certification, against a careful "
        f"sweep ({' and '.join(CAREFUL)} x {SWEEP_LRS} LRs x {SWEEP_SEEDS} seeds); test loss at {CAREFUL_SEEDS} "
        f"shared fresh seeds, mean ± 95% interval; new splits: lrsearch - sweep on {NEW_SPLITS} new splits of the "
        "task's rows, paired by split"
    )
    print(
        f"{'task':<16}{'seed':>5}{'lrsearch':>18}{'sweep':>18}{'lrsearch - sweep':>20}{'val: lrs - sweep':>20}"
        f"{'new splits':>20}"
        f"{'search ep':>10}{'cert ep':>9}{'(raced)':>9}{'sweep ep':>9}{'ratio':>7}"
        "   seeds raced / recommended / sweep's choice"
    )
    for task in args.tasks.split(","):
        for seed in _seeds(args):
            result = _uncertified_search(task, seed, args)
            device = torch.device(args.device)
            certificate = _certified_as_the_command(result, device)
            per_trial = result.config.search.seeds_per_trial
            search_epochs = per_trial * sum(len(t.intermediate_values) for t in result.study.get_trials())
            data = load_data(result.config.data, result.config.study.seed, device)
            sweep_choice, sweep_epochs = _sweep(result, data, args.epochs, device, CAREFUL)
            chosen = {"rec": certificate.recommended_candidate.run, "sweep": sweep_choice}
            arms, val = _at_fresh_seeds(chosen, seed, CAREFUL_SEEDS, result, data, device)
            resplit = _on_new_splits(chosen, seed, result, device) or {}
            spent = search_epochs + certificate.trained_epochs
            raced_epochs = _raced_epochs(certificate)
            raced = ",".join(str(c.seeds) for c in certificate.candidates)
            print(
                f"{task:<16}{seed:>5}{_interval(arms['rec']):>18}{_interval(arms['sweep']):>18}"
                f"{_paired(arms['sweep'], arms['rec']):>20}{_paired(val['sweep'], val['rec']):>20}"
                f"{_paired(resplit.get('sweep'), resplit.get('rec')):>20}"
                f"{search_epochs:>10}{certificate.trained_epochs:>9}"
                f"{raced_epochs:>9}{sweep_epochs:>9}{spent / sweep_epochs:>7.2f}   {raced} / "
                f"{certificate.recommended} / {sweep_choice.schedule.name} lr {sweep_choice.lr:.3g}",
                flush=True,
            )


def _certified_as_the_command(result: lrsearch.SearchResult, device: torch.device) -> Certificate:
    """The search's certificate with the study's own settings, as `lrsearch optimize` makes it."""
    settings = result.config.study
    return certify(result.study, result.config, device=device, seeds=settings.certify_seeds, top=settings.certify_top)


def _raced_epochs(certificate: Certificate) -> int:
    """The run-epochs of the race's finished seeds (the rest of `trained_epochs` is LR tuning)."""
    return sum(c.seeds for c in certificate.candidates) * certificate.epochs


def _at_fresh_seeds(
    chosen: dict[str, RunSpec], seed: int, count: int, result: lrsearch.SearchResult, data, device: torch.device
) -> tuple[dict[str, list[float | None]], dict[str, list[float | None]]]:
    """Each chosen run's test loss and final val loss at `count` shared fresh seeds
    (`_trained_at_fresh_seeds`): the val loss is what both the search and the sweeps choose by, so an arm
    better on val and worse on test was let down by the split's val rows, not by its choice."""
    trained = _trained_at_fresh_seeds(chosen, seed, count, result, data, device)
    test = {arm: [run.test_loss for run in runs] for arm, runs in trained.items()}
    return test, {arm: [run.val_loss for run in runs] for arm, runs in trained.items()}


def _trained_at_fresh_seeds(
    chosen: dict[str, RunSpec], seed: int, count: int, result: lrsearch.SearchResult, data, device: torch.device
) -> dict[str, list[RunResult]]:
    """Each chosen run at `count` shared seeds that neither the sweep, the search nor its certification
    trained at (another stream of the search's seed), trained as certification trains."""
    fresh = fresh_seeds(seed + 7919, count, avoid=SWEEP_SEEDS + 1)
    runs = {(arm, s): spec.model_copy(update={"seed": s}) for arm, spec in chosen.items() for s in fresh}
    trained = train_as_certified(runs, result.config, data, device)
    return {arm: [trained[arm, s] for s in fresh] for arm in chosen}


NEW_SPLITS, SEEDS_PER_SPLIT = 10, 2


def _on_new_splits(
    chosen: dict[str, RunSpec], seed: int, result: lrsearch.SearchResult, device: torch.device
) -> dict[str, list[float | None]] | None:
    """Each chosen run's test loss on `NEW_SPLITS` new train/val/test splits of the task's rows (one
    value a split: the mean over `SEEDS_PER_SPLIT` fresh seeds), or None for a task of one's own. One
    split's test rows are few on the bundled data sets (114 for breast cancer, 36 for wine), and the
    spread over training seeds leaves their sampling noise out; here it is in, paired by split."""
    spec = result.config.data
    if spec.task not in BUILTIN_TASKS:
        return None
    fresh = fresh_seeds(seed + 104729, SEEDS_PER_SPLIT, avoid=SWEEP_SEEDS + 1)
    losses: dict[str, list[float | None]] = {arm: [] for arm in chosen}
    for split in range(1000, 1000 + NEW_SPLITS):
        data = resplit_data(spec, result.config.study.seed, split=split, device=device)
        runs = {(arm, s): run.model_copy(update={"seed": s}) for arm, run in chosen.items() for s in fresh}
        trained = train_as_certified(runs, result.config, data, device)
        for arm in chosen:
            values = [trained[arm, s].test_loss for s in fresh]
            losses[arm].append(None if None in values else statistics.mean(values))
    return losses


def _uncertified_search(task: str, seed: int, args: argparse.Namespace) -> lrsearch.SearchResult:
    """The default search of `args.trials` trials of `args.epochs` epochs, in memory, quiet, not certified."""
    config = {"study": {"storage": "sqlite:///:memory:", "figures": False, "certify": False}}
    if getattr(args, "seeds_per_trial", 1) != 1:
        config["search"] = {"seeds_per_trial": args.seeds_per_trial}
    return lrsearch.search(
        config,
        task=task,
        seed=seed,
        trials=args.trials,
        epochs=args.epochs,
        study_name=f"{task}-{seed}",
        progress=False,
    )


def _sweep(
    result: lrsearch.SearchResult, data, epochs: int, device: torch.device, controls=tuple(SWEPT)
) -> tuple[RunSpec, int]:
    """(a): every schedule of `SWEPT` at `SWEEP_LRS` LRs log-spaced over the search's LR range, `SWEEP_SEEDS` seeds
    each, at `epochs`; the control and LR with the lowest mean final val loss, and the run-epochs spent."""
    low, high = result.config.search.lr.low, result.config.search.lr.high
    lrs = [low * (high / low) ** (i / (SWEEP_LRS - 1)) for i in range(SWEEP_LRS)]
    answer = result.best
    runs = {
        (name, lr, seed): control_run(answer, make(epochs), lr, epochs).model_copy(update={"seed": seed})
        for name, make in SWEPT.items()
        if name in controls
        for lr in lrs
        for seed in range(SWEEP_SEEDS)
    }
    trained = train_as_certified(runs, result.config, data, device)
    means = {}
    for name in controls:
        for lr in lrs:
            values = [trained[name, lr, seed].val_loss for seed in range(SWEEP_SEEDS)]
            if None not in values:
                means[name, lr] = statistics.mean(values)
    name, lr = min(means, key=means.get)
    return control_run(answer, SWEPT[name](epochs), lr, epochs), len(runs) * epochs


def epochs_spent(args: argparse.Namespace) -> None:
    sweep_epochs = len(CAREFUL) * SWEEP_LRS * SWEEP_SEEDS * args.epochs
    print(
        f"run-epochs of {args.epochs}-epoch default searches ({args.trials} trials) and their certification; "
        f"trials/run-epochs; the careful sweep trains {sweep_epochs}"
    )
    print(
        f"{'task':<16}{'seed':>5}{'controls':>10}{'searched':>10}{'(full)':>7}{'cert tune':>10}{'raced':>7}"
        f"{'total':>7}{'ratio':>7}   recommended"
    )
    for task in args.tasks.split(","):
        for seed in _seeds(args):
            result = _uncertified_search(task, seed, args)
            spent = {True: [0, 0], False: [0, 0]}  # control trial? -> [trials, run-epochs]
            full = 0
            for trial in result.study.get_trials(deepcopy=False):
                record = TrialRecord.of(trial)
                control = record is not None and record.control is not None
                ran = len(trial.intermediate_values)
                spent[control][0] += 1
                spent[control][1] += ran
                full += not control and ran == args.epochs
            certificate = _certified_as_the_command(result, torch.device(args.device))
            raced = _raced_epochs(certificate)
            total = spent[True][1] + spent[False][1] + certificate.trained_epochs
            print(
                f"{task:<16}{seed:>5}{'/'.join(map(str, spent[True])):>10}{'/'.join(map(str, spent[False])):>10}"
                f"{full:>7}{certificate.trained_epochs - raced:>10}{raced:>7}{total:>7}{total / sweep_epochs:>7.2f}"
                f"   {certificate.recommended}",
                flush=True,
            )


def twins(args: argparse.Namespace) -> None:
    print(
        f"cosine to zero against linear decay to zero, each tuned by a sweep ({SWEEP_LRS} LRs x {SWEEP_SEEDS} seeds) "
        f"on the default search's best run (seed {args.seed}), then both at {CAREFUL_SEEDS} fresh seeds; cosine - "
        "linear decay, paired by seed (positive: linear decay better), mean ± 95% interval"
    )
    print(f"{'task':<16}{'epochs':>7}{'cosine lr':>11}{'linear lr':>11}{'val':>20}{'test':>20}{'cosine test':>18}")
    device = torch.device(args.device)
    for task in args.tasks.split(","):
        result = _uncertified_search(task, args.seed, args)
        data = load_data(result.config.data, result.config.study.seed, device)
        for epochs in (args.epochs, args.long):
            # The twins are the careful sweep's two schedules, each swept alone here.
            tuned = {name: _sweep(result, data, epochs, device, (name,))[0] for name in CAREFUL}
            trained = _trained_at_fresh_seeds(tuned, args.seed, CAREFUL_SEEDS, result, data, device)
            val = {name: [run.val_loss for run in runs] for name, runs in trained.items()}
            test = {name: [run.test_loss for run in runs] for name, runs in trained.items()}
            cosine, linear = CAREFUL
            print(
                f"{task:<16}{epochs:>7}{tuned[cosine].lr:>11.3g}{tuned[linear].lr:>11.3g}"
                f"{_paired(val[linear], val[cosine]):>20}{_paired(test[linear], test[cosine]):>20}"
                f"{_interval(test[cosine]):>18}",
                flush=True,
            )


def _interval(values: list[float] | None) -> str:
    if not values or None in values:
        return "div"
    interval = mean_interval(values)
    return f"{interval.mean:.4f} ± {interval.half_width or 0:.4f}"


def _paired(baseline: list[float] | None, recommended: list[float] | None) -> str:
    """The recommendation minus a baseline, paired by seed or by split (negative: the recommendation is better)."""
    if not baseline or not recommended or None in baseline or None in recommended:
        return "-"
    difference = paired_difference(baseline, recommended)  # baseline - recommended
    return f"{-difference.mean:+.4f} ± {difference.half_width or 0:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    certify_parser = commands.add_parser("certify")
    certify_parser.add_argument("--tasks", default=ALL_TASKS)
    certify_parser.add_argument("--seeds", default="0,1,2,3,4")
    certify_parser.add_argument("--trials", type=int, default=50)
    # The table's first settings; `--top 1 --fresh-seeds 10` are `lrsearch optimize`'s own.
    certify_parser.add_argument("--top", type=int, default=3)
    certify_parser.add_argument("--fresh-seeds", type=int, default=FRESH_SEEDS)
    seeds_parser = commands.add_parser("seeds")
    seeds_parser.add_argument("--tasks", default="classification,digits")
    seeds_parser.add_argument("--seeds", default="0,1,2,3,4")
    seeds_parser.add_argument("--seconds", type=float, default=10.0)
    reference_parser = commands.add_parser("reference")
    reference_parser.add_argument("--tasks", default="classification,moons,digits,regression")
    reference_parser.add_argument("--seeds", default="0,1,2")
    reference_parser.add_argument("--trials", type=int, default=50)
    reference_parser.add_argument("--reference-trials", type=int, default=500)
    length_parser = commands.add_parser("length")
    length_parser.add_argument("--tasks", default=ALL_TASKS)
    length_parser.add_argument("--seeds", default="0,1,2")
    length_parser.add_argument("--trials", type=int, default=50)
    length_parser.add_argument("--epochs", type=int, default=20)
    length_parser.add_argument("--long", type=int, default=100)
    sweep_parser = commands.add_parser("sweep")
    sweep_parser.add_argument("--tasks", default="classification,digits,wine,breast_cancer")
    sweep_parser.add_argument("--seeds", default="0,1")
    sweep_parser.add_argument("--trials", type=int, default=50)
    sweep_parser.add_argument("--epochs", type=int, default=20)
    sweep_parser.add_argument("--seeds-per-trial", type=int, default=1, help="the search's (and its walks') seeds")
    twins_parser = commands.add_parser("twins")
    twins_parser.add_argument("--tasks", default=ALL_TASKS)
    twins_parser.add_argument("--seed", type=int, default=0)
    twins_parser.add_argument("--trials", type=int, default=50)
    twins_parser.add_argument("--epochs", type=int, default=20)
    twins_parser.add_argument("--long", type=int, default=100)
    epochs_parser = commands.add_parser("epochs")
    epochs_parser.add_argument("--tasks", default="classification,digits,wine,breast_cancer,many-class,circles,moons")
    epochs_parser.add_argument("--seeds", default="0,1")
    epochs_parser.add_argument("--trials", type=int, default=50)
    epochs_parser.add_argument("--epochs", type=int, default=20)
    parsers = (certify_parser, seeds_parser, reference_parser, length_parser, sweep_parser, twins_parser, epochs_parser)
    for sub in parsers:
        sub.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.command == "certify":
        certified(args)
    elif args.command == "seeds":
        seeds_at_equal_time(args)
    elif args.command == "length":
        length(args)
    elif args.command == "sweep":
        against_sweep(args)
    elif args.command == "twins":
        twins(args)
    elif args.command == "epochs":
        epochs_spent(args)
    else:
        reference(args)


def reference(args: argparse.Namespace) -> None:
    with pinned_threads(torch.device(args.device)):  # the replays; each search sets its own workers
        _reference(args)


def _reference(args: argparse.Namespace) -> None:
    seeds = [int(seed) for seed in args.seeds.split(",")]

    header = f"{'task':<15}{'seed':>5}{'reference':>11}{'default':>9}{'gap':>9}{'random':>9}{'gap':>9}"
    header += f"{'const LR':>10}{'StepLR':>9}   seconds (ref/default/random)"
    print(
        f"test loss of each search's best trial ({args.trials} trials; reference: {args.reference_trials} "
        "random trials, unpruned)"
    )
    print(header)
    gaps: dict[str, dict[str, list[float]]] = {}
    for task in args.tasks.split(","):
        for seed in seeds:
            reference = best_of(task, seed, args.reference_trials, "random", "none", args.device)
            default = best_of(task, seed, args.trials, "tpe", PRUNER, args.device)
            random = best_of(task, seed, args.trials, "random", PRUNER, args.device)
            baselines = [test_loss(spec, args.device) for spec in baseline_specs(default.spec).values()]
            row = gaps.setdefault(task, {"default": [], "random": [], "const": [], "step": []})
            row["default"].append(default.test_loss - reference.test_loss)
            row["random"].append(random.test_loss - reference.test_loss)
            row["const"].append(baselines[0] - default.test_loss)
            row["step"].append(baselines[1] - default.test_loss)
            print(
                f"{task:<15}{seed:>5}{reference.text:>11}{default.text:>9}{row['default'][-1]:>+9.4f}"
                f"{random.text:>9}{row['random'][-1]:>+9.4f}{_loss(baselines[0]):>10}{_loss(baselines[1]):>9}"
                f"   {reference.seconds:.0f}/{default.seconds:.0f}/{random.seconds:.0f}",
                flush=True,
            )
    print("\nmean over seeds: gap to the reference (lower is better); baselines' test loss minus the default winner's")
    print(f"{'task':<15}{'default gap':>14}{'random gap':>14}{'const LR worse by':>20}{'StepLR worse by':>18}")
    for task, values in gaps.items():
        print(
            f"{task:<15}{_mean(values['default']):>14}{_mean(values['random']):>14}"
            f"{_mean(values['const']):>20}{_mean(values['step']):>18}"
        )


if __name__ == "__main__":
    main()
