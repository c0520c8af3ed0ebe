"""What both adapters take from their caller: a model or its parameters, a count of steps, and the error
that names the extra to install when the framework is missing."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch import nn

from lrsearch.base.errors import ConfigError

# A model, its parameters, or its parameter groups (dicts, each with "params" and maybe its own "lr").
ModelOrParams = nn.Module | Iterable[nn.Parameter] | Iterable[dict[str, Any]]


def parameters(model_or_params: ModelOrParams) -> list[Any]:
    if isinstance(model_or_params, nn.Module):
        return list(model_or_params.parameters())
    return list(model_or_params)


def checked_steps(steps_per_epoch: int) -> int:
    if isinstance(steps_per_epoch, bool) or not isinstance(steps_per_epoch, int) or steps_per_epoch < 1:
        raise ConfigError(f"steps_per_epoch must be an integer of at least 1 but got {steps_per_epoch!r}")
    return steps_per_epoch


def missing_framework(error: ModuleNotFoundError, *, framework: str, extra: str) -> ImportError:
    """The one line to say when `framework` itself is missing; any other missing module (one the framework
    needs, say) is the original error, which names it."""
    if error.name is None or error.name.split(".")[0] != framework:
        return error
    return ImportError(f"this adapter needs {framework}, which is not installed: pip install 'lrsearch[{extra}]'")
