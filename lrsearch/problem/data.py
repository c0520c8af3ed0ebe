"""A task's data, on the training device, and what a run on it computes: the model to train, the loss and
the score reported beside it.

A built-in task is tensors already on the device (the loop never copies data per batch) and the spec's
MLP; a user's task brings its own model factory and loss, may bring DataLoaders instead of tensors, and its
own steps (`Hooks`): every engine trains through `train_loss` and measures through `eval_outputs`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from lrsearch.base.device import one_thread
from lrsearch.base.errors import ConfigError
from lrsearch.problem.batches import Batch, combine, first_rows, is_pair, leaves, to_device
from lrsearch.problem.hooks import Hooks, Score
from lrsearch.problem.model import make_mlp
from lrsearch.problem.spec import DataSpec, RunSpec
from lrsearch.problem.tasks import BUILTIN_TASKS, ExitIsAnError, Kind, Task, load_user_task


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # float32 [rows, features]
    y: torch.Tensor  # classes: int64 [rows]; regression: float32 [rows]

    def __len__(self) -> int:
        return self.y.shape[0]


Source = Split | DataLoader


@dataclass(frozen=True)
class Data:
    """A task as training sees it.

    Attributes:
        n_features, n_outputs: the MLP's input and output sizes (built-in tasks).
        score: "accuracy", "r2", the name of a user's own score (`hooks.score`) or None: what is
            reported beside the loss.
        model_factory, loss_fn: a user task's; None means the spec's MLP and the built-in loss.
        hooks: a user task's steps and settings; the defaults train as lrsearch always has.
    """

    train: Source
    val: Source
    test: Source | None
    kind: Kind | None
    score: str | None
    n_features: int | None = None
    n_outputs: int | None = None
    model_factory: Callable[[], nn.Module] | None = None
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    hooks: Hooks = field(default_factory=Hooks)

    @property
    def stackable(self) -> bool:
        """Whether the built-in MLP's stacked engine can train it: that MLP on tensors, with no hooks."""
        plain = self.model_factory is None and self.hooks == Hooks()
        return plain and isinstance(self.train, Split) and isinstance(self.val, Split)

    def batches_per_epoch(self, batch_size: int) -> int:
        """Batches in one pass over the train split (the last one may be short)."""
        if isinstance(self.train, DataLoader):
            return len(self.train)
        return -(-len(self.train) // batch_size)

    def steps_per_epoch(self, batch_size: int) -> int:
        """Optimizer steps in one pass over the train split: a step per `hooks.accumulate_batches` batches
        (the last step may take fewer)."""
        return -(-self.batches_per_epoch(batch_size) // self.hooks.accumulate_batches)

    def train_loss(self, model: nn.Module, batch: Batch) -> torch.Tensor:
        """The loss a training step minimises on `batch`: the task's train step, under its autocast."""
        with self._autocast(batch):
            if self.hooks.train_step is not None:
                return self.hooks.train_step(model, batch)
            x, y = batch
            return self.loss(model(x), y)

    def eval_outputs(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """The output and target that the loss and score are measured on (a low-precision output as float32)."""
        with self._autocast(batch):
            if self.hooks.eval_step is not None:
                output, target = self.hooks.eval_step(model, batch)
            else:
                x, target = batch
                output = model(x)
        if self.hooks.autocast is not None and isinstance(output, torch.Tensor) and output.is_floating_point():
            output = output.float()
        return output, target

    def reseed(self, seed: int) -> None:
        """Restart a DataLoader's own shuffling generator, so each run sees the batch order its seed gives
        (a loader without one shuffles from torch's global generator, which `train` seeds)."""
        generator = getattr(self.train, "generator", None)
        if isinstance(self.train, DataLoader) and generator is not None:
            generator.manual_seed(seed)

    def new_model(self, spec: RunSpec) -> nn.Module:
        """A fresh model, drawn from torch's current random state (the caller seeds it)."""
        if self.model_factory is not None:
            return self.model_factory()
        return make_mlp(self.n_features, spec.model.hidden, self.n_outputs)

    def _autocast(self, batch: Batch) -> AbstractContextManager[object]:
        return nullcontext() if self.hooks.autocast is None else self.hooks.autocasting(_device_of(batch))

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.loss_fn is not None:
            return self.loss_fn(output, target)
        if self.kind == "regression":
            return F.mse_loss(output.squeeze(-1), target)
        return F.cross_entropy(output, target)

    def score_of(self, output: torch.Tensor, target: torch.Tensor) -> float | None:
        return self.scores_of(output.unsqueeze(0), target)[0]

    def scores_of(self, outputs: torch.Tensor, target: torch.Tensor) -> list[float | None]:
        """`score_of` for each of K outputs ([K, rows, ...]) of one target: accuracy in one pass (a count
        of hits, exact in any order), r2 and a user's score trial by trial."""
        if self.score == "accuracy" and self.hooks.score is None:
            return (outputs.argmax(dim=-1) == target).float().flatten(1).mean(dim=1).tolist()
        return [self._score_of(output, target) for output in outputs]

    def _score_of(self, output: torch.Tensor, target: torch.Tensor) -> float | None:
        if self.hooks.score is not None:
            return float(self.hooks.score.fn(output, target))
        if self.score == "r2":
            prediction = output.reshape(target.shape)
            residual = ((target - prediction) ** 2).sum()
            total = ((target - target.mean()) ** 2).sum()
            return (1 - residual / total).item()
        return None

    def batches(self, batch_size: int, *, seed: int, epoch: int, device: torch.device | str) -> Iterator[Batch]:
        """The train split's batches of one epoch (0-based): tensors in `epoch_order` (as the stacked
        engine orders them), as (x, y); a DataLoader's own, whatever it yields."""
        if isinstance(self.train, DataLoader):
            for batch in self.train:
                yield to_device(batch, device)
            return
        order = epoch_order(len(self.train), seed, epoch).to(device)
        for start in range(0, len(self.train), batch_size):
            index = order[start : start + batch_size]
            yield self.train.x[index], self.train.y[index]


def epoch_order(rows: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of the train rows in one epoch (0-based) of a run with `seed`.

    Each epoch's permutation has a generator of its own, seeded by (seed, epoch): an engine can draw
    the order of any epoch without drawing, or keeping, every epoch before it (a run of 20,000 epochs
    would otherwise hold 20,000 permutations).
    """
    # torch's CPU generator keeps 32 bits of a seed: (seed, epoch) are mixed into 32 well-spread bits.
    mixed = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
    return torch.randperm(rows, generator=torch.Generator().manual_seed(mixed))


class EpochOrders:
    """The batch orders of the (seed, epoch) runs a stack's trials are at: each drawn once (`epoch_order`)
    and kept only while a trial of the stack needs it."""

    def __init__(self, rows: int, device: torch.device) -> None:
        self._rows, self._device = rows, device
        self._orders: dict[tuple[int, int], torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._orders)

    def of(self, runs: list[tuple[int, int]]) -> torch.Tensor:
        """[K, rows]: the order of each (seed, epoch) of `runs`, in turn."""
        self._orders = {run: order for run, order in self._orders.items() if run in runs}
        for seed, epoch in runs:
            if (seed, epoch) not in self._orders:
                self._orders[seed, epoch] = epoch_order(self._rows, seed, epoch).to(self._device)
        return torch.stack([self._orders[run] for run in runs])


def whole(source: Source, device: torch.device | str) -> Batch:
    """A split as one batch of all its rows, on `device`: (x, y) tensors, or a DataLoader's batches
    concatenated tensor by tensor (a batch of (x, y) stays an (x, y) pair; a dict stays a dict)."""
    if isinstance(source, Split):
        return source.x, source.y
    return combine(torch.cat, [to_device(batch, device) for batch in source])


def _device_of(batch: Batch) -> torch.device:
    tensors = leaves(batch)
    return tensors[0].device if tensors else torch.device("cpu")


def load_data(spec: DataSpec, seed: int, device: torch.device | str = "cpu") -> Data:
    """Load the spec's task on `device`.

    Args:
        spec: the task and its settings.
        seed: seeds the generator and the split, so every trial of a study sees the same data.

    Raises:
        ConfigError: a user's task can't be imported, or returned something unusable.
    """
    if spec.task in BUILTIN_TASKS:
        from lrsearch.problem.data_cache import cached_arrays

        return _builtin(spec, cached_arrays(spec, seed, lambda: _split_and_scaled(spec, seed, split=seed)), device)
    return _user(spec.task, device)


def resplit_data(spec: DataSpec, seed: int, *, split: int, device: torch.device | str = "cpu") -> Data:
    """A built-in task's rows of `seed` (the same data set: a generator's draw at `seed`, or the bundled
    rows), split train/val/test anew by `split`: to measure a choice made on one split on data it was not
    made on, where one split's test rows are few (114 for breast cancer, 36 for wine) and their sampling
    noise is not in the spread of training seeds. Not cached: measurements make each once."""
    if spec.task not in BUILTIN_TASKS:
        raise ConfigError(f"--task {spec.task}: only a built-in task's rows can be split anew")
    return _builtin(spec, _split_and_scaled(spec, seed, split=split), device)


def _builtin(spec: DataSpec, arrays: dict[str, np.ndarray], device: torch.device | str) -> Data:
    task = BUILTIN_TASKS[spec.task]
    classes = task.kind == "classification"

    def to_split(part: str) -> Split:
        x, y = (torch.as_tensor(arrays[f"{name}_{part}"], device=device) for name in "xy")
        return Split(x, y)

    return Data(
        train=to_split("train"),
        val=to_split("val"),
        test=to_split("test"),
        kind=task.kind,
        score="accuracy" if classes else "r2",
        n_features=arrays["x_train"].shape[1],
        n_outputs=int(arrays["n_outputs"]),
    )


def _split_and_scaled(spec: DataSpec, seed: int, *, split: int) -> dict[str, np.ndarray]:
    """The task's rows (drawn at `seed`) split train/val/test (by `split`: `seed` for a study's data) and
    standardized, as the tensors will hold them: inputs float32, class labels int64, regression targets
    float32 (standardized too)."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    task = BUILTIN_TASKS[spec.task]
    x, y = task.generate(spec.settings(), seed)
    classes = task.kind == "classification"
    held_out = spec.val_fraction + spec.test_fraction
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, y, test_size=held_out, stratify=y if classes else None, random_state=split
    )
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest,
        y_rest,
        test_size=spec.test_fraction / held_out,
        stratify=y_rest if classes else None,
        random_state=split,
    )
    features = StandardScaler().fit(x_train)
    target_mean, target_std = (0.0, 1.0) if classes else (float(np.mean(y_train)), float(np.std(y_train)) or 1.0)
    arrays = {"n_outputs": np.array(int(np.max(y)) + 1 if classes else 1)}
    for part, inputs, targets in (("train", x_train, y_train), ("val", x_val, y_val), ("test", x_test, y_test)):
        arrays[f"x_{part}"] = features.transform(inputs).astype(np.float32)
        if classes:
            arrays[f"y_{part}"] = np.asarray(targets, dtype=np.int64)
        else:  # standardized, so MSE and the LR ranges mean the same whatever the target's units
            arrays[f"y_{part}"] = ((targets - target_mean) / target_std).astype(np.float32)
    return arrays


def _user(name: str, device: torch.device | str) -> Data:
    task = load_user_task(name)
    where = f"--task {name}"
    splits = {"train": task.train, "val": task.val, "test": task.test}
    sources: dict[str, Source | None] = {}
    first: dict[str, Batch] = {}  # a few rows of each split, to try the task's steps on
    for split, value in splits.items():
        own_step = task.train_step if split == "train" else task.eval_step
        if value is None and split == "test":
            sources[split] = None
        elif isinstance(value, DataLoader):
            if split == "train" and not _has_length(value):
                raise ConfigError(
                    f"{where}: Task.train: its DataLoader's dataset has no length (an IterableDataset without "
                    "__len__); schedules are built for the steps of an epoch: give the dataset a __len__, or "
                    "pass (x, y) tensors"
                )
            batch = next(iter(value), None)
            if batch is None:
                raise ConfigError(f"{where}: Task.{split}: its DataLoader yields no batches")
            if own_step is None and not is_pair(batch):
                step = "train_step(model, batch) -> loss" if split == "train" else "eval_step(model, batch)"
                raise ConfigError(
                    f"{where}: Task.{split}: a DataLoader must yield (x, y) pairs of tensors, or the task "
                    f"gives Task.{step} for its batches"
                )
            sources[split], first[split] = value, batch
        elif is_pair(value):
            x, y = value
            if len(x) != len(y) or len(x) == 0:
                raise ConfigError(f"{where}: Task.{split}: x has {len(x)} rows and y {len(y)}; they must match")
            sources[split], first[split] = Split(x.to(device), y.to(device)), (x[:2], y[:2])
        else:
            raise ConfigError(
                f"{where}: Task.{split} is {type(value).__name__}; expected an (x, y) pair of tensors or a DataLoader"
            )
    data = Data(
        train=sources["train"],
        val=sources["val"],
        test=sources["test"],
        kind=None,
        score=task.score.name if isinstance(task.score, Score) else task.score,
        model_factory=ExitIsAnError(task.model, f"{where}: model()"),
        loss_fn=ExitIsAnError(task.loss, f"{where}: loss()"),
        hooks=_hooks(task, where),
    )
    _check_steps(where, data, first["train"], first["val"], device)
    return data


def _hooks(task: Task, where: str) -> Hooks:
    """The task's hooks, each of its functions saying `sys.exit()` as an error naming it."""

    def guarded(function: Callable | None, name: str) -> Callable | None:
        return None if function is None else ExitIsAnError(function, f"{where}: {name}()")

    score = task.score if isinstance(task.score, Score) else None
    if score is not None:
        score = dataclasses.replace(score, fn=guarded(score.fn, "Task.score.fn"))
    return Hooks(
        train_step=guarded(task.train_step, "train_step"),
        eval_step=guarded(task.eval_step, "eval_step"),
        clip_grad_norm=task.clip_grad_norm,
        accumulate_batches=task.accumulate_batches,
        autocast=task.autocast,
        score=score,
    )


def _has_length(loader: DataLoader) -> bool:
    try:
        len(loader)
    except TypeError:
        return False
    return True


def _check_steps(where: str, data: Data, train: Batch, val: Batch, device: torch.device | str) -> None:
    """Run the task's steps on a few rows, with one model: a training step on train rows, an evaluation
    (loss and score) on val rows. A shape mistake is one line now rather than a failed trial for every
    trial of the search."""
    hooks = data.hooks
    what = "train_step(model, batch)" if hooks.train_step is not None else "loss(model(x), y)"
    try:
        with one_thread():
            model = data.model_factory().to(device)
            loss = data.train_loss(model, to_device(first_rows(train, 2), device))
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001 - the user's code; say what it raised, in one line
        raise ConfigError(f"{where}: {what} raised {_one_line(error)}") from None
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ConfigError(f"{where}: {what} must return one number (a scalar tensor)")
    if hooks == Hooks():
        return  # the evaluation is the training step's model and loss, which just ran
    what = "eval_step(model, batch), then loss(output, target)" if hooks.eval_step else "loss(model(x), y)"
    try:
        with one_thread(), torch.no_grad():
            output, target = data.eval_outputs(model.eval(), to_device(first_rows(val, 2), device))
            loss = data.loss(output, target)
            if hooks.score is not None:
                what = "Task.score.fn(output, target)"
                data.score_of(output, target)
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001 - the user's code; say what it raised, in one line
        raise ConfigError(f"{where}: {what} raised {_one_line(error)}") from None
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ConfigError(f"{where}: {what} must return one number (a scalar tensor)")


def _one_line(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__
