"""Why a training loss became NaN or infinite: an honest message, not a guess.

A learning rate that is too high blows the weights up after some updates; a NaN at the
very first step cannot be the learning rate's fault (no update has happened yet). When
:func:`benchbox.engine.train.train_stage` meets a non-finite loss, :func:`explain` looks, in
this order, for

1. non-finite values in the batch (the data or its preprocessing);
2. non-finite weights (loaded weights at step 1, an exploded update later);
3. the first module whose output is non-finite, found by running the batch again with
   forward hooks on every module: a layer of the model, or the loss (a module too);
4. otherwise the loss computation outside any module.

Only the message changes with the diagnosis; the run fails either way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["explain"]


def _finite(value: Any) -> bool:
    """Whether every floating tensor in ``value`` (nested tuples, lists, dicts) is finite."""
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    if isinstance(value, Mapping):
        return all(_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    return True


@dataclass
class _Culprit:
    module: torch.nn.Module
    top: torch.nn.Module


def _first_non_finite_module(
    rerun: Callable[[], torch.Tensor], autocast: Callable[[], AbstractContextManager[Any]]
) -> tuple[_Culprit | None, bool]:
    """Run the step again; return the innermost module that first output a non-finite
    value (with the outermost module it ran in), and whether the loss was non-finite."""
    from torch.nn.modules.module import (
        register_module_forward_hook,
        register_module_forward_pre_hook,
    )

    stack: list[torch.nn.Module] = []
    found: list[_Culprit] = []

    def pre(module: torch.nn.Module, args: Any) -> None:
        stack.append(module)

    def post(module: torch.nn.Module, args: Any, output: Any) -> None:
        top = stack[0] if stack else module
        if stack:
            stack.pop()
        if not found and _finite(args) and not _finite(output):
            found.append(_Culprit(module, top))

    handles = [register_module_forward_pre_hook(pre), register_module_forward_hook(post)]
    try:
        with torch.no_grad(), autocast():
            loss = rerun()
        reproduced = not _finite(loss)
    except Exception:  # a diagnosis must never hide the divergence itself
        reproduced = False
    finally:
        for handle in handles:
            handle.remove()
    return (found[0] if found else None), reproduced


def _where(culprit: _Culprit) -> str:
    kind = type(culprit.module).__name__
    if culprit.module is culprit.top:
        return kind
    name = next((n for n, m in culprit.top.named_modules() if m is culprit.module), "")
    inner = f"{name!r} ({kind})" if name else kind
    return f"{inner} in {type(culprit.top).__name__}"


def _is_loss(module: torch.nn.Module) -> bool:
    return isinstance(module, torch.nn.modules.loss._Loss) or type(module).__name__.endswith("Loss")


def explain(
    stage: str,
    value: float,
    *,
    epoch: int,
    step: int,
    lr: float,
    batch: Mapping[str, Any],
    parameters: Iterable[torch.Tensor],
    rerun: Callable[[], torch.Tensor],
    autocast: Callable[[], AbstractContextManager[Any]],
    amp: bool = False,
    last_read: int | None = None,
) -> str:
    """The message of a :class:`~benchbox.errors.TrainingDivergedError`.

    Args:
        stage: the training stage (``fusion``, ``joint``...).
        value: the non-finite loss.
        epoch: 1-based epoch; ``step``: 1-based step of the stage.
        lr: the learning rate of that step.
        batch: the batch whose loss was non-finite.
        parameters: the trained parameters (before the step's update).
        rerun: computes that batch's loss again (the forward pass and the loss).
        autocast: the mixed-precision context of the step.
        amp: whether mixed precision is on (then it is a suspect too).
        last_read: the step whose loss was last read and finite (0: none), when the
            loop does not read every step's loss; the steps in between are suspects too.
    """
    head = f"the {stage} loss became {value} at epoch {epoch}, step {step}"
    tail = "; the run is marked failed"
    amp_hint = ", or try --amp off" if amp else ""
    bad_inputs = [k for k, v in batch.items() if not _finite(v)]
    if bad_inputs:
        keys = ", ".join(map(repr, bad_inputs))
        return (
            f"{head}: the input batch already holds NaN or infinite values ({keys}); "
            f"check the data and its preprocessing{tail}"
        )
    if not all(_finite(p.detach()) for p in parameters):
        if step == 1:
            return (
                f"{head}: the model's initial weights hold NaN or infinite values; check "
                f"loaded weights (--fusion-weights, --seg-weights){tail}"
            )
        if last_read is not None and last_read < step - 1:
            # The loss of the steps in between was not read: any of them may have had
            # non-finite inputs whose gradients spoiled the weights.
            unread = (
                f"step {last_read + 1}"
                if last_read + 1 == step - 1
                else f"one of steps {last_read + 1}-{step - 1}"
            )
            return (
                f"{head}: the weights became NaN or infinite in an earlier update, after "
                f"step {last_read} (the last loss read, finite): usually too high a learning "
                f"rate (lr {lr:.3g}), or non-finite inputs in {unread}; lower the learning "
                f"rate or check the data{amp_hint}{tail}"
            )
        return (
            f"{head}: the weights became NaN or infinite in an earlier update "
            f"(lr {lr:.3g}): lower the learning rate{amp_hint}{tail}"
        )
    culprit, reproduced = _first_non_finite_module(rerun, autocast)
    if step == 1:
        head += ", before any update, with finite inputs and weights"
        lr_hint = ""
    else:
        updates = f"{step - 1} update" + ("s" if step > 2 else "")
        head += f", after {updates}, with finite inputs and weights"
        lr_hint = f"; if earlier steps were fine, lower the learning rate (lr {lr:.3g})"
    if culprit is not None and _is_loss(culprit.top):
        what = (
            f"the loss {_where(culprit)} returned a non-finite value for finite model "
            "outputs: check the loss"
        )
    elif culprit is not None:
        what = (
            f"the first non-finite value is the output of {_where(culprit)}, for finite "
            "inputs: check the model"
        )
    elif reproduced:
        what = "every module's output is finite, so the loss computation produced it"
    else:
        what = "running the batch again gave a finite loss (a non-deterministic operation?)"
    return f"{head}: {what}{lr_hint}{amp_hint}{tail}"
