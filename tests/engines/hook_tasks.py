"""Tasks with hooks, for the tests: loaded by path, as a user's own task is (`path/to/hook_tasks.py:name`)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

import lrsearch

TRAIN, VAL, BATCH = 96, 48, 16


class TwoInputs(nn.Module):
    """A model of two inputs: `model(a, b)`."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.head = nn.Linear(4, 16), nn.Linear(3, 16), nn.Linear(16, 3)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.a(a) + self.b(b)))


class Unbounded(TwoInputs):
    """Its inputs' product, not squashed: at a reckless LR its weights overflow."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.head(self.a(a) * self.b(b))


class Records(Dataset):
    """Rows as dicts, so a DataLoader's batches are dicts of tensors."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, label: torch.Tensor) -> None:
        self.a, self.b, self.label = a, b, label

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, row: int) -> dict[str, torch.Tensor]:
        return {"a": self.a[row], "b": self.b[row], "label": self.label[row]}


def _rows() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(TRAIN + VAL, 4, generator=generator)
    b = torch.randn(TRAIN + VAL, 3, generator=generator)
    label = (a[:, 0] + b[:, 0] > 0).long() + (a[:, 1] > 0.5).long()  # 3 classes
    return a, b, label


def dict_step(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.cross_entropy(model(batch["a"], batch["b"]), batch["label"])


def dict_eval(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    return model(batch["a"], batch["b"]), batch["label"]


def macro_f1(output: torch.Tensor, target: torch.Tensor) -> float:
    from sklearn.metrics import f1_score

    return f1_score(target.cpu(), output.argmax(-1).cpu(), average="macro")


def dict_batches(**settings) -> lrsearch.Task:
    """Dict batches of a two-input model; its own steps, and F1 (maximised) as its score."""
    a, b, label = _rows()
    loader = DataLoader(Records(a[:TRAIN], b[:TRAIN], label[:TRAIN]), batch_size=BATCH, shuffle=True)
    val = DataLoader(Records(a[TRAIN:], b[TRAIN:], label[TRAIN:]), batch_size=BATCH)
    fields = {
        "model": TwoInputs,
        "train": loader,
        "val": val,
        "loss": F.cross_entropy,
        "train_step": dict_step,
        "eval_step": dict_eval,
        "score": lrsearch.Score("f1", macro_f1, "maximize"),
    }
    return lrsearch.Task(**(fields | settings))


def three_tensors() -> lrsearch.Task:
    """Batches of (a, b, label): several inputs as a tuple, with a generator of the loader's own."""
    a, b, label = _rows()
    loader = DataLoader(
        TensorDataset(a[:TRAIN], b[:TRAIN], label[:TRAIN]),
        batch_size=BATCH,
        shuffle=True,
        generator=torch.Generator(),
    )
    return lrsearch.Task(
        model=TwoInputs,
        train=loader,
        val=DataLoader(TensorDataset(a[TRAIN:], b[TRAIN:], label[TRAIN:]), batch_size=VAL),
        loss=F.cross_entropy,
        train_step=lambda model, batch: F.cross_entropy(model(batch[0], batch[1]), batch[2]),
        eval_step=lambda model, batch: (model(batch[0], batch[1]), batch[2]),
        score="accuracy",
    )


# Tasks with one bad setting each: loading them is a one-line ConfigError.


def no_accumulation() -> lrsearch.Task:
    return dict_batches(accumulate_batches=0)


def fp8() -> lrsearch.Task:
    return dict_batches(autocast="fp8")


def sideways() -> lrsearch.Task:
    return dict_batches(score=lrsearch.Score("f1", macro_f1, "max"))


def negative_clip() -> lrsearch.Task:
    return dict_batches(clip_grad_norm=-1.0)


def step_not_callable() -> lrsearch.Task:
    return dict_batches(train_step="dict_step")


def score_named_loss() -> lrsearch.Task:
    return dict_batches(score=lrsearch.Score("loss", macro_f1))


def no_train_step() -> lrsearch.Task:
    return dict_batches(train_step=None)


def no_eval_step() -> lrsearch.Task:
    return dict_batches(eval_step=None)


def step_raises() -> lrsearch.Task:
    return dict_batches(train_step=lambda model, batch: F.cross_entropy(model(batch["a"]), batch["label"]))


def score_raises() -> lrsearch.Task:
    return dict_batches(score=lrsearch.Score("f1", lambda output, target: 1 / 0))
