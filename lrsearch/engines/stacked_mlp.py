"""Stacked training: K trials of one problem trained at once, each equal to training it alone.

All trials of a study share the data, the MLP's shape, the epochs, the batch size and the seed, so
they start from the same weights and see the same batches in the same order. Their weights are stacked
([K, ...]) and trained with batched matmuls; each trial keeps its own optimizer state and its own real
`torch.optim.lr_scheduler`, which drives a *shadow* optimizer (one dummy parameter) whose learning rate
and momentum are read every step into per-trial tensors. One batched update then applies SGD, Adam or
AdamW as `torch.optim` does for each trial: the same operations in the same order and precision, so on
the CPU a stacked trial's losses equal the lone trial's (the tests hold them within 1e-6; here they are
bit-for-bit equal for classification; a regression's one-output layer goes through other matmul kernels
alone and stacked, and its losses differ in the last bit now and then, which a trial at a chaotic LR
amplifies).

A trial may join or leave the stack at any epoch boundary; each trial walks through the batch orders of
its own epochs, so a trial that joins later still sees what it would see alone.

`StackedUpdate` is the part every stacked engine shares (this one for the built-in MLP, `func_stacked`
for any model): the flat parameters, the optimizer states, the schedulers and when they step.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from lrsearch.base.torch_private import cross_entropy_with_gradient
from lrsearch.engines.interface import EpochOutcome
from lrsearch.engines.lone import evaluate, recorded_steps
from lrsearch.problem.build import LoadedSchedule
from lrsearch.problem.data import Data, EpochOrders
from lrsearch.problem.model import make_mlp
from lrsearch.problem.spec import RunSpec
from lrsearch.store.records import EpochRecord

ADAM_BETA2 = 0.999  # as build_optimizer sets it
ADAM_EPS = 1e-8  # torch's default


@dataclass
class _Member:
    """One trial in the stack: its spec, its real scheduler on a shadow optimizer, and its progress."""

    key: object
    spec: RunSpec
    shadow: Optimizer
    schedule: LoadedSchedule  # when its scheduler steps: the rule every engine and a user's loop share
    scheduler: LRScheduler
    recorded: frozenset[int]  # the steps of an epoch whose LR its record keeps (per-batch schedules)
    epoch: int = 0  # epochs done
    steps: int = 0  # optimizer steps done (Adam's bias correction counts them)
    history: list[EpochRecord] = field(default_factory=list)

    def lr(self) -> float:
        return self.shadow.param_groups[0]["lr"]

    def momentum(self) -> float:
        group = self.shadow.param_groups[0]
        return group["betas"][0] if "betas" in group else group["momentum"]


class StackedUpdate:
    """K trials' parameters as the rows of one flat [K, P] tensor, each row with its own optimizer state and
    its own real LR scheduler; one batched SGD/Adam/AdamW step for all rows, equal to each trial's own
    `torch.optim` step; and the one place where the trials' schedulers step.

    An engine runs its forward and backward on `leaves` (per-tensor [K, ...] views of the rows), then per
    epoch: `start_epoch()`, per batch `backward(losses)` (or the gradients written into the leaves'
    `grad`, views of one flat gradient, as the MLP engine writes them) and `step(step)`, and `end_epoch(...)`.

    Args:
        shapes: the shapes of one trial's parameter tensors, in the order of its flat row.
        steps_per_epoch: optimizer steps in one epoch, the same for every trial (per-batch schedules use it).
        clip_grad_norm: clip each trial's gradient to this norm before its step, as `clip_grad_norm_`
            clips a lone run's; None: no clipping.
    """

    def __init__(
        self,
        shapes: Sequence[torch.Size],
        steps_per_epoch: int,
        device: torch.device,
        *,
        clip_grad_norm: float | None = None,
    ) -> None:
        self.shapes, self.steps_per_epoch, self.device = list(shapes), steps_per_epoch, device
        self.clip_grad_norm = clip_grad_norm
        self.members: list[_Member] = []
        self.theta = torch.empty(0, sum(math.prod(shape) for shape in self.shapes), device=device)  # [K, P]
        self._state = {name: torch.empty_like(self.theta) for name in ("buffer", "exp_avg", "exp_avg_sq")}
        self._rebuild_leaves()

    def __len__(self) -> int:
        return len(self.members)

    def add(self, key: object, spec: RunSpec, initial: torch.Tensor) -> None:
        """A new row for `spec`, starting from `initial` (its flat parameters, [P]) with a fresh optimizer
        state and scheduler."""
        schedule = LoadedSchedule(spec)
        shadow, scheduler = schedule.shadow(self.steps_per_epoch)
        recorded = recorded_steps(self.steps_per_epoch, spec.epochs)
        self.members.append(_Member(key, spec, shadow, schedule, scheduler, recorded))
        self.theta = torch.cat([self.theta, initial.to(self.device).unsqueeze(0)])
        zeros = torch.zeros_like(self.theta[:1])
        self._state = {name: torch.cat([state, zeros]) for name, state in self._state.items()}
        self._rebuild_leaves()

    def remove(self, key: object) -> None:
        keep = self.rows_except(key)
        self.members = [self.members[i] for i in keep]
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        self.theta = self.theta.index_select(0, index)
        self._state = {name: state.index_select(0, index) for name, state in self._state.items()}
        self._rebuild_leaves()

    def rows_except(self, key: object) -> list[int]:
        return [i for i, member in enumerate(self.members) if member.key != key]

    def row(self, key: object) -> int:
        return next(i for i, member in enumerate(self.members) if member.key == key)

    def _rebuild_leaves(self) -> None:
        """Per-tensor leaves that are views of the flat parameters, with gradients that are views of one
        flat gradient: autograd fills it in place, and the update reads both whole."""
        self.grad = torch.zeros_like(self.theta)
        self.leaves: list[torch.Tensor] = []
        start = 0
        for shape in self.shapes:
            size = math.prod(shape)
            leaf = self.theta[:, start : start + size].view(-1, *shape).detach().requires_grad_(True)
            leaf.grad = self.grad[:, start : start + size].view(-1, *shape)
            self.leaves.append(leaf)
            start += size

    def backward(self, losses: torch.Tensor, accumulate: bool = False) -> None:
        """Every trial's gradient of its own loss ([K] losses; no trial's loss depends on another's rows),
        added to the gradients so far when `accumulate` (gradient accumulation), else in their place."""
        if not accumulate:
            self.grad.zero_()
        with warnings.catch_warnings():
            # The gradients are views of one flat tensor on purpose (one update for all layers).
            warnings.filterwarnings("ignore", message="grad and param do not obey the gradient layout")
            losses.sum().backward()

    def start_epoch(self) -> None:
        """Each trial's hyperparameters for every step of the epoch, as [steps, K, 1] tables a step reads its
        row of. A per-batch schedule (OneCycleLR, CyclicLR) is stepped through the whole epoch here: its LRs
        depend on the step count alone, so it ends the epoch where stepping it batch by batch would, and no
        batch pays Python for it."""
        members, steps = self.members, self.steps_per_epoch
        lrs = [[m.lr()] * steps for m in members]
        momenta = [[m.momentum()] * steps for m in members]
        self._start_lrs = [row[0] for row in lrs]
        self._step_lrs: dict[int, tuple[float, ...]] = {}
        for i, m in enumerate(members):
            if m.schedule.step_on == "batch":
                for step in range(steps):
                    lrs[i][step], momenta[i][step] = m.lr(), m.momentum()
                    m.schedule.after_batch(m.scheduler)  # OneCycleLR and CyclicLR count steps
                self._step_lrs[i] = tuple(lrs[i][step] for step in sorted(m.recorded))
        optimizers = [m.spec.optimizer for m in members]
        self._decays = [o.weight_decay for o in optimizers]
        self._any_decay = any(self._decays)
        self._any_nesterov = any(o.nesterov for o in optimizers)
        self._any_adam = any(o.name != "sgd" for o in optimizers)
        self._neg_lrs = -self._table(lrs)  # -lr, as torch's `p.add(d, alpha=-lr)` takes it
        self._momenta = self._table(momenta)
        self._columns = {
            "weight_decay": self._column(self._decays),
            "nesterov": self._column([o.nesterov for o in optimizers], torch.bool),
            "sgd": self._column([o.name == "sgd" for o in optimizers], torch.bool),
        }
        if self._any_adam:
            self._adam_tables(lrs, momenta)
        for m in members:
            m.steps += steps  # every step of the epoch is taken (Adam's tables counted them)

    def step(self, step: int) -> None:
        """One optimizer step for every trial (after `backward`): the epoch's `step`-th."""
        if self.clip_grad_norm is not None:
            self._clip(self.clip_grad_norm)
        self._update(step)

    @torch.no_grad()
    def _clip(self, max_norm: float) -> None:
        """Each trial's gradient scaled as `clip_grad_norm_` scales a lone run's: its norm is the norm of its
        tensors' norms, the factor `max_norm / (norm + 1e-6)` at most 1."""
        norms = torch.stack([leaf.grad.flatten(1).norm(dim=1) for leaf in self.leaves], dim=1).norm(dim=1)
        self.grad.mul_((max_norm / (norms + 1e-6)).clamp(max=1.0).unsqueeze(1))

    def end_epoch(
        self, train_losses: list[float], val_losses: list[float], scores: list[float | None]
    ) -> list[EpochOutcome]:
        """Each trial's record of the epoch (or why it diverged), and the per-epoch and metric schedules' step."""
        return [
            self._end_epoch(m, self._start_lrs[i], tuple(self._step_lrs.get(i, ())), train, val, score)
            for i, (m, train, val, score) in enumerate(zip(self.members, train_losses, val_losses, scores, strict=True))
        ]

    @staticmethod
    def _end_epoch(
        member: _Member, lr: float, step_lrs: tuple[float, ...], train_loss: float, val_loss: float, score: float | None
    ) -> EpochOutcome:
        member.epoch += 1
        for what, value in (("train loss", train_loss), ("validation loss", val_loss)):
            if not math.isfinite(value):
                return EpochOutcome(member.key, None, diverged=f"{what} became {value} at epoch {member.epoch}")
        member.schedule.after_epoch(member.scheduler, val_loss)  # ReduceLROnPlateau decides from the val loss
        record = EpochRecord(member.epoch, lr, train_loss, val_loss, score, step_lrs)
        member.history.append(record)
        return EpochOutcome(member.key, record, finished=member.epoch == member.spec.epochs)

    def _column(self, values: list, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Per-trial values as a [K, 1] column, sent to the device in one copy."""
        return torch.tensor(values, dtype=dtype, device=self.device).view(-1, 1)

    def _table(self, rows: list[list[float]]) -> torch.Tensor:
        """Per-trial, per-step values ([K][steps]) as a [steps, K, 1] table: row `step` is a [K, 1] column."""
        return torch.tensor(rows, dtype=torch.float32, device=self.device).t().contiguous().unsqueeze(-1)

    def _adam_tables(self, lrs: list[list[float]], momenta: list[list[float]]) -> None:
        """Adam's and AdamW's per-step factors, computed as torch computes them: Python floats from the
        step's LR, its beta1 and the step count (counted from 1)."""
        members, steps = self.members, range(self.steps_per_epoch)
        done = [m.steps for m in members]
        self._step_sizes = self._table(
            [[-lr[j] / (1 - b[j] ** (n + j + 1)) for j in steps] for lr, b, n in zip(lrs, momenta, done, strict=True)]
        )
        self._corrections2_sqrt = self._table([[math.sqrt(1 - ADAM_BETA2 ** (n + j + 1)) for j in steps] for n in done])
        self._shrinks = self._table([[1 - lr[j] * wd for j in steps] for lr, wd in zip(lrs, self._decays, strict=True)])
        self._averaging = self._table([[1 - b[j] for j in steps] for b in momenta])
        self._decoupled = self._column([m.spec.optimizer.name == "adamw" for m in members], torch.bool)

    @torch.no_grad()
    def _update(self, step: int) -> None:
        """One optimizer step for every trial, as its own torch optimizer would take it."""
        columns, p, grad = self._columns, self.theta, self.grad
        momentum, neg_lr = self._momenta[step], self._neg_lrs[step]
        # SGD: d = g + wd * p; buf = mom * buf + d; d = d + mom * buf (nesterov) or buf; p -= lr * d.
        # Terms that are zero for every trial are skipped, as torch skips them.
        d = _fma(p, columns["weight_decay"], grad) if self._any_decay else grad
        buffer = self._state["buffer"]
        buffer.mul_(momentum).add_(d)
        d = torch.where(columns["nesterov"], _fma(buffer, momentum, d), buffer) if self._any_nesterov else buffer
        if not self._any_adam:
            p.addcmul_(d, neg_lr)  # p + (-lr) * d, in place
            return
        p.copy_(torch.where(columns["sgd"], _fma(d, neg_lr, p), self._adam(step)))

    def _adam(self, step: int) -> torch.Tensor:
        """Adam's and AdamW's step for every row (the caller keeps the rows of Adam trials)."""
        p, grad, decoupled = self.theta, self.grad, self._decoupled
        param = torch.where(decoupled, p * self._shrinks[step], p)  # AdamW: p *= 1 - lr * wd
        g = torch.where(decoupled, grad, _fma(p, self._columns["weight_decay"], grad))  # Adam: g += wd * p
        exp_avg, exp_avg_sq = self._state["exp_avg"], self._state["exp_avg_sq"]
        exp_avg.lerp_(g, self._averaging[step])
        exp_avg_sq.mul_(ADAM_BETA2).addcmul_(g, g, value=1 - ADAM_BETA2)
        denom = (exp_avg_sq.sqrt() / self._corrections2_sqrt[step]).add_(ADAM_EPS)
        return param + self._step_sizes[step] * exp_avg / denom


class StackedTrainer:
    """Trains the trials added to it, one epoch for all of them per `train_epoch()` call.

    Args:
        data: loaded once for the problem, on `device`.
        problem: any RunSpec of the problem (data, model, epochs, batch size and seed are shared).
    """

    def __init__(self, data: Data, problem: RunSpec, device: torch.device | str = "cpu") -> None:
        if not data.stackable:
            raise ValueError("the stacked engine trains the built-in MLP on tensors; this task brings its own")
        self.data, self.device = data, torch.device(device)
        self.batch_size, self.hidden = problem.batch_size, problem.model.hidden
        self.steps_per_epoch = data.steps_per_epoch(self.batch_size)
        self._orders = EpochOrders(len(data.train), self.device)
        self._initial: dict[int, torch.Tensor] = {}  # seed -> its initial weights, flat
        shapes = [p.shape for p in make_mlp(data.n_features, self.hidden, data.n_outputs).parameters()]
        self._stack = StackedUpdate(shapes, self.steps_per_epoch, self.device)
        self._tested: torch.nn.Module | None = None

    @property
    def members(self) -> list[_Member]:
        return self._stack.members

    def __len__(self) -> int:
        return len(self._stack)

    def add(self, key: object, spec: RunSpec) -> None:
        """Start training `spec` (a RunSpec of this problem) from its seed's initial weights."""
        if (spec.batch_size, spec.model.hidden) != (self.batch_size, self.hidden):
            raise ValueError("a stack trains one problem: every trial's batch size and model are the stack's")
        self._stack.add(key, spec, self._initial_weights(spec.seed))

    def _initial_weights(self, seed: int) -> torch.Tensor:
        """nn.Linear's own layout ([out, in] weights, used transposed), so the matmuls match it, drawn on the
        CPU from `seed` as `train` draws them; flat, as one row of the stack's [K, P] parameters."""
        if seed not in self._initial:
            with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
                torch.random.default_generator.manual_seed(seed)
                model = make_mlp(self.data.n_features, self.hidden, self.data.n_outputs)
            self._initial[seed] = torch.cat([p.detach().flatten() for p in model.parameters()]).to(self.device)
        return self._initial[seed]

    def remove(self, key: object) -> None:
        """Take a trial out of the stack (finished, pruned or diverged)."""
        self._stack.remove(key)

    def weights(self, key: object) -> list[torch.Tensor]:
        """The trial's current parameters, shaped and ordered as `make_mlp(...).parameters()`."""
        row = self._stack.row(key)
        return [w[row].detach().clone() for w in self._stack.leaves]

    @torch.no_grad()
    def test(self, key: object) -> tuple[float, float | None]:
        """The trial's test loss and score, computed as the lone loop's `evaluate` computes them."""
        if self.data.test is None:
            raise ValueError("the task has no test split")
        if self._tested is None:  # one module for every run's test: certification tests each run about 12 times
            with torch.random.fork_rng(devices=[]):  # its weights are overwritten: the caller's random state stays
                self._tested = make_mlp(self.data.n_features, self.hidden, self.data.n_outputs).to(self.device)
        row = self._stack.row(key)
        for parameter, stacked in zip(self._tested.parameters(), self._stack.leaves, strict=True):
            parameter.copy_(stacked[row])
        return evaluate(self._tested, self.data, self.data.test, self.device)

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x [K, B, in] -> (hidden, hidden, logits [K, B, classes]), layer by layer as nn.Linear computes them."""
        w1, b1, w2, b2, w3, b3 = self._stack.leaves
        h1 = torch.baddbmm(b1.unsqueeze(1), x, w1.transpose(1, 2)).relu_()
        h2 = torch.baddbmm(b2.unsqueeze(1), h1, w2.transpose(1, 2)).relu_()
        return h1, h2, torch.baddbmm(b3.unsqueeze(1), h2, w3.transpose(1, 2))

    @torch.no_grad()
    def _gradients(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Every trial's loss on its batch ([K]), its gradients written into the stack's flat gradient.

        The backward is written out with the operations autograd runs for it (the loss's: `_losses_and_gradients`;
        per layer: a sum over the batch for the bias's gradient, `bmm` and `threshold_backward` back through
        the ReLU), without building and walking its graph every batch.
        The weights' gradient is `bmm(d_out^T, inputs)`, in the flat gradient's own layout, where autograd
        computes `bmm(inputs^T, d_out)` and transposes it (a strided copy of every weight, each batch):
        the same products summed in the same order, and equal to the bit here (every epoch record of 36
        mixed trials matched the autograd engine's); the tests hold every trial within 1e-6 of itself alone.
        """
        w1, _, w2, _, w3, _ = self._stack.leaves
        h1, h2, logits = self._forward(x)
        losses, d_out = self._losses_and_gradients(logits, y)
        g_w1, g_b1, g_w2, g_b2, g_w3, g_b3 = (leaf.grad for leaf in self._stack.leaves)
        for inputs, weight, g_weight, g_bias in ((h2, w3, g_w3, g_b3), (h1, w2, g_w2, g_b2), (x, w1, g_w1, g_b1)):
            g_weight.copy_(torch.bmm(d_out.transpose(1, 2), inputs))
            torch.sum(d_out, dim=1, out=g_bias)
            if inputs is not x:  # back through the ReLU that made `inputs`
                d_out = torch.ops.aten.threshold_backward(torch.bmm(d_out, weight), inputs, 0)
        return losses

    def train_epoch(self) -> list[EpochOutcome]:
        """One epoch for every trial in the stack; each trial's own next epoch."""
        stack, k = self._stack, len(self._stack)
        if k == 0:
            return []
        stack.start_epoch()
        orders = self._orders.of([(m.spec.seed, m.epoch) for m in stack.members])  # [K, n_train]
        train_x, train_y = self.data.train.x, self.data.train.y
        loss_sum = torch.zeros(k, device=self.device)
        for step, start in enumerate(range(0, len(self.data.train), self.batch_size)):
            rows = orders[:, start : start + self.batch_size].flatten()  # K batches of B rows, one after another
            x, y = (
                train_x.index_select(0, rows).view(k, -1, train_x.shape[1]),
                train_y.index_select(0, rows).view(k, -1),
            )
            losses = self._gradients(x, y)
            stack.step(step)
            loss_sum += losses
        train_losses = (loss_sum / self.steps_per_epoch).tolist()
        with torch.no_grad():
            logits = self._forward(self.data.val.x.unsqueeze(0).expand(k, -1, -1))[-1]
            y = self.data.val.y
            # As the one-trial loop computes them.
            val_losses = [self.data.loss(logits[row], y).item() for row in range(k)]
            scores = self.data.scores_of(logits, y)
        return stack.end_epoch(train_losses, val_losses, scores)

    def _losses_and_gradients(self, outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each trial's mean loss over its batch (outputs [K, B, out], targets [K, B] -> [K]) and the gradient of
        their sum with respect to `outputs`, as autograd computes them to the bit."""
        if self.data.kind == "regression":
            return squared_error_with_gradient(outputs, targets)
        return cross_entropy_with_gradient(outputs, targets)


def squared_error_with_gradient(outputs: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """K runs' mean squared error over their batches (outputs [K, B, 1], targets [K, B] -> [K]) and its gradient
    with respect to `outputs`, equal to the bit to autograd's for `((outputs.squeeze(-1) - targets) ** 2)
    .mean(1).sum()`: the mean's 1/B times the square's `2 * errors`, rounded once."""
    errors = outputs.squeeze(-1) - targets
    of_mean = outputs.new_full(targets.shape, 1.0).div_(targets.shape[1])
    return (errors**2).mean(dim=1), (errors * 2.0).mul_(of_mean).unsqueeze(-1)


def _fma(x: torch.Tensor, scale: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """base + scale * x, with a per-trial `scale` column: torch's `base.add(x, alpha=scale)` for K trials."""
    return torch.addcmul(base, x, scale)
