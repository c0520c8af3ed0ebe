"""A batch as lrsearch moves it: whatever the task's data yields (an `(x, y)` pair, several inputs and a
target, a dict), walked as a tree of tuples, lists and dicts whose tensors are its leaves.

torch keeps its own tree utilities private (`torch.utils._pytree`); a batch needs only these few walks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

Batch = Any  # a tensor, or a tuple, list or dict of batches; other leaves (strings, numbers) ride along


def tree_map(fn: Callable[[torch.Tensor], torch.Tensor], batch: Batch) -> Batch:
    """The batch with `fn` applied to each of its tensors."""
    if isinstance(batch, torch.Tensor):
        return fn(batch)
    if isinstance(batch, dict):
        return {key: tree_map(fn, value) for key, value in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(tree_map(fn, value) for value in batch)
    return batch


def combine(fn: Callable[[list[torch.Tensor]], torch.Tensor], batches: list[Batch]) -> Batch:
    """One batch from batches of one structure, `fn` joining each tensor's versions (`torch.stack`, `torch.cat`).

    Raises:
        ValueError: the batches differ in structure, or in a leaf that is not a tensor.
    """
    first = batches[0]
    if isinstance(first, torch.Tensor):
        if not all(isinstance(b, torch.Tensor) for b in batches):
            raise ValueError("the batches differ in structure: a tensor in one, something else in another")
        return fn(batches)
    if isinstance(first, dict):
        if any(not isinstance(b, dict) or b.keys() != first.keys() for b in batches):
            raise ValueError(f"the batches differ in their keys (the first has {sorted(first)})")
        return {key: combine(fn, [b[key] for b in batches]) for key in first}
    if isinstance(first, tuple | list):
        if any(type(b) is not type(first) or len(b) != len(first) for b in batches):
            raise ValueError("the batches differ in structure (their tuples or lists differ in length)")
        return type(first)(combine(fn, list(parts)) for parts in zip(*batches, strict=True))
    if any(b != first for b in batches):
        raise ValueError(f"the batches differ in a value that is not a tensor ({type(first).__name__})")
    return first


def leaves(batch: Batch) -> list[torch.Tensor]:
    """The batch's tensors, in order."""
    if isinstance(batch, torch.Tensor):
        return [batch]
    values = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, tuple | list) else ()
    return [tensor for value in values for tensor in leaves(value)]


def rows(batch: Batch) -> int:
    """How many rows the batch has: its first tensor's length."""
    tensors = [t for t in leaves(batch) if t.dim() > 0]
    return len(tensors[0]) if tensors else 0


def first_rows(batch: Batch, count: int) -> Batch:
    """The batch's first `count` rows (tensors without a row dimension are kept whole)."""
    return tree_map(lambda t: t[:count] if t.dim() > 0 else t, batch)


def to_device(batch: Batch, device: torch.device | str) -> Batch:
    return tree_map(lambda t: t.to(device), batch)


def is_pair(batch: Batch) -> bool:
    """Whether the batch is an `(x, y)` pair of tensors, what the default steps take."""
    return isinstance(batch, tuple | list) and len(batch) == 2 and all(isinstance(v, torch.Tensor) for v in batch)


def equal(one: Batch, other: Batch) -> bool:
    """Whether two batches hold the same values in the same structure."""
    try:
        combine(lambda tensors: tensors[0], [one, other])  # the same structure and non-tensor values
    except ValueError:
        return False
    return all(torch.equal(a, b) for a, b in zip(leaves(one), leaves(other), strict=True))
