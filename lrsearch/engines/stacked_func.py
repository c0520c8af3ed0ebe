"""Stacked training of any model: K trials of one task at once with `torch.func`, each equal to itself alone.

The model is a function of its parameters (`functional_call`), run once for all K trials by `vmap`; each
trial's parameters are one row of `StackedUpdate`'s flat [K, P] tensor, so the optimizer step and the
scheduler stepping are the very code of the built-in MLP's stacked engine. What runs under `vmap` is the
task's step (`Data.train_loss`, `Data.eval_outputs`: its own `train_step` and `eval_step`, or `loss(model(x),
y)`), on batches of any shape (dicts, several inputs); gradient clipping is per trial, by its own norm, and
accumulation adds the batches' gradients before a step, as the lone run does. Buffers (BatchNorm's running
statistics) and frozen parameters are stacked too ([K, ...]): each trial keeps its own, as it would alone.

Each trial is its RunSpec, seed included, as `lrsearch.engines.lone.train` runs it:
- its initial weights are `torch.manual_seed(spec.seed); model = factory()`;
- tensor data: its batch order in each epoch is `epoch_order(rows, spec.seed, epoch)`;
- a DataLoader: it has its own iterator over the loader, and its own torch random state and loader
  generator state, swapped in around everything it does with the loader, so interleaving trials
  reproduces each trial's lone run (the order a shuffling loader draws, and any draws of the dataset);
- it walks its own epochs: trials join and leave at any epoch boundary.

Convolutions (of a model with `nn.Conv*` modules) are run trial by trial: vmap would make K trials'
convolutions one grouped convolution, whose backward sums in another order than the lone one (a relative
1e-6 a step, which training compounds and Adam blows up) and which, on the CPU, is slower than K plain
ones. A `F.conv2d` called without such a module gets vmap's grouped one: equal within rounding only.

What cannot be stacked (a forward or step that calls `.item()` or branches on a tensor's value, a loader
with worker processes, autocast, ...) is found by `stackable` when the task loads; such a task trains one
trial at a time.
Random layers (Dropout) draw different numbers for each trial (`randomness="different"`); they cannot
draw the numbers of the lone run, so those trials are alike in distribution, not equal.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, vmap
from torch.overrides import TorchFunctionMode
from torch.utils.data import DataLoader, IterableDataset

from lrsearch.base.device import one_thread
from lrsearch.engines.interface import EpochOutcome
from lrsearch.engines.stacked_mlp import StackedUpdate
from lrsearch.problem.batches import Batch, combine, equal, first_rows, to_device, tree_map
from lrsearch.problem.data import Data, EpochOrders, Split, whole
from lrsearch.problem.spec import RunSpec

Tensors = dict[str, torch.Tensor]
# How close a stacked forward and backward must come to the model's own on the probe's two rows; a
# vmapped kernel may sum in another order (float32), a wrong batching is far off.
PROBE_TOLERANCE = 1e-4
# torch's warning for an op vmap runs one trial at a time (a Transformer's fused attention, say): correct,
# only slower, and written once per call site each time anything resets Python's warning registries.
_NO_BATCHING_RULE = re.compile(r"not yet implemented the batching rule for (\S+?)\.?(\s|$)")
_log = logging.getLogger("lrsearch")
# Said once a search: the worker processes, started after the command's own stacking check said it,
# find this in their environment and stay quiet.
SAID_ENV = "LRSEARCH_SAID_NO_BATCHING_RULE"
_shown: set[tuple] = set()  # other warnings raised under the stacked engine, shown once each


@contextmanager
def _batching_fallbacks() -> Iterator[None]:
    """Within: torch's "no batching rule for aten::X" warnings become one line on the "lrsearch" logger, the
    first time in this process; any other warning is shown once, as Python's default filter would."""
    with warnings.catch_warnings(record=True) as caught:
        yield
    ops = []
    for w in caught:
        match = _NO_BATCHING_RULE.search(str(w.message))
        if match:
            ops += [match.group(1)] if match.group(1) not in ops else []
            continue
        seen = (w.category, str(w.message), w.filename, w.lineno)
        if seen not in _shown:
            _shown.add(seen)
            warnings.showwarning(w.message, w.category, w.filename, w.lineno, w.file, w.line)
    if ops and not os.environ.get(SAID_ENV):
        os.environ[SAID_ENV] = ", ".join(ops)
        _log.warning(
            "torch has no batched rule for %s: stacked trials of this model run slower; `--stack 1` trains "
            "one at a time",
            ", ".join(ops),
        )


def _said_once(method):
    """The method run within `_batching_fallbacks`."""

    @functools.wraps(method)
    def within(*args, **kwargs):
        with _batching_fallbacks():
            return method(*args, **kwargs)

    return within


@dataclass
class _Stream:
    """A trial's own random state for a DataLoader: torch's global one and the loader's generator's."""

    rng: torch.Tensor
    generator: torch.Tensor | None
    batches: Iterator | None = None  # its iterator over the loader in the current epoch


@dataclass
class _Model:
    """One trial's model as tensors: its trainable parameters (flat) and the rest (buffers, frozen ones)."""

    flat: torch.Tensor
    others: Tensors
    stream: _Stream | None


class FuncStackedTrainer:
    """Trains the trials added to it, any model, one epoch for all of them per `train_epoch()` call.

    Args:
        data: loaded once for the task, on `device`.
        problem: any RunSpec of the task; its model (the built-in MLP's width) and, for tensor data, its
            batch size are shared by every trial (their batches must stack).
    """

    def __init__(self, data: Data, problem: RunSpec, device: torch.device | str = "cpu") -> None:
        self.data, self.device = data, torch.device(device)
        self.batch_size = problem.batch_size
        self.batches_per_epoch = data.batches_per_epoch(self.batch_size)
        self.steps_per_epoch = data.steps_per_epoch(self.batch_size)
        with torch.random.fork_rng(devices=[]):
            _seed_cpu(problem.seed)
            self._base = data.new_model(problem).to(self.device)
        self._steps = _Steps(self._base, data)
        trainable = [(name, p) for name, p in self._base.named_parameters() if p.requires_grad]
        self._names = [name for name, _ in trainable]
        self._layout = _layout(self._base)
        # Its Python hook costs every op a little: only where a convolution module may call one.
        self._convolutions = any(isinstance(m, _CONVOLUTION_MODULES) for m in self._base.modules())
        self._stack = StackedUpdate(
            [p.shape for _, p in trainable], self.steps_per_epoch, self.device, clip_grad_norm=data.hooks.clip_grad_norm
        )
        self._others: Tensors = {name: t.new_empty(0, *t.shape) for name, t in _others(self._base).items()}
        self._streams: dict[object, _Stream] = {}
        self._orders = EpochOrders(len(data.train), self.device) if isinstance(data.train, Split) else None
        self._loader = data.train if isinstance(data.train, DataLoader) else None
        self._val = None if isinstance(data.val, DataLoader) else whole(data.val, self.device)

    def __len__(self) -> int:
        return len(self._stack)

    def add(self, key: object, spec: RunSpec) -> None:
        """Start training `spec` from its own seed's initial weights, at its own first epoch.

        Raises:
            ValueError: its model's parameters differ from the stack's, or (tensor data) its batch size does.
        """
        if self._loader is None and spec.batch_size != self.batch_size:
            raise ValueError(f"batch_size {spec.batch_size}: this stack's batches have {self.batch_size} rows")
        model = self._initial(spec)
        self._stack.add(key, spec, model.flat)
        self._others = {name: torch.cat([t, model.others[name].unsqueeze(0)]) for name, t in self._others.items()}
        if model.stream is not None:
            self._streams[key] = model.stream

    def remove(self, key: object) -> None:
        """Take a trial out of the stack (finished, pruned or diverged)."""
        index = torch.tensor(self._stack.rows_except(key), dtype=torch.long, device=self.device)
        self._stack.remove(key)
        self._others = {name: t.index_select(0, index) for name, t in self._others.items()}
        self._streams.pop(key, None)

    def state(self, key: object) -> Tensors:
        """The trial's current parameters and buffers, named as its model's `named_parameters()` and
        `named_buffers()`."""
        row = self._stack.row(key)
        params = {name: leaf[row].detach().clone() for name, leaf in zip(self._names, self._stack.leaves, strict=True)}
        return {
            name: params[name] if name in params else self._others[name][row].clone() for name, _, _ in self._layout
        }

    @_said_once
    @torch.no_grad()
    def test(self, key: object) -> tuple[float, float | None]:
        """The trial's test loss and score, in eval mode, computed as the lone loop's `evaluate` does."""
        if self.data.test is None:
            raise ValueError("the task has no test split")
        batch = whole(self.data.test, self.device)
        self._base.eval()
        try:
            output, target = functional_call(self._steps, _prefixed(self.state(key)), (batch, False))
        finally:
            self._base.train()
        return self.data.loss(output, target).item(), self.data.score_of(output, target)

    @_said_once
    def train_epoch(self) -> list[EpochOutcome]:
        """One epoch for every trial in the stack; each trial's own next epoch."""
        stack = self._stack
        if len(stack) == 0:
            return []
        stack.start_epoch()
        batches = self._batches()
        loss_sum = torch.zeros(len(stack), device=self.device)
        self._base.train()
        group, total = self.data.hooks.accumulate_batches, self.batches_per_epoch
        for index in range(total):
            losses = self._train_losses(next(batches))
            of_step = min(group, total - index // group * group)  # as the lone run weighs its batches
            stack.backward(losses / of_step if of_step > 1 else losses, accumulate=index % group != 0)
            if (index + 1) % group == 0 or index + 1 == total:
                stack.step(index // group)
            loss_sum += losses.detach()
        self._end_loader_epoch()
        train_losses = (loss_sum / total).tolist()
        val_losses, scores = self._validate()
        return stack.end_epoch(train_losses, val_losses, scores)

    def _initial(self, spec: RunSpec) -> _Model:
        """The trial's model as `train` draws it, and (a DataLoader) the random state its run goes on from."""
        generator = getattr(self._loader, "generator", None)
        with torch.random.fork_rng(devices=[]), _kept(generator):
            _seed_cpu(spec.seed)
            model = self.data.new_model(spec)
            if _layout(model) != self._layout:
                raise ValueError(f"seed {spec.seed}: the model's parameters differ from the stack's ({self._names})")
            self.data.reseed(spec.seed)
            stream = None
            if self._loader is not None:
                stream = _Stream(torch.get_rng_state(), None if generator is None else generator.get_state())
        flat = torch.cat([p.detach().flatten() for p in model.parameters() if p.requires_grad])
        others = {name: t.detach().to(self.device) for name, t in _others(model).items()}
        return _Model(flat.to(self.device), others, stream)

    def _tensors(self) -> tuple[Tensors, Tensors]:
        return dict(zip(self._names, self._stack.leaves, strict=True)), self._others

    def _train_losses(self, batch: Batch) -> torch.Tensor:
        """Every trial's training loss on its own batch (each tensor [K, B, ...]): the task's train step, [K]."""
        return self._vmapped(batch, training=True, batched=True)

    def _eval_outputs(self, batch: Batch, batched: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Every trial's eval step on its own batch (each tensor [K, B, ...]) or on the same one: (output,
        target), each [K, ...]."""
        return self._vmapped(batch, training=False, batched=batched)

    def _vmapped(self, batch: Batch, training: bool, batched: bool) -> Any:
        params, others = self._tensors()

        def step(p: Tensors, o: Tensors, rows: Batch) -> Any:
            return functional_call(self._steps, (_prefixed(p), _prefixed(o)), (rows, training))

        with _PerTrialConvolutions() if self._convolutions else nullcontext():
            in_dims = (0, 0, 0 if batched else None)
            return vmap(step, in_dims=in_dims, randomness="different")(params, others, batch)

    def _batches(self) -> Iterator[Batch]:
        """This epoch's batches of every trial, stacked: each tensor [K, B, ...] (tensor data: (x, y))."""
        members = self._stack.members
        if self._loader is None:
            orders = self._orders.of([(m.spec.seed, m.epoch) for m in members])  # [K, rows]
            for start in range(0, len(self.data.train), self.batch_size):
                index = orders[:, start : start + self.batch_size]
                yield self.data.train.x[index], self.data.train.y[index]
            return
        for m in members:
            with self._replaying(m.key) as stream:
                stream.batches = iter(self._loader)
        while True:
            batches = []
            for m in members:
                with self._replaying(m.key) as stream:
                    batches.append(next(stream.batches, None))
            if any(batch is None for batch in batches):
                raise ValueError(f"the train DataLoader gave fewer than len(loader) = {len(self._loader)} batches")
            yield _stacked(batches, self.device)

    def _end_loader_epoch(self) -> None:
        """Run each trial's iterator to its end, as a `for` loop does (a sampler may draw there)."""
        for m in self._stack.members if self._loader is not None else ():
            with self._replaying(m.key) as stream:
                if next(stream.batches, None) is not None:
                    raise ValueError(f"the train DataLoader gave more than len(loader) = {len(self._loader)} batches")
                stream.batches = None

    @_said_once
    @torch.no_grad()
    def _validate(self) -> tuple[list[float], list[float | None]]:
        """Each trial's val loss and score, in eval mode, computed as the lone loop's `evaluate` does."""
        k = len(self._stack)
        batch, batched = self._val_split()
        self._base.eval()
        outputs, targets = self._eval_outputs(batch, batched=batched)
        self._base.train()
        val_losses = [self.data.loss(outputs[row], targets[row]).item() for row in range(k)]
        scores = [self.data.score_of(outputs[row], targets[row]) for row in range(k)]
        return val_losses, scores

    def _val_split(self) -> tuple[Batch, bool]:
        """The val split as one batch: shared (False) or each trial's, stacked ([K, N, ...]; True)."""
        if self._val is not None:
            return self._val, False
        if not self._streams:
            return whole(self.data.val, self.device), False
        batches = []
        for m in self._stack.members:  # each trial reads the loader through its own random state, as alone
            with self._replaying(m.key):
                batches.append(whole(self.data.val, self.device))
        if all(equal(batch, batches[0]) for batch in batches):
            return batches[0], False
        return _stacked(batches, self.device), True

    @contextmanager
    def _replaying(self, key: object) -> Iterator[_Stream]:
        """Within: torch's random state, and the train loader's generator's, are the trial's own."""
        stream = self._streams.get(key)
        if stream is None:  # tensor data: no random state of the trial's is drawn from outside the model
            yield _Stream(torch.get_rng_state(), None)
            return
        generator = getattr(self._loader, "generator", None)
        with torch.random.fork_rng(devices=[]), _kept(generator):
            torch.set_rng_state(stream.rng)
            if generator is not None:
                generator.set_state(stream.generator)
            try:
                yield stream
            finally:
                stream.rng = torch.get_rng_state()
                stream.generator = None if generator is None else generator.get_state()


def stackable(data: Data, spec: RunSpec, device: torch.device | str = "cpu") -> str | None:
    """Whether `FuncStackedTrainer` can train the task's trials, found by trying it: a forward and backward
    of two trials on two training rows, compared with each trial's own model.

    Returns:
        None, or one line saying why not (the caller trains such a task one trial at a time).
    """
    reason = _loader_reason(data.train, "train") or _loader_reason(data.val, "val")
    if reason:
        return reason
    if data.hooks.autocast is not None:
        # Measured with torch 2.13: under vmap the forward runs in float32 whatever autocast says.
        return f"autocast {data.hooks.autocast}: under torch's vmap the forward runs in float32 whatever autocast says"
    twins = [spec, spec.model_copy(update={"seed": (spec.seed + 1) % 2**31})]
    try:
        generator = getattr(data.train, "generator", None)
        with _batching_fallbacks(), one_thread(), torch.random.fork_rng(devices=[]), _kept(generator):
            rows = _first_rows(data, device)
            trainer = FuncStackedTrainer(data, spec, device)
            for index, twin in enumerate(twins):
                trainer.add(index, twin)
            alone = [_alone(data, twin, device) for twin in twins]
            return _probe(trainer, alone, rows)
    except Exception as error:  # noqa: BLE001 - the user's model under vmap; whatever it raised, in one line
        text = str(error).strip()
        return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _loader_reason(source: object, split: str) -> str | None:
    if not isinstance(source, DataLoader):
        return None
    if source.num_workers > 0:
        return (
            f"the {split} DataLoader has num_workers={source.num_workers}: each trial would need worker "
            "processes of its own to replay its batches"
        )
    if isinstance(source.dataset, IterableDataset):
        return f"the {split} DataLoader reads an IterableDataset, whose batches cannot be replayed for each trial"
    if split == "train" and source.batch_size is None:
        return "the train DataLoader has its own batch_sampler: the trials' batches may not stack (sizes may differ)"
    return None


def _first_rows(data: Data, device: torch.device | str) -> Batch:
    batch = (data.train.x, data.train.y) if isinstance(data.train, Split) else next(iter(data.train))
    return to_device(first_rows(batch, 2), device)


def _alone(data: Data, spec: RunSpec, device: torch.device | str) -> nn.Module:
    _seed_cpu(spec.seed)
    return data.new_model(spec).to(device)


def _probe(trainer: FuncStackedTrainer, alone: list[nn.Module], batch: Batch) -> str | None:
    """A stacked training step's losses, gradients and buffers, and the stacked eval outputs, against each
    trial's own model taking the task's steps; None if they agree."""
    k, data = len(alone), trainer.data
    trainer._base.train()
    losses = trainer._train_losses(tree_map(lambda t: t.unsqueeze(0).expand(k, *t.shape).clone(), batch))
    trainer._stack.backward(losses)
    deterministic = _deterministic(data, alone[0], batch)
    for row, model in enumerate(alone):
        model.train()
        loss = data.train_loss(model, batch)
        loss.backward()
        for name, p in model.named_parameters():
            if p.requires_grad and p.grad is None:
                return f"parameter {name} gets no gradient: torch.optim skips it, a stacked update would not"
        if not deterministic:
            continue  # random layers: the trials' draws differ from the lone model's by design
        state = trainer.state(row)
        theirs = {**{n: p.grad for n, p in model.named_parameters() if p.requires_grad}, "loss": loss}
        mine = {**{n: leaf.grad[row] for n, leaf in zip(trainer._names, trainer._stack.leaves, strict=True)}}
        mine["loss"] = losses[row]
        for name, value in model.state_dict().items():
            theirs[f"{name} after the step"], mine[f"{name} after the step"] = value, state[name]
        differs = _first_difference(mine, theirs)
        if differs:
            return f"the stacked model differs from the model alone in {differs}"
    with torch.no_grad():
        trainer._base.eval()
        stacked, _ = trainer._eval_outputs(batch, batched=False)
        trainer._base.train()
        for row, model in enumerate(alone):
            output, _ = data.eval_outputs(model.eval(), batch)
            differs = _first_difference({"eval output": stacked[row]}, {"eval output": output})
            if differs:
                return f"the stacked model differs from the model alone in {differs}"
    return None


def _deterministic(data: Data, model: nn.Module, batch: Batch) -> bool:
    """Whether the model's training step, in train mode, gives the same loss twice (no random layers)."""
    twin = copy.deepcopy(model).train()
    with torch.no_grad():
        _seed_cpu(1)
        first = data.train_loss(twin, batch)
        _seed_cpu(2)
        return torch.equal(first, data.train_loss(twin, batch))


def _first_difference(mine: Tensors, theirs: Tensors) -> str | None:
    for name, value in theirs.items():
        other = mine[name].to(value.dtype)
        if value.shape != other.shape or not torch.allclose(other, value, rtol=PROBE_TOLERANCE, atol=PROBE_TOLERANCE):
            return name
    return None


def _layout(model: nn.Module) -> list[tuple[str, torch.Size, bool]]:
    """Names, shapes and trainability of the model's tensors (a tied parameter once, as `parameters()` has it)."""
    params = [(name, p.shape, p.requires_grad) for name, p in model.named_parameters()]
    return params + [(name, b.shape, False) for name, b in model.named_buffers()]


def _others(model: nn.Module) -> Tensors:
    """What a trial keeps beside its trainable parameters: buffers and frozen parameters."""
    frozen = {name: p.detach() for name, p in model.named_parameters() if not p.requires_grad}
    return frozen | dict(model.named_buffers())


def _stacked(batches: list[Batch], device: torch.device) -> Batch:
    """The trials' batches as one, each tensor [K, ...]."""

    def stack(tensors: list[torch.Tensor]) -> torch.Tensor:
        shapes = {tuple(t.shape) for t in tensors}
        if len(shapes) > 1:
            raise ValueError(f"the trials' batches have different shapes {sorted(shapes)}; they cannot be stacked")
        return torch.stack(tensors).to(device)

    return combine(stack, batches)


class _Steps(nn.Module):
    """The task's steps as a module that holds the model: `functional_call` on it swaps a trial's tensors
    into the model for the whole step, so a step of the user's may call the model or reach into its parts
    (`model.encoder(x)`) alike."""

    def __init__(self, model: nn.Module, data: Data) -> None:
        super().__init__()
        self.model = model
        self._data = data

    def forward(self, batch: Batch, training: bool) -> Any:
        if training:
            return self._data.train_loss(self.model, batch)
        return self._data.eval_outputs(self.model, batch)


def _prefixed(tensors: Tensors) -> Tensors:
    """The model's tensors named as `_Steps` holds them."""
    return {f"model.{name}": tensor for name, tensor in tensors.items()}


# The arguments of torch's convolutions, in order, to read them however the model passes them.
_CONVOLUTIONS = {
    **dict.fromkeys((torch.conv1d, torch.conv2d, torch.conv3d), ("stride", "padding", "dilation", "groups")),
    **dict.fromkeys(
        (torch.conv_transpose1d, torch.conv_transpose2d, torch.conv_transpose3d),
        ("stride", "padding", "output_padding", "groups", "dilation"),
    ),
}


_CONVOLUTION_MODULES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


class _PerTrialConvolutions(TorchFunctionMode):
    """Within: a convolution under vmap is each trial's own convolution (`_PerTrial`), not one grouped one."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in _CONVOLUTIONS:
            return func(*args, **kwargs)
        named = dict(zip(("input", "weight", "bias", *_CONVOLUTIONS[func]), args, strict=False)) | kwargs
        x, weight, bias = named.pop("input"), named.pop("weight"), named.pop("bias", None)
        return _PerTrial.apply(func, named, x, weight, bias)


class _PerTrial(torch.autograd.Function):
    """`func(x, weight, bias, **options)` whose vmap rule runs it once per trial; autograd then records, and
    differentiates, each trial's own call, as the lone run does."""

    @staticmethod
    def forward(func, options, x, weight, bias):
        return func(x, weight, bias, **options)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        pass

    @staticmethod
    def backward(ctx, grad):
        raise RuntimeError("a per-trial convolution is differentiated through its vmap rule, never on its own")

    @staticmethod
    def vmap(info, in_dims, func, options, x, weight, bias):
        def trials(tensor: torch.Tensor | None, dim: int | None) -> list[torch.Tensor | None]:
            # unbind, not K selects: its backward is one stack, where each select's is a [K, ...] of zeros.
            return [tensor] * info.batch_size if tensor is None or dim is None else list(tensor.unbind(dim))

        inputs = [trials(t, d) for t, d in zip((x, weight, bias), in_dims[2:], strict=True)]
        return torch.stack([func(*trial, **options) for trial in zip(*inputs, strict=True)]), 0


@contextmanager
def _kept(generator: torch.Generator | None) -> Iterator[None]:
    """Restore the generator's state on leaving (None: nothing to keep)."""
    state = None if generator is None else generator.get_state()
    try:
        yield
    finally:
        if generator is not None:
            generator.set_state(state)


def _seed_cpu(seed: int) -> None:
    """Seed the CPU generator only (weights are drawn on the CPU): `torch.manual_seed` would also reseed
    every CUDA generator, which `fork_rng(devices=[])` does not restore, and so reset the Dropout draws
    of the trials already training on the GPU."""
    torch.random.default_generator.manual_seed(seed)
