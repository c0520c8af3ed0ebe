"""Training throughput and search quality: a loop as Optuna's PyTorch example writes it, lrsearch one
trial at a time, and lrsearch's stacked engines, side by side in one process.

Part 1 trains the same sampled trials (same data, epochs and seed, pruning off) with (a) a DataLoader loop
like Optuna's PyTorch example, written for the model, (b) `lrsearch.engines.lone` one trial at a time, (c) a
stacked engine, and prints trial-epochs per second, each the median of `--repeats` timings taken in turn
(a, b, c..., a, b, c...), and the ratios to (a) and (b). (a) and (b) run on one thread (their fastest: a
small model only loses from threads); (c) runs on all cores, as `lrsearch optimize` runs it. Models:
- the built-in MLP (`--epochs`-epoch trials): (c) its specialised engine (`lrsearch.engines.stacked_mlp`) at
  `--stacks`, and (c') the general torch.func engine (`lrsearch.engines.stacked_func`) at `--user-stacks`;
- models of a user's own, benchmarks/models.py, loaded as `--task benchmarks/models.py:NAME` loads them
  (`--user-epochs`-epoch trials): the conv net of studies/my_task.py on its own DataLoader, an MLP with
  LayerNorm and Dropout on the 8x8 digits and a residual MLP on the `regression` task's rows (tensors,
  batched by `batch_size`); (c) the general engine at `--user-stacks`.
Part 2 gives each way the same wall-clock budget for a search with pruning on (the built-in MLP), from
several seeds, and prints the best val loss each reached.

A stacked way trains one stack of K trials; (a) and (b) train `--lone-trials` trials. On a CPU shared with
other work, torch's OpenMP threads spin waiting for each other (a stack on 2 threads beside one busy process
trained 100x slower here): `--threads 1`, or OMP_WAIT_POLICY=PASSIVE in the environment, shows them without that.

    python benchmarks/throughput.py [--epochs 20] [--user-epochs 2] [--budget 15] [--seeds 3] [--repeats 3]
    python benchmarks/throughput.py --skip-quality --models digits_layernorm --user-epochs 5
    python benchmarks/throughput.py --device cuda --stacks 10,50,100,200,400 --user-stacks 10,50,200 --skip-quality
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import models  # benchmarks/models.py, beside this script
import optuna
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lrsearch.base.logs import quiet_optuna
from lrsearch.base.stopping import StopSignal
from lrsearch.engines.lone import Diverged, train
from lrsearch.engines.stacked_func import FuncStackedTrainer, stackable
from lrsearch.engines.stacked_mlp import StackedTrainer
from lrsearch.problem.build import build_optimizer, build_scheduler, step_on
from lrsearch.problem.config import SearchConfig
from lrsearch.problem.data import Data, load_data
from lrsearch.problem.model import make_mlp
from lrsearch.problem.space import sample_run_spec
from lrsearch.problem.spec import RunSpec
from lrsearch.problem.tasks import load_user_task
from lrsearch.searching.workers import run_here
from lrsearch.trials.objective import Objective
from lrsearch.trials.pruners import make_pruner
from lrsearch.trials.samplers import make_sampler

CORES = len(os.sched_getaffinity(0))
USER_MODELS = {
    "conv_digits": ("conv net of studies/my_task.py, its DataLoader (digits, batch 64)", models.CONV_DIGITS),
    "digits_layernorm": ("MLP + LayerNorm + Dropout, digits tensors (batch 32)", models.DIGITS_LAYERNORM),
    "regression_resmlp": ("residual MLP, `regression` rows as tensors (batch 32)", models.REGRESSION_RESMLP),
}


@dataclass(frozen=True)
class Example:
    """What Optuna's PyTorch example loop trains: a model, a loss, a DataLoader over host memory and the
    val split."""

    model: Callable[[RunSpec], nn.Module]
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    loader: Callable[[int], DataLoader]  # batch size -> the train DataLoader
    val: tuple[torch.Tensor, torch.Tensor]


def builtin_example(data: Data) -> Example:
    """The built-in MLP written as Optuna's example writes a model."""
    x, y = data.train.x.cpu(), data.train.y.cpu()
    return Example(
        model=lambda spec: make_mlp(data.n_features, spec.model.hidden, data.n_outputs),
        loss=F.cross_entropy,
        loader=lambda batch_size: DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True),
        val=(data.val.x, data.val.y),
    )


def user_example(task_name: str) -> Example:
    """A user's model written as Optuna's example writes one: its own DataLoader, or one over its tensors."""
    task = load_user_task(task_name)
    if isinstance(task.train, DataLoader):
        loader = task.train
        make_loader: Callable[[int], DataLoader] = lambda _batch_size: loader  # noqa: E731
    else:
        dataset = TensorDataset(*task.train)
        make_loader = lambda batch_size: DataLoader(dataset, batch_size=batch_size, shuffle=True)  # noqa: E731
    return Example(model=lambda _spec: task.model(), loss=task.loss, loader=make_loader, val=tuple(task.val))


def optuna_example_loop(spec: RunSpec, example: Example, device: torch.device, on_epoch=None) -> float:
    """(a): a trial trained as Optuna's PyTorch example trains one (a DataLoader over host memory, each
    batch moved to the device, a model per trial)."""
    torch.manual_seed(spec.seed)
    model = example.model(spec).to(device)
    optimizer = build_optimizer(spec, model.parameters())
    loader = example.loader(spec.batch_size)
    scheduler = build_scheduler(spec, optimizer, len(loader))
    when = step_on(spec)
    x_val, y_val = (t.to(device) for t in example.val)
    val_loss = float("nan")
    for epoch in range(spec.epochs):
        model.train()
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            example.loss(model(x), y).backward()
            optimizer.step()
            if when == "batch":
                scheduler.step()
        model.eval()
        with torch.no_grad():
            val_loss = example.loss(model(x_val), y_val).item()
        if when == "metric":
            scheduler.step(val_loss)
        elif when == "epoch":
            scheduler.step()
        if on_epoch is not None:
            on_epoch(epoch + 1, val_loss)
    return val_loss


def sampled_specs(config: SearchConfig, data: Data, trials: int) -> list[RunSpec]:
    """The search's first `trials` trials (random sampler, the config's seed), as it would sample them."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=config.study.seed))
    steps = data.steps_per_epoch(config.train.batch_size)
    return [sample_run_spec(study.ask(), config, steps) for _ in range(trials)]


Way = Callable[[list[RunSpec]], int]  # trains the trials it is given; returns the trial-epochs it trained


def lone_ways(example: Example, data: Data, device: torch.device) -> dict[str, Way]:
    def loop(specs: list[RunSpec]) -> int:
        for spec in specs:
            optuna_example_loop(spec, example, device)  # a NaN loss trains on, as in Optuna's example
        return sum(s.epochs for s in specs)

    def lone(specs: list[RunSpec]) -> int:
        epochs = 0
        for spec in specs:
            try:
                epochs += len(train(spec, data, device).epochs)
            except Diverged as diverged:  # it stops at the epoch whose loss became NaN
                epochs += len(diverged.history.epochs) + 1
        return epochs

    return {"(a) Optuna-example loop": loop, "(b) lrsearch, one at a time": lone}


def stacked_way(engine: type, data: Data, device: torch.device) -> Way:
    def stacked(specs: list[RunSpec]) -> int:
        trainer = engine(data, specs[0], device)
        for index, spec in enumerate(specs):
            trainer.add(index, spec)
        for _ in range(specs[0].epochs):
            trainer.train_epoch()  # a diverged trial trains on in its row, as in a search until it is removed
        return sum(s.epochs for s in specs)

    return stacked


def measure(title: str, ways: dict[str, tuple[Way, int]], specs: list[RunSpec], args: argparse.Namespace) -> None:
    """Time each way on its first `count` specs (a lone way on 1 thread, a stacked one on `args.threads`), in
    turn, `args.repeats` times, after a warm-up of each; print the medians."""
    device, repeats = torch.device(args.device), args.repeats

    def timed(way: Way, count: int, threads: int, epochs: int | None = None) -> float:
        chosen = specs[:count] if epochs is None else [s.model_copy(update={"epochs": epochs}) for s in specs[:count]]
        torch.set_num_threads(threads)
        started = time.perf_counter()
        trained = way(chosen)
        _sync(device)
        return trained / (time.perf_counter() - started)

    threads = {name: 1 if name.startswith(("(a)", "(b)")) else args.threads for name in ways}
    for name, (way, count) in ways.items():  # the first run of each way pays for torch's warm-up
        timed(way, min(count, 2), threads[name], epochs=1)
    rates: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(repeats):
        for name, (way, count) in ways.items():
            rates[name].append(timed(way, count, threads[name]))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    base, lone = medians["(a) Optuna-example loop"], medians["(b) lrsearch, one at a time"]
    print(f"\n{title}: {specs[0].epochs}-epoch trials, trial-epochs/s, median of {repeats}")
    print(f"  {'':38s} {'trials':>6s} {'trial-epochs/s':>15s} {'vs (a)':>7s} {'vs (b)':>7s}   min..max")
    for name, rate in medians.items():
        spread = f"{min(rates[name]):.1f}..{max(rates[name]):.1f}"
        print(f"  {name:38s} {ways[name][1]:6d} {rate:15.1f} {rate / base:6.2f}x {rate / lone:6.2f}x   {spread}")


def throughput(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    stacks, user_stacks = _sizes(args.stacks), _sizes(args.user_stacks)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{CORES} CPU cores"
    if "OMP_WAIT_POLICY" in os.environ:
        where += f", OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}"
    print(f"\nthroughput on {device} ({where}): (a), (b) on 1 thread, (c) on {args.threads}; pruning off")

    config = SearchConfig.model_validate({"train": {"epochs": args.epochs}})
    data = load_data(config.data, config.study.seed, device)
    specs = sampled_specs(config, data, max(stacks + user_stacks + [args.lone_trials]))
    ways = {name: (way, args.lone_trials) for name, way in lone_ways(builtin_example(data), data, device).items()}
    for k in stacks:
        ways[f"(c) stacked, K={k}"] = (stacked_way(StackedTrainer, data, device), k)
    for k in user_stacks:
        ways[f"(c') general engine, K={k}"] = (stacked_way(FuncStackedTrainer, data, device), k)
    measure("built-in MLP (classification, 3000 train rows, hidden 64, batch 32)", ways, specs, args)

    for key in args.models.split(",") if args.models else []:
        title, task = USER_MODELS[key]
        config = SearchConfig.model_validate({"data": {"task": task}, "train": {"epochs": args.user_epochs}})
        data = load_data(config.data, config.study.seed, device)
        specs = sampled_specs(config, data, max(user_stacks + [args.lone_trials]))
        why = stackable(data, specs[0], device)
        if why is not None:
            print(f"\n{title}: the general engine can't stack it ({why})")
            continue
        ways = {name: (way, args.lone_trials) for name, way in lone_ways(user_example(task), data, device).items()}
        for k in user_stacks:
            ways[f"(c) general engine, K={k}"] = (stacked_way(FuncStackedTrainer, data, device), k)
        measure(f"{title}, {_rows(data, specs[0].batch_size)}", ways, specs, args)


def _rows(data: Data, batch_size: int) -> str:
    rows = len(data.train.dataset) if isinstance(data.train, DataLoader) else len(data.train)
    return f"{rows} train rows, {data.steps_per_epoch(batch_size)} steps an epoch"


def _sizes(text: str) -> list[int]:
    return [int(k) for k in text.split(",") if k]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def search_quality(config: SearchConfig, data: Data, budget: float, seeds: int) -> None:
    """Part 2: the best val loss each way reaches in the same wall-clock budget, pruning on."""
    results: dict[str, list[tuple[float, int, float]]] = {}
    for seed in range(seeds):
        for name, result in _searches(config, data, budget, seed).items():
            results.setdefault(name, []).append(result)
    print(f"\nsearch quality: {budget:.0f} s for each search, TPE + median pruner, seeds 0..{seeds - 1}")
    print(f"{'':30s} {'trials':>7s} {'best val loss, mean':>20s}   per seed")
    for name, runs in results.items():
        trials = sum(r[1] for r in runs) / len(runs)
        bests = [r[2] for r in runs]
        per_seed = " ".join(f"{b:.4f}" for b in bests)
        print(f"{name:30s} {trials:7.0f} {sum(bests) / len(bests):20.4f}   {per_seed}")


def _searches(config: SearchConfig, data: Data, budget: float, seed: int) -> dict[str, tuple[float, int, float]]:
    def new_study() -> optuna.Study:
        return optuna.create_study(
            sampler=make_sampler("tpe", seed), pruner=make_pruner(config.study.pruner, config.train.epochs)
        )

    results = {}
    torch.set_num_threads(1)
    study = new_study()
    cpu = torch.device("cpu")
    results["(a) Optuna-example loop"] = _timed(lambda: example_search(study, config, data, timeout=budget), study)
    for stack in (1, 10, 16, 25):
        torch.set_num_threads(1 if stack == 1 else CORES)
        study = new_study()
        stop = StopSignal()
        timer = threading.Timer(budget, stop.set)  # running trials end at their next epoch, unfinished
        timer.start()
        searching = Objective(config, data, cpu, stop)
        label = "(b) lrsearch, one at a time" if stack == 1 else f"(c) stacked, K={stack}"
        results[label] = _timed(lambda s=study, o=searching, k=stack: run_here(s, o, None, stack=k), study)
    return results


def example_search(
    study: optuna.Study,
    config: SearchConfig,
    data: Data,
    *,
    trials: int | None = None,
    timeout: float | None = None,
    prune_from: int | None = None,
) -> None:
    """(a) as a search: Optuna's PyTorch example's objective (report each epoch, then `should_prune` from
    epoch `prune_from`, by default the first the config's pruner judges), on the CPU, trials sampled from
    lrsearch's search space."""
    cpu = torch.device("cpu")
    objective = Objective(config, data, cpu)
    example = builtin_example(data)
    first = objective.first_pruning_epoch if prune_from is None else prune_from

    def example_objective(trial: optuna.Trial) -> float:
        spec = objective.begin(trial)

        def report(epoch: int, val_loss: float) -> None:
            trial.report(val_loss, epoch)
            if epoch >= first and trial.should_prune():
                raise optuna.TrialPruned()

        return optuna_example_loop(spec, example, cpu, report)

    study.optimize(example_objective, n_trials=trials, timeout=timeout)


def _timed(run, study: optuna.Study) -> tuple[float, int, float]:
    started = time.perf_counter()
    run()
    finished = [t for t in study.trials if t.state.is_finished() and t.state.name != "FAIL"]
    return time.perf_counter() - started, len(finished), study.best_value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="epochs of a built-in MLP trial (parts 1 and 2)")
    parser.add_argument("--user-epochs", type=int, default=2, help="epochs of a trial of a user's model (part 1)")
    parser.add_argument("--stacks", default="10,25,50", help="the built-in MLP's specialised engine: stack sizes")
    parser.add_argument("--user-stacks", default="10,50", help="the general engine: stack sizes")
    parser.add_argument("--lone-trials", type=int, default=3, help="trials timed by (a) and (b) each time")
    parser.add_argument("--repeats", type=int, default=3, help="timings of each way in part 1 (the median)")
    parser.add_argument(
        "--threads", type=int, default=CORES, help="torch threads of a stacked way in part 1 (default: all cores)"
    )
    parser.add_argument(
        "--models", default=",".join(USER_MODELS), help=f"user models in part 1, of {', '.join(USER_MODELS)}"
    )
    parser.add_argument("--budget", type=float, default=15.0, help="seconds per search in part 2")
    parser.add_argument("--seeds", type=int, default=3, help="searches per way in part 2")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (part 1 only)")
    args = parser.parse_args()
    quiet_optuna()
    if not args.skip_throughput:
        throughput(args)
    if not args.skip_quality:
        config = SearchConfig.model_validate({"train": {"epochs": args.epochs}})
        search_quality(config, load_data(config.data, config.study.seed), args.budget, args.seeds)


if __name__ == "__main__":
    main()
