"""A task's own training step and settings (`lrsearch.Task`'s hooks) as training reads them, and their
defaults: what lrsearch did before there were hooks, so a task without them trains to the same numbers.

No torch at import: `lrsearch.Task` (and the config, which names tasks) loads without it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

Direction = Literal["maximize", "minimize"]
DIRECTIONS: tuple[Direction, ...] = ("maximize", "minimize")
AUTOCAST_DTYPES = ("bfloat16", "float16")  # names of torch dtypes
# A score's name becomes a stored curve, `val_<name>`: a plain word, and never `loss` (`val_loss` is taken).
SCORE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,39}")

TrainStep = Callable[["torch.nn.Module", Any], "torch.Tensor"]  # (model, batch) -> the batch's mean loss
EvalStep = Callable[["torch.nn.Module", Any], tuple[Any, Any]]  # (model, batch) -> (output, target)


@dataclass(frozen=True)
class Score:
    """A score of your own, recorded and shown beside the val loss each epoch (the search still minimises
    the val loss); `direction` says which way is better wherever lrsearch ranks or picks by it.

    Attributes:
        name: how it is shown and stored (the curve `val_<name>`): a letter, then letters, digits or `_`.
        fn: `fn(output, target) -> float` on a whole split: the eval step's output and target, e.g.
            `lambda out, y: sklearn.metrics.f1_score(y.cpu(), out.argmax(-1).cpu(), average="macro")`.
        direction: "maximize" (higher is better: F1, accuracy) or "minimize" (an error rate).
    """

    name: str
    fn: Callable[[Any, Any], float]
    direction: Direction = "maximize"


@dataclass(frozen=True)
class Hooks:
    """A task's steps and settings as the engines use them; each default is lrsearch's own behaviour.

    Attributes:
        train_step: the batch's loss to minimise; None: `loss(model(x), y)` of an `(x, y)` batch.
        eval_step: the output and target the loss and score are measured on, over a whole split at once;
            None: `(model(x), y)`.
        clip_grad_norm: clip each optimizer step's gradient to this norm (`clip_grad_norm_`); None: no clipping.
        accumulate_batches: batches whose gradients make one optimizer step (and one step of a per-batch
            schedule); each batch's loss is divided by the batches of its step.
        autocast: run the steps under `torch.autocast` with this dtype ("bfloat16", "float16"); None: off.
        score: a score of the user's own (None: the task's named one, or none).
    """

    train_step: TrainStep | None = None
    eval_step: EvalStep | None = None
    clip_grad_norm: float | None = None
    accumulate_batches: int = 1
    autocast: str | None = None
    score: Score | None = None

    def autocasting(self, device: torch.device | str) -> AbstractContextManager[Any]:
        """Within: the steps' precision (`torch.autocast` on the device's type), or nothing when off."""
        if self.autocast is None:
            return nullcontext()
        import torch

        return torch.autocast(torch.device(device).type, dtype=getattr(torch, self.autocast))

    @property
    def direction(self) -> Direction:
        """Which way the score is better: the user's score's, else up (accuracy, R²)."""
        return "maximize" if self.score is None else self.score.direction
