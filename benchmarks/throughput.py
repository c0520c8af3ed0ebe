"""Training throughput and search quality: a loop as Optuna's PyTorch example writes it, lrsearch one
trial at a time, and lrsearch's stacked engine, side by side in one process.

Part 1 trains the same sampled trials (same data, epochs and seed, pruning off) with (a) a DataLoader loop
like Optuna's PyTorch example, (b) `lrsearch.train` one trial at a time, (c) the stacked engine at K = 10,
25 and 50, and prints trial-epochs per second and the ratio to (a). (a) and (b) run on one thread (their
fastest: a small MLP only loses from threads); (c) runs on all cores, as `lrsearch optimize` runs it.
Part 2 gives each way the same wall-clock budget for a search with pruning on, from several seeds, and
prints the best val loss each reached.

    python benchmarks/throughput.py [--trials 50] [--epochs 20] [--budget 15] [--seeds 3]
    python benchmarks/throughput.py --device cuda --trials 400 --stacks 10,50,100,200,400 --skip-quality
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import optuna
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from lrsearch.build import build_optimizer, build_scheduler, step_on
from lrsearch.config import SearchConfig
from lrsearch.data import Data, load_data
from lrsearch.logs import quiet_optuna
from lrsearch.model import make_mlp
from lrsearch.objective import Objective
from lrsearch.space import sample_run_spec
from lrsearch.spec import RunSpec
from lrsearch.stacked import StackedTrainer
from lrsearch.stopping import StopSignal
from lrsearch.study import make_pruner, make_sampler
from lrsearch.workers import run_here

CORES = len(os.sched_getaffinity(0))


def optuna_example_loop(spec: RunSpec, data: Data, on_epoch=None) -> float:
    """(a): a trial trained as Optuna's PyTorch example trains one (a DataLoader over host memory, each
    batch moved to the device, a model per trial)."""
    device = data.train.x.device
    torch.manual_seed(spec.seed)
    model = make_mlp(data.n_features, spec.model.hidden, data.n_outputs).to(device)
    optimizer = build_optimizer(spec, model.parameters())
    dataset = TensorDataset(data.train.x.cpu(), data.train.y.cpu())
    loader = DataLoader(dataset, batch_size=spec.batch_size, shuffle=True)
    scheduler = build_scheduler(spec, optimizer, len(loader))
    when = step_on(spec)
    val_loss = float("nan")
    for epoch in range(spec.epochs):
        model.train()
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
            if when == "batch":
                scheduler.step()
        model.eval()
        with torch.no_grad():
            val_loss = F.cross_entropy(model(data.val.x), data.val.y).item()
        if when == "metric":
            scheduler.step(val_loss)
        elif when == "epoch":
            scheduler.step()
        if on_epoch is not None:
            on_epoch(epoch + 1, val_loss)
    return val_loss


def sampled_specs(config: SearchConfig, data: Data, trials: int) -> list[RunSpec]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=config.study.seed))
    return [sample_run_spec(study.ask(), config, data.steps_per_epoch(config.train.batch_size)) for _ in range(trials)]


def throughput(config: SearchConfig, data: Data, trials: int, stacks: list[int]) -> None:
    specs = sampled_specs(config, data, trials)
    device = data.train.x.device
    lone = specs[: min(trials, 20)]  # one at a time, the rate is the same for 20 trials as for 200
    epochs = config.train.epochs
    rates: dict[str, float] = {}
    torch.set_num_threads(1)
    for name, run in (
        ("(a) Optuna-example loop", lambda s: optuna_example_loop(s, data)),
        ("(b) lrsearch, one at a time", lambda s: lrsearch_train(s, data, device)),
    ):
        started = time.perf_counter()
        for spec in lone:
            run(spec)
        _sync(device)
        rates[name] = len(lone) * epochs / (time.perf_counter() - started)
    torch.set_num_threads(CORES)
    for stack in stacks:
        started = time.perf_counter()
        for first in range(0, trials, stack):
            trainer = StackedTrainer(data, specs[0], device)
            for index, spec in enumerate(specs[first : first + stack]):
                trainer.add(index, spec)
            for _ in range(epochs):
                trainer.train_epoch()
        _sync(device)
        rates[f"(c) stacked, K={stack}"] = trials * epochs / (time.perf_counter() - started)
    base = rates["(a) Optuna-example loop"]
    where = f"{CORES} CPU cores; (a), (b) on 1 thread" if device.type == "cpu" else torch.cuda.get_device_name(device)
    print(f"\nthroughput on {device}: {trials} trials x {epochs} epochs, pruning off ({where})")
    print(f"{'':30s} {'trial-epochs/s':>15s} {'vs (a)':>8s}")
    for name, rate in rates.items():
        print(f"{name:30s} {rate:15.1f} {rate / base:7.1f}x")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def lrsearch_train(spec: RunSpec, data: Data, device: torch.device) -> None:
    from lrsearch.train import train

    train(spec, data, device)


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
    objective = Objective(config, data, torch.device("cpu"))

    def example_objective(trial: optuna.Trial) -> float:
        spec = objective.begin(trial)

        def report(epoch: int, val_loss: float) -> None:
            trial.report(val_loss, epoch)
            if epoch >= objective.first_pruning_epoch and trial.should_prune():
                raise optuna.TrialPruned()

        return optuna_example_loop(spec, data, report)

    results["(a) Optuna-example loop"] = _timed(lambda: study.optimize(example_objective, timeout=budget), study)
    for stack in (1, 10, 16, 25):
        torch.set_num_threads(1 if stack == 1 else CORES)
        study = new_study()
        stop = StopSignal()
        timer = threading.Timer(budget, stop.set)  # running trials end at their next epoch, unfinished
        timer.start()
        searching = Objective(config, data, torch.device("cpu"), stop)
        label = "(b) lrsearch, one at a time" if stack == 1 else f"(c) stacked, K={stack}"
        results[label] = _timed(lambda s=study, o=searching, k=stack: run_here(s, o, None, stack=k), study)
    return results


def _timed(run, study: optuna.Study) -> tuple[float, int, float]:
    started = time.perf_counter()
    run()
    finished = [t for t in study.trials if t.state.is_finished() and t.state.name != "FAIL"]
    return time.perf_counter() - started, len(finished), study.best_value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--budget", type=float, default=15.0, help="seconds per search in part 2")
    parser.add_argument("--seeds", type=int, default=3, help="searches per way in part 2")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (part 1 only)")
    parser.add_argument("--stacks", default="10,25,50", help="stack sizes for part 1")
    args = parser.parse_args()
    quiet_optuna()
    config = SearchConfig.model_validate({"train": {"epochs": args.epochs}})
    if not args.skip_throughput:
        device_data = load_data(config.data, config.study.seed, args.device)
        throughput(config, device_data, args.trials, [int(k) for k in args.stacks.split(",")])
    if not args.skip_quality:
        search_quality(config, load_data(config.data, config.study.seed), args.budget, args.seeds)


if __name__ == "__main__":
    main()
