"""A task's own steps and settings (`lrsearch.Task`'s hooks), trained by the lone engine and, where the
steps are functional, stacked with `torch.func` to the same numbers; their defaults change nothing."""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path

import optuna
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from lrsearch.engines.lone import Diverged, LoneRun, train
from lrsearch.engines.stacked_func import FuncStackedTrainer, stackable
from lrsearch.problem.build import LoadedSchedule
from lrsearch.problem.data import Data, load_data
from lrsearch.problem.hooks import Hooks
from lrsearch.problem.schedules import SCHEDULES, Budget
from lrsearch.problem.space import _Namespaced
from lrsearch.problem.spec import DataSpec, ModelSpec, OptimizerSpec, RunSpec, ScheduleSpec

TASKS = Path(__file__).with_name("hook_tasks.py")
ONE_CYCLE = {"pct_start": 0.3, "div_factor": 10.0, "final_div_factor": 100.0, "anneal_strategy": "cos"}


def _task(name: str) -> tuple[Data, DataSpec]:
    spec = DataSpec(task=f"{TASKS}:{name}")
    return load_data(spec, seed=0), spec


def _spec(data_spec: DataSpec, seed: int = 0, **fields) -> RunSpec:
    defaults = {"lr": 0.1, "schedule": ScheduleSpec(name="OneCycleLR", params=ONE_CYCLE), "epochs": 3, "batch_size": 16}
    return RunSpec(data=data_spec, model=ModelSpec(hidden=16), seed=seed, **(defaults | fields))


def _with(data: Data, **hooks) -> Data:
    return dataclasses.replace(data, hooks=dataclasses.replace(data.hooks, **hooks))


def _stacked(data: Data, specs: dict[object, RunSpec]) -> dict[object, list]:
    """Each spec's records, all trained in one stack."""
    trainer = FuncStackedTrainer(data, next(iter(specs.values())))
    for key, spec in specs.items():
        trainer.add(key, spec)
    outcomes: dict[object, list] = {key: [] for key in specs}
    for _ in range(max(spec.epochs for spec in specs.values())):
        for outcome in trainer.train_epoch():
            outcomes[outcome.key].append(outcome)
    return outcomes


def _assert_equal(stacked: list, alone: list) -> None:
    assert [r.lr for r in stacked] == [r.lr for r in alone] and [r.step_lrs for r in stacked] == [
        r.step_lrs for r in alone
    ]
    for name in ("train_loss", "val_loss", "val_score"):
        assert [getattr(r, name) for r in stacked] == pytest.approx([getattr(r, name) for r in alone], abs=1e-6)


@pytest.mark.parametrize("task", ["dict_batches", "three_tensors"])
def test_dict_batches_and_a_two_input_model_train_and_stack(task):
    data, data_spec = _task(task)
    specs = {seed: _spec(data_spec, seed) for seed in (1, 2)}
    specs[3] = _spec(data_spec, 3, schedule=ScheduleSpec(name="StepLR", params={"step_size": 1, "gamma": 0.5}))
    assert stackable(data, specs[1]) is None  # the steps are functional: one vmap runs every trial's
    stacked = _stacked(data, specs)
    for key, spec in specs.items():
        alone = train(spec, data).epochs
        _assert_equal([o.record for o in stacked[key]], alone)
        assert alone[-1].val_loss < alone[0].val_loss and 0 <= alone[-1].val_score <= 1  # it learns
    assert train(specs[1], data).epochs == train(specs[1], data).epochs  # the seed decides every number


def test_a_user_score_is_the_score_function_on_the_eval_step_s_output():
    from hook_tasks import macro_f1

    data, data_spec = _task("dict_batches")
    assert data.score == "f1" and data.hooks.direction == "maximize"
    run = LoneRun(_spec(data_spec), data, "cpu")
    record = run.train_epoch()
    run.model.eval()
    with torch.no_grad():
        batches = list(data.val)
        output = torch.cat([run.model(b["a"], b["b"]) for b in batches])
        target = torch.cat([b["label"] for b in batches])
    assert record.val_score == pytest.approx(macro_f1(output, target), abs=1e-12)
    assert record.val_loss == pytest.approx(torch.nn.functional.cross_entropy(output, target).item(), abs=1e-6)


def test_autocast_bfloat16_runs_the_steps_in_bfloat16_and_keeps_float32_weights():
    from hook_tasks import dict_step

    data, data_spec = _task("dict_batches")
    dtypes = []

    def watching(model, batch):
        dtypes.append(model(batch["a"], batch["b"]).dtype)
        return dict_step(model, batch)

    low = _with(data, train_step=watching, autocast="bfloat16")
    spec = _spec(data_spec)
    run = LoneRun(spec, low, "cpu")
    record = run.train_epoch()
    assert set(dtypes) == {torch.bfloat16} and len(dtypes) == low.batches_per_epoch(16)
    assert {p.dtype for p in run.model.parameters()} == {torch.float32}
    batch = next(iter(data.val))
    assert low.eval_outputs(run.model, batch)[0].dtype == torch.float32  # the loss is measured in float32
    full = train(spec, data).epochs[0]
    assert record.val_loss != full.val_loss and record.val_loss == pytest.approx(full.val_loss, abs=0.05)
    assert "autocast bfloat16" in stackable(low, spec)  # vmap would run it in float32: one at a time


def _step_norms(data: Data, spec: RunSpec) -> tuple[list, list[float]]:
    """The run's records and each optimizer step's gradient norm, as the step takes it."""
    norms: list[float] = []

    def norm(optimizer, args, kwargs) -> None:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        norms.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())

    hook = register_optimizer_step_pre_hook(norm)
    try:
        return train(spec, data).epochs, norms
    finally:
        hook.remove()


def test_clipping_bounds_every_step_s_gradient_and_stacks(tiny_data, tiny_data_spec):
    spec = _spec(tiny_data_spec, optimizer=OptimizerSpec(name="sgd", momentum=0.9))
    plain, plain_norms = _step_norms(tiny_data, spec)
    clipped_data = _with(tiny_data, clip_grad_norm=0.05)
    clipped, norms = _step_norms(clipped_data, spec)
    assert max(plain_norms) > 0.5 and max(norms) <= 0.05 * (1 + 1e-5)
    assert len(norms) == len(plain_norms) and clipped[-1].val_loss != plain[-1].val_loss
    assert _step_norms(_with(tiny_data, clip_grad_norm=1e9), spec)[0] == plain  # a bound never met: no change
    specs = {seed: spec.model_copy(update={"seed": seed}) for seed in (0, 1)}
    stacked = _stacked(clipped_data, specs)  # each trial clipped by its own gradient's norm
    for seed, one in specs.items():
        _assert_equal([o.record for o in stacked[seed]], train(one, clipped_data).epochs)


def test_accumulating_two_batches_of_16_is_a_step_of_32(tiny_data, tiny_data_spec):
    """Two batches' mean losses, each halved, make the gradient of their 32 rows: the same run as batches of
    32, and OneCycleLR steps once an optimizer step (stepped per batch it would run past its end and raise)."""
    of_32 = _spec(tiny_data_spec, batch_size=32)
    accumulating = _with(tiny_data, accumulate_batches=2)
    of_16 = of_32.model_copy(update={"batch_size": 16})
    assert accumulating.steps_per_epoch(16) == tiny_data.steps_per_epoch(32) == 8
    steps: list[int] = []
    hook = register_optimizer_step_pre_hook(lambda optimizer, args, kwargs: steps.append(1))
    try:
        accumulated = train(of_16, accumulating).epochs
    finally:
        hook.remove()
    assert len(steps) == 8 * of_16.epochs
    expected = train(of_32, tiny_data).epochs
    assert [r.step_lrs for r in accumulated] == [r.step_lrs for r in expected] and len(expected[0].step_lrs) == 8
    assert [r.val_loss for r in accumulated] == pytest.approx([r.val_loss for r in expected], abs=1e-6)
    specs = {seed: of_16.model_copy(update={"seed": seed}) for seed in (0, 4)}
    stacked = _stacked(accumulating, specs)
    for seed, spec in specs.items():
        _assert_equal([o.record for o in stacked[seed]], train(spec, accumulating).epochs)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_accumulating_every_schedule_steps_at_its_own_granularity(name, tiny_data, tiny_data_spec):
    """Per optimizer step (OneCycleLR, CyclicLR), per epoch, or on the val loss (ReduceLROnPlateau)."""
    data = _with(tiny_data, accumulate_batches=3)
    steps = data.steps_per_epoch(16)
    assert (data.batches_per_epoch(16), steps) == (15, 5)
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3)).ask()
    params = SCHEDULES[name].suggest(_Namespaced(trial, name), Budget(4, steps))
    spec = _spec(tiny_data_spec, schedule=ScheduleSpec(name=name, params=params), epochs=4, lr=0.05)
    taken: list[float] = []
    hook = register_optimizer_step_pre_hook(
        lambda optimizer, args, kwargs: taken.append(optimizer.param_groups[0]["lr"])
    )
    try:
        history = train(spec, data)
    finally:
        hook.remove()
    schedule = LoadedSchedule(spec)
    optimizer, scheduler = schedule.shadow(steps)
    expected = []
    for record in history.epochs:
        for _ in range(steps):
            expected.append(optimizer.param_groups[0]["lr"])
            schedule.after_batch(scheduler)
        schedule.after_epoch(scheduler, record.val_loss)
    assert taken == pytest.approx(expected, rel=1e-12)


def test_a_diverging_run_with_its_own_steps_ends_with_its_reason():
    from hook_tasks import Unbounded

    data, data_spec = _task("dict_batches")
    data = dataclasses.replace(data, model_factory=Unbounded)
    spec = _spec(data_spec, lr=1e6, schedule=ScheduleSpec(name="none"), epochs=4)
    with pytest.raises(Diverged, match=r"became (nan|inf) at epoch"):
        train(spec, data)
    outcomes = _stacked(data, {0: spec})[0]
    assert outcomes[-1].record is None and re.search(r"became (nan|inf) at epoch", outcomes[-1].diverged)


def test_the_defaults_are_the_steps_lrsearch_always_took(tiny_data, tiny_data_spec):
    spec = _spec(tiny_data_spec)
    explicit = _with(
        tiny_data,
        train_step=lambda model, batch: tiny_data.loss(model(batch[0]), batch[1]),
        eval_step=lambda model, batch: (model(batch[0]), batch[1]),
    )
    assert tiny_data.hooks == Hooks() and tiny_data.stackable and not explicit.stackable
    assert train(spec, explicit).epochs == train(spec, tiny_data).epochs  # bit for bit
    assert all(math.isfinite(r.val_loss) for r in train(spec, tiny_data).epochs)
