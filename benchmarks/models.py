"""Models of a user's own for benchmarks/throughput.py, each a task function returning `lrsearch.Task`, named
as a user names one (`--task benchmarks/models.py:digits_layernorm`).

- `conv_digits`: the conv net of studies/my_task.py on its own DataLoader (batch 64, shuffled), as it is.
- `digits_layernorm`: an MLP with LayerNorm and Dropout on scikit-learn's 8x8 digits, as tensors.
- `regression_resmlp`: a residual MLP (pre-LayerNorm blocks) on the built-in `regression` task's rows
  (make_regression, 5000 rows, 20 features, standardized), as tensors, MSE loss, R² reported.
- `diabetes_mlp`, `noisy_labels`, `digits_transformer`: tasks unlike the built-in ones, for `quality.py
  sweep` (real-data regression on scikit-learn's diabetes set, with an MLP; a fifth of the training labels
  flipped, with an MLP; a small Transformer encoder over the digits' pixel rows).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

import lrsearch

HERE = Path(__file__).resolve().parent
# The task names the engines load them by (the path form works from any directory).
CONV_DIGITS = f"{HERE / 'models.py'}:conv_digits"
DIGITS_LAYERNORM = f"{HERE / 'models.py'}:digits_layernorm"
REGRESSION_RESMLP = f"{HERE / 'models.py'}:regression_resmlp"


def _split(x: torch.Tensor, y: torch.Tensor, stratify: bool) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    """60/20/20 train/val/test, fixed."""
    from sklearn.model_selection import train_test_split

    x_train, x_rest, y_train, y_rest = train_test_split(
        x, y, test_size=0.4, stratify=y if stratify else None, random_state=0
    )
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, test_size=0.5, stratify=y_rest if stratify else None, random_state=0
    )
    return (x_train, y_train), (x_val, y_val), (x_test, y_test)


def conv_digits() -> lrsearch.Task:
    """studies/my_task.py's task: SmallConvNet, its own DataLoader."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("my_task", HERE.parent / "studies" / "my_task.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build()


class LayerNormMLP(nn.Module):
    """64 -> 128 -> 128 -> 10: Linear, LayerNorm, ReLU, Dropout(0.1) in each hidden layer."""

    def __init__(self, inputs: int = 64, hidden: int = 128, classes: int = 10, dropout: float = 0.1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for width_in in (inputs, hidden):
            layers += [nn.Linear(width_in, hidden), nn.LayerNorm(hidden), nn.ReLU(), nn.Dropout(dropout)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def digits_layernorm() -> lrsearch.Task:
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    x = torch.tensor(images / 16.0, dtype=torch.float32)
    y = torch.tensor(labels)
    train, val, test = _split(x, y, stratify=True)
    return lrsearch.Task(model=LayerNormMLP, train=train, val=val, test=test, loss=F.cross_entropy, score="accuracy")


class ResidualBlock(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.inner = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.inner(self.norm(x))


class ResidualMLP(nn.Module):
    """20 -> 64, two pre-LayerNorm residual blocks (64 -> 128 -> 64), LayerNorm, -> 1."""

    def __init__(self, inputs: int = 20, width: int = 64, blocks: int = 2) -> None:
        super().__init__()
        self.embed = nn.Linear(inputs, width)
        self.blocks = nn.Sequential(*(ResidualBlock(width) for _ in range(blocks)))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.blocks(self.embed(x)))


def mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(output.squeeze(-1), target)


def regression_resmlp() -> lrsearch.Task:
    from lrsearch.problem.data import load_data
    from lrsearch.problem.spec import DataSpec

    data = load_data(DataSpec(task="regression"), seed=0)  # standardized features and target, on the CPU
    return lrsearch.Task(
        model=ResidualMLP,
        train=(data.train.x, data.train.y),
        val=(data.val.x, data.val.y),
        test=(data.test.x, data.test.y),
        loss=mse,
        score="r2",
    )


class PlainMLP(nn.Module):
    """inputs -> 64 -> 64 -> outputs with ReLU: a model of one's own that is not the built-in MLP's shape."""

    def __init__(self, inputs: int, outputs: int, hidden: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, outputs)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def diabetes_mlp() -> lrsearch.Task:
    """Real-data regression: scikit-learn's diabetes progression (442 patients, 10 features), features
    and target standardized on the training rows, an MLP, MSE loss, R² reported."""
    from sklearn.datasets import load_diabetes

    features, target = load_diabetes(return_X_y=True)
    x, y = torch.tensor(features, dtype=torch.float32), torch.tensor(target, dtype=torch.float32)
    train, val, test = _split(x, y, stratify=False)
    x_mean, x_std, y_mean, y_std = train[0].mean(0), train[0].std(0), train[1].mean(), train[1].std()

    def scaled(part: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return (part[0] - x_mean) / x_std, (part[1] - y_mean) / y_std

    return lrsearch.Task(
        model=lambda: PlainMLP(10, 1),
        train=scaled(train),
        val=scaled(val),
        test=scaled(test),
        loss=mse,
        score="r2",
    )


def noisy_labels() -> lrsearch.Task:
    """Classification where a fifth of the training labels are flipped at random (val and test clean):
    2000 rows of make_classification, 20 features, 4 classes, an MLP."""
    from sklearn.datasets import make_classification

    features, labels = make_classification(n_samples=2000, n_features=20, n_informative=10, n_classes=4, random_state=7)
    x, y = torch.tensor(features, dtype=torch.float32), torch.tensor(labels)
    train, val, test = _split(x, y, stratify=True)
    flip = torch.rand(len(train[1]), generator=torch.Generator().manual_seed(7)) < 0.2
    noisy = torch.where(flip, torch.randint(0, 4, train[1].shape, generator=torch.Generator().manual_seed(8)), train[1])
    return lrsearch.Task(
        model=lambda: PlainMLP(20, 4),
        train=(train[0], noisy),
        val=val,
        test=test,
        loss=F.cross_entropy,
        score="accuracy",
    )


class DigitsTransformer(nn.Module):
    """A small Transformer encoder over an 8x8 digit's rows as a sequence of 8 tokens of 8 pixels: a linear
    embedding with a learned position per row, one pre-LayerNorm encoder layer (2 heads, width 32), mean
    pooling, a linear head."""

    def __init__(self, width: int = 32, heads: int = 2, classes: int = 10) -> None:
        super().__init__()
        self.embed = nn.Linear(8, width)
        self.position = nn.Parameter(torch.zeros(8, width))
        self.encoder = nn.TransformerEncoderLayer(
            width, heads, dim_feedforward=2 * width, dropout=0.0, batch_first=True, norm_first=True
        )
        self.head = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x.view(-1, 8, 8)) + self.position
        return self.head(self.encoder(tokens).mean(dim=1))


def digits_transformer() -> lrsearch.Task:
    """A Transformer of one's own: `DigitsTransformer` on scikit-learn's 8x8 digits, as tensors."""
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    x = torch.tensor(images / 16.0, dtype=torch.float32)
    train, val, test = _split(x, torch.tensor(labels), stratify=True)
    return lrsearch.Task(
        model=DigitsTransformer, train=train, val=val, test=test, loss=F.cross_entropy, score="accuracy"
    )
