"""The torch.func stacked engine: a stacked trial equals `lrsearch.engines.lone.train` of its spec, for any model."""

from __future__ import annotations

import dataclasses
import itertools
import math
import re

import optuna
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lrsearch.engines.lone import train
from lrsearch.engines.stacked_func import FuncStackedTrainer, stackable
from lrsearch.problem.data import Data, Split, load_data
from lrsearch.problem.model import make_mlp
from lrsearch.problem.schedules import SCHEDULES, Budget
from lrsearch.problem.space import _Namespaced
from lrsearch.problem.spec import DataSpec, ModelSpec, OptimizerSpec, RunSpec, ScheduleSpec
from studies.my_task import SmallConvNet

EPOCHS = 4
BATCH = 32
OPTIMIZERS = {
    "sgd": OptimizerSpec(name="sgd", momentum=0.9),
    "sgd-nesterov-decay": OptimizerSpec(name="sgd", momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam-decay": OptimizerSpec(name="adam", momentum=0.9, weight_decay=1e-3),
    "adamw-decay": OptimizerSpec(name="adamw", momentum=0.85, weight_decay=1e-2),
}
SCHEDULE_NAMES = ["OneCycleLR", "StepLR", "ReduceLROnPlateau"]  # per batch, per epoch, on the metric
CASES = list(itertools.product(SCHEDULE_NAMES, OPTIMIZERS))
USER_TASK = DataSpec(task="tests.test_func_stacked:task")  # named only; the tests build the Data themselves


class LayerNormMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 32), nn.LayerNorm(32), nn.GELU(), nn.Linear(32, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class BatchNormMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        # No bias before the BatchNorm: its gradient is zero but for rounding, which Adam would blow up.
        self.net = nn.Sequential(nn.Linear(64, 32, bias=False), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class DropoutMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class Branching(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x.flatten(1))
        return out if x.sum() > 0 else -out


class CallsItem(Branching):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1)) * x.max().item()


class Unused(Branching):
    def __init__(self) -> None:
        super().__init__()
        self.spare = nn.Linear(3, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x.flatten(1))


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, ...]:
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    x = torch.tensor(images[:400] / 16.0, dtype=torch.float32).view(-1, 1, 8, 8)
    y = torch.tensor(labels[:400])
    return x[:300], y[:300], x[300:], y[300:]


def _user_data(digits, model: type[nn.Module], train: str = "tensors") -> Data:
    x, y, x_val, y_val = digits
    if train == "tensors":
        source = Split(x, y)
    else:
        # 288 rows, 9 whole batches: the sampler's last draw comes after the last batch, where a `for` ends.
        generator = torch.Generator() if train == "loader with generator" else None
        source = DataLoader(TensorDataset(x[:288], y[:288]), batch_size=BATCH, shuffle=True, generator=generator)
    return Data(
        train=source,
        val=Split(x_val, y_val),
        test=None,
        kind=None,
        score="accuracy",
        model_factory=model,
        loss_fn=F.cross_entropy,
    )


MODELS = ["mlp", "conv on tensors", "conv on a loader", "conv on a loader with generator", "layernorm-gelu"]


def _data(name: str, digits) -> tuple[Data, DataSpec]:
    if name == "mlp":
        spec = DataSpec(**TINY["data"])
        return load_data(spec, seed=0), spec
    if name == "layernorm-gelu":
        return _user_data(digits, LayerNormMLP), USER_TASK
    return _user_data(digits, SmallConvNet, name.removeprefix("conv on ").removeprefix("a ")), USER_TASK


def _spec(data: Data, data_spec: DataSpec, schedule: str, optimizer: str, seed: int, **fields) -> RunSpec:
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()
    params = SCHEDULES[schedule].suggest(_Namespaced(trial, schedule), Budget(EPOCHS, data.steps_per_epoch(BATCH)))
    return RunSpec(
        data=data_spec,
        model=ModelSpec(hidden=16),
        optimizer=OPTIMIZERS[optimizer],
        lr=0.01 if optimizer.startswith("adam") else 0.05,
        schedule=ScheduleSpec(name=schedule, params=params),
        epochs=fields.pop("epochs", EPOCHS),
        batch_size=BATCH,
        seed=seed,
        **fields,
    )


def _alone(spec: RunSpec, data: Data) -> tuple[list, dict[str, torch.Tensor]]:
    """`train(spec, data)`'s records and its model's final parameters and buffers."""
    made: list[nn.Module] = []
    factory = data.model_factory or (lambda: make_mlp(data.n_features, spec.model.hidden, data.n_outputs))

    def recording() -> nn.Module:
        made.append(factory())
        return made[-1]

    records = train(spec, dataclasses.replace(data, model_factory=recording)).epochs
    return records, dict(made[0].named_parameters()) | dict(made[0].named_buffers())


def _train(trainer: FuncStackedTrainer, epochs: int) -> dict[object, list]:
    outcomes: dict[object, list] = {}
    for _ in range(epochs):
        for outcome in trainer.train_epoch():
            outcomes.setdefault(outcome.key, []).append(outcome)
    return outcomes


def _assert_equal(stacked: list, alone: list) -> None:
    assert [r.epoch for r in stacked] == [r.epoch for r in alone]
    assert [r.lr for r in stacked] == [r.lr for r in alone]  # the real scheduler drove both
    assert [r.step_lrs for r in stacked] == [r.step_lrs for r in alone]
    for mine, theirs in zip(stacked, alone, strict=True):
        assert mine.val_loss == pytest.approx(theirs.val_loss, abs=1e-6)
        assert mine.train_loss == pytest.approx(theirs.train_loss, abs=1e-6)
        assert mine.val_score == pytest.approx(theirs.val_score, abs=1e-6)


@pytest.fixture(scope="module", params=MODELS)
def stack(request, digits) -> tuple:
    """A model's data, and one stack of every case, each with a seed of its own, trained to the end."""
    data, data_spec = _data(request.param, digits)
    specs = {case: _spec(data, data_spec, *case, seed=index + 1) for index, case in enumerate(CASES)}
    trainer = FuncStackedTrainer(data, next(iter(specs.values())))
    for case, spec in specs.items():
        trainer.add(case, spec)
    return data, specs, trainer, _train(trainer, EPOCHS)


@pytest.mark.parametrize("case", CASES, ids=["/".join(case) for case in CASES])
def test_a_stacked_trial_equals_the_same_trial_trained_alone(stack, case):
    data, specs, trainer, outcomes = stack
    alone, weights = _alone(specs[case], data)
    _assert_equal([outcome.record for outcome in outcomes[case]], alone)
    assert outcomes[case][-1].finished
    state = trainer.state(case)
    assert state.keys() == weights.keys()
    for name, value in weights.items():
        torch.testing.assert_close(state[name], value.detach(), atol=1e-6, rtol=0, msg=name)


@pytest.mark.parametrize("model", ["mlp", "conv on a loader", "conv on a loader with generator"])
def test_a_trial_joining_a_running_stack_still_equals_itself_alone(digits, model):
    data, data_spec = _data(model, digits)
    first, second, third = (_spec(data, data_spec, *CASES[i], seed=seed) for i, seed in ((1, 7), (4, 8), (9, 9)))
    trainer = FuncStackedTrainer(data, first)
    trainer.add("first", first)
    trainer.add("second", second)
    early = _train(trainer, 2)
    trainer.remove("second")  # e.g. pruned after two epochs
    trainer.add("third", third)  # joins at the first trial's third epoch
    late = _train(trainer, EPOCHS - 2)
    _assert_equal([o.record for o in early["first"] + late["first"]], _alone(first, data)[0])
    _assert_equal([o.record for o in early["second"]], _alone(second, data)[0][:2])
    _assert_equal([o.record for o in late["third"]], _alone(third, data)[0][: EPOCHS - 2])


@pytest.mark.parametrize("shuffled", [False, True], ids=["val-in-order", "val-shuffled"])
def test_a_val_loader_is_read_through_each_trials_random_state(digits, shuffled):
    """Alone, reading the val loader draws from torch's generator, which the train loader shuffles from."""
    _, _, x_val, y_val = digits
    data = _user_data(digits, SmallConvNet, "loader")
    data = dataclasses.replace(data, val=DataLoader(TensorDataset(x_val, y_val), batch_size=40, shuffle=shuffled))
    specs = {seed: _spec(data, USER_TASK, *CASES[seed], seed=seed) for seed in (3, 4, 5)}
    trainer = FuncStackedTrainer(data, specs[3])
    for seed, spec in specs.items():
        trainer.add(seed, spec)
    outcomes = _train(trainer, EPOCHS)
    for seed, spec in specs.items():
        _assert_equal([o.record for o in outcomes[seed]], _alone(spec, data)[0])


def test_batch_norm_keeps_each_trials_running_statistics(digits):
    data = _user_data(digits, BatchNormMLP)
    specs = [_spec(data, USER_TASK, "StepLR", optimizer, seed=seed) for seed, optimizer in enumerate(OPTIMIZERS)]
    assert stackable(data, specs[0]) is None
    trainer = FuncStackedTrainer(data, specs[0])
    for index, spec in enumerate(specs):
        trainer.add(index, spec)
    outcomes = _train(trainer, EPOCHS)
    for index, spec in enumerate(specs):
        alone, weights = _alone(spec, data)
        _assert_equal([o.record for o in outcomes[index]], alone)
        for name in ("net.1.running_mean", "net.1.running_var", "net.1.num_batches_tracked"):
            # Batch statistics under vmap may round differently in the last bit (a variance near 0.5 by 1e-6).
            torch.testing.assert_close(trainer.state(index)[name], weights[name], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        (Branching, "data-dependent control flow"),
        (CallsItem, r"\.item\(\)"),
        (Unused, "parameter spare.weight gets no gradient"),
    ],
    ids=["if-on-a-tensor", "item", "unused-parameter"],
)
def test_what_cannot_be_stacked_is_found_with_a_reason(digits, model, reason):
    data = _user_data(digits, model)
    spec = _spec(data, USER_TASK, "StepLR", "sgd", seed=0)
    found = stackable(data, spec)
    assert found is not None and "\n" not in found
    assert re.search(reason, found)


def test_a_loader_with_worker_processes_is_not_stacked(digits):
    x, y, _, _ = digits
    data = dataclasses.replace(
        _user_data(digits, SmallConvNet), train=DataLoader(TensorDataset(x, y), batch_size=BATCH, num_workers=2)
    )
    assert "num_workers=2" in stackable(data, _spec(data, USER_TASK, "StepLR", "sgd", seed=0))


def test_stackable_leaves_torch_and_the_loader_as_it_found_them(digits):
    data = _user_data(digits, SmallConvNet, "loader with generator")
    data.train.generator.manual_seed(5)
    torch.manual_seed(3)
    before = torch.get_rng_state(), data.train.generator.get_state()
    assert stackable(data, _spec(data, USER_TASK, "StepLR", "sgd", seed=0)) is None
    assert torch.equal(torch.get_rng_state(), before[0])
    assert torch.equal(data.train.generator.get_state(), before[1])


def test_dropout_trials_draw_their_own_masks_and_learn(digits):
    data = _user_data(digits, DropoutMLP)
    spec = _spec(data, USER_TASK, "StepLR", "sgd", seed=0)
    assert stackable(data, spec) is None
    trainer = FuncStackedTrainer(data, spec)
    trainer.add("one", spec)
    trainer.add("twin", spec)  # the same run: only the dropout masks tell them apart
    outcomes = _train(trainer, EPOCHS)
    one, twin = ([o.record.val_loss for o in outcomes[key]] for key in ("one", "twin"))
    assert all(a != b for a, b in zip(one, twin, strict=True))
    assert all(math.isfinite(v) for v in one + twin)
    assert max(one[-1], twin[-1]) < one[0] - 0.2  # it learns


def test_a_trial_of_another_batch_size_is_refused(digits):
    data = _user_data(digits, SmallConvNet)
    spec = _spec(data, USER_TASK, "StepLR", "sgd", seed=0)
    trainer = FuncStackedTrainer(data, spec)
    with pytest.raises(ValueError, match="batch_size 16"):
        trainer.add("small", spec.model_copy(update={"batch_size": 16}))


@pytest.mark.parametrize("model", ["mlp", "conv on a loader"])
def test_a_stacked_trial_s_test_figures_are_its_lone_run_s(digits, model):
    data, data_spec = _data(model, digits)
    if data.test is None:
        data = dataclasses.replace(data, test=data.val)
    specs = [_spec(data, data_spec, *CASES[i], seed=seed) for i, seed in ((0, 3), (5, 4))]
    trainer = FuncStackedTrainer(data, specs[0])
    for index, spec in enumerate(specs):
        trainer.add(index, spec)
    _train(trainer, EPOCHS)
    for index, spec in enumerate(specs):
        alone = train(spec, data, evaluate_test=True)
        loss, score = trainer.test(index)
        assert loss == pytest.approx(alone.test_loss, abs=1e-6) and score == pytest.approx(alone.test_score, abs=1e-6)
