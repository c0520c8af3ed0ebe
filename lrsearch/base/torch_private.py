"""The few places lrsearch reaches into torch's private attributes, each with why, so that a torch upgrade
that moves them breaks here and nowhere else. Two spare an lrsearch command the import of torch._dynamo
(about 0.8 s on a CPU, a sixth of the default search's start-up), which nothing lrsearch runs needs; one
spares the stacked MLP's every batch a walk of autograd's engine.

The private names are used only on the torch releases the tests ran them on (`TESTED_TORCH`); on any other
release torch's public behaviour serves (the shadow optimizer steps once, torch._dynamo is imported as torch
imports it, autograd differentiates the loss): slower, the same LRs and gradients.
"""

from __future__ import annotations

import sys

import torch
from torch.nn import functional as F
from torch.optim import Optimizer

from lrsearch.base.versions import is_tested, say_untested_once

# The torch releases (major.minor) whose private names below the tests ran.
TESTED_TORCH = ("2.13",)


def torch_version() -> str:
    return torch.__version__


def private_names_on(version: str | None = None) -> bool:
    """Whether the private names are used with this torch release (default: the installed one)."""
    return is_tested(version or torch_version(), TESTED_TORCH)


def _private_names() -> bool:
    on = private_names_on()
    if not on:
        then = (
            "its optimizers are set up as torch sets them up, and autograd differentiates the stacked MLP's loss: "
            "slower, with the same results"
        )
        say_untested_once(_private_names, "torch", torch_version(), TESTED_TORCH, then)
    return on


def mark_stepped(optimizer: Optimizer) -> None:
    """Tell the schedulers driving a shadow optimizer (one dummy parameter, read only for its LR) that it
    has stepped, as torch's wrapper around `Optimizer.step` does, without stepping it.

    A scheduler stepped before its optimizer warns ("lr_scheduler.step() before optimizer.step()"), so
    the shadow used to be stepped once; but `Optimizer.step` imports torch._dynamo on its first call, a
    second of start-up on a CPU for a module no search uses. Call it after building the scheduler (older
    torch resets its count there): newer torch reads `_opt_called`, older torch `_step_count`. On a torch
    release not tested the shadow is stepped once, as before: its parameters have no gradient, so the
    step changes neither them nor any LR.
    """
    if not _private_names():
        optimizer.step()
        return
    optimizer._opt_called = True  # type: ignore[attr-defined]
    optimizer._step_count = max(getattr(optimizer, "_step_count", 0), 1)  # type: ignore[attr-defined]


def skip_dynamo_on_optimizer_setup() -> None:
    """Build torch optimizers in this process without importing torch._dynamo.

    `Optimizer.add_param_group` (which every optimizer's constructor calls) is wrapped in torch's
    `_disable_dynamo`, which imports torch._dynamo on its first call (about 0.8 s on this CPU) to exclude
    the method from a `torch.compile` that an lrsearch command never runs. The wrapper keeps the function
    it would call in `__dynamo_disable`; set to the method itself, it calls it as it is. For the commands'
    own processes only (an API user's process may compile its own code); a no-op where torch._dynamo is
    loaded already, where a torch upgrade changed the wrapper, or on a torch release not tested.
    """
    if "torch._dynamo" in sys.modules or not _private_names():
        return
    original = getattr(Optimizer.add_param_group, "__wrapped__", None)
    wrapper = Optimizer.add_param_group
    if original is not None and wrapper.__code__.co_filename.endswith("_compile.py"):  # torch's _disable_dynamo
        original.__dynamo_disable = original


def cross_entropy_with_gradient(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """K runs' mean cross-entropy over their batches (logits [K, B, classes], targets [K, B] -> [K]) and its
    gradient with respect to the logits, equal to the bit to what autograd gives for
    `F.cross_entropy(..., reduction="none").view(K, B).mean(1).sum()`.

    A stacked step on the built-in MLP is a few dozen small operations, and walking autograd's engine
    for three of them every batch cost a fifth of it: 10 runs' step took 510 us on this CPU, 400 us
    without it. Here the kernels autograd runs for them are called in its order: the mean's 1/B,
    `nll_loss`'s backward, then `log_softmax`'s, whose ATen name is private. On a torch release not
    tested autograd computes it, as before.
    """
    runs, batch = targets.shape
    if not _private_names():
        logits = logits.detach().requires_grad_(True)
        with torch.enable_grad():
            losses = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none").view(runs, -1).mean(1)
            (gradient,) = torch.autograd.grad(losses.sum(), logits)
        return losses.detach(), gradient
    flat_targets = targets.flatten()
    log_probs = torch.log_softmax(logits.flatten(0, 1), dim=-1)
    losses = F.nll_loss(log_probs, flat_targets, reduction="none").view(runs, -1).mean(1)
    no_total_weight = logits.new_empty(())  # read only with a reduction, and there is none
    of_mean = logits.new_full((runs * batch,), 1.0).div_(batch)  # 1/B, as autograd's mean backward makes it
    d_log_probs = torch.ops.aten.nll_loss_backward(of_mean, log_probs, flat_targets, None, 0, -100, no_total_weight)
    gradient = torch.ops.aten._log_softmax_backward_data(d_log_probs, log_probs, -1, log_probs.dtype)
    return losses, gradient.view_as(logits)
