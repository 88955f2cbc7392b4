"""Optimizers and learning-rate schedules (warm-up, then multi-step or cosine decay)."""

from __future__ import annotations

import logging
import math
from typing import Any, Dict, List, Sequence

import torch
from torch import nn
from ..errors import UnknownNameError

logger = logging.getLogger("reidbox")
OPTIMIZER_IMPLS = ("auto", "fused", "foreach", "loop")


def optimizer_impl_kwargs(impl: str, params: Sequence[torch.Tensor]) -> Dict[str, Any]:
    """``fused=`` / ``foreach=`` for a torch optimizer: ``auto`` is fused on CUDA (one kernel
    for every parameter instead of several per parameter) and torch's default elsewhere."""
    if impl not in OPTIMIZER_IMPLS:
        raise UnknownNameError(
            f"unknown SOLVER.OPTIMIZER_IMPL {impl!r}; available: {', '.join(OPTIMIZER_IMPLS)}"
        )
    on_cuda = any(p.is_cuda for p in params)
    if impl == "auto":
        return {"fused": True} if on_cuda else {}
    if impl == "fused":
        return {"fused": True}
    return {"foreach": impl == "foreach"}


def build_optimizer(
    model: nn.Module,
    name: str,
    base_lr: float,
    weight_decay: float = 5e-4,
    momentum: float = 0.9,
    nesterov: bool = False,
    amsgrad: bool = False,
    backbone_lr_factor: float = 1.0,
    impl: str = "auto",
) -> torch.optim.Optimizer:
    """SGD (momentum), Adam or AdamW (decoupled weight decay); pre-trained backbone
    parameters may get a smaller LR. ``impl``: see :func:`optimizer_impl_kwargs`."""
    backbone, rest = [], []
    for n, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (backbone if n.startswith("backbone.") else rest).append(p)
    groups = [{"params": rest, "lr": base_lr}]
    if backbone:
        groups.append({"params": backbone, "lr": base_lr * backbone_lr_factor})
    name = name.lower()
    kw = optimizer_impl_kwargs(impl, backbone + rest)
    if name == "sgd":
        return torch.optim.SGD(
            groups,
            lr=base_lr,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            **kw,
        )
    if name == "adam":
        return torch.optim.Adam(
            groups, lr=base_lr, weight_decay=weight_decay, amsgrad=amsgrad, **kw
        )
    if name == "adamw":
        return torch.optim.AdamW(
            groups, lr=base_lr, weight_decay=weight_decay, amsgrad=amsgrad, **kw
        )
    raise UnknownNameError(f"unknown SOLVER.OPTIMIZER {name!r}; available: SGD, Adam, AdamW")


class LRFactor:
    """LR multiplier as a function of the iteration (a picklable object for ``LambdaLR``).

    Linear warm-up from ``warmup_factor`` over ``warmup_epochs``, then ``gamma`` at each of
    ``steps`` (epochs) or a cosine decay to zero at ``max_epochs``.
    """

    def __init__(
        self,
        iters_per_epoch: int,
        max_epochs: int,
        kind: str = "multistep",
        steps: Sequence[int] = (),
        gamma: float = 0.1,
        warmup_epochs: float = 0,
        warmup_factor: float = 0.1,
    ) -> None:
        if kind not in ("multistep", "cosine"):
            raise UnknownNameError(
                f"unknown SOLVER.SCHEDULER {kind!r}; available: multistep, cosine"
            )
        self.iters_per_epoch = max(1, iters_per_epoch)
        self.max_epochs, self.kind = max_epochs, kind
        self.steps: List[int] = sorted(steps)
        self.gamma, self.warmup_epochs, self.warmup_factor = gamma, warmup_epochs, warmup_factor

    def __call__(self, it: int) -> float:
        epoch = it / self.iters_per_epoch
        if self.kind == "cosine":
            f = 0.5 * (1 + math.cos(math.pi * min(epoch, self.max_epochs) / self.max_epochs))
        else:
            f = self.gamma ** sum(epoch >= s for s in self.steps)
        if epoch < self.warmup_epochs:
            alpha = epoch / self.warmup_epochs
            f *= self.warmup_factor * (1 - alpha) + alpha
        return f


def build_solver(cfg, model: nn.Module, iters_per_epoch: int):
    """Optimizer and per-iteration LR schedule from ``cfg.SOLVER``."""
    warn_inert_settings(cfg)
    s = cfg.SOLVER
    optimizer = build_optimizer(
        model,
        s.OPTIMIZER,
        s.BASE_LR,
        s.WEIGHT_DECAY,
        s.MOMENTUM,
        s.NESTEROV,
        s.AMSGRAD,
        s.BACKBONE_LR_FACTOR,
        s.OPTIMIZER_IMPL,
    )
    if s.WARMUP_EPOCHS > 0 and s.WARMUP_EPOCHS >= s.MAX_EPOCHS:
        logger.warning(
            "SOLVER.WARMUP_EPOCHS %g >= SOLVER.MAX_EPOCHS %d: the learning rate never reaches "
            "BASE_LR (the whole run is warm-up); lower SOLVER.WARMUP_EPOCHS or train longer",
            s.WARMUP_EPOCHS,
            s.MAX_EPOCHS,
        )
    scheduler = build_scheduler(
        optimizer,
        iters_per_epoch,
        s.MAX_EPOCHS,
        s.SCHEDULER,
        s.STEPS,
        s.GAMMA,
        s.WARMUP_EPOCHS,
        s.WARMUP_FACTOR,
    )
    return optimizer, scheduler


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    iters_per_epoch: int,
    max_epochs: int,
    kind: str,
    steps: Sequence[int],
    gamma: float,
    warmup_epochs: float,
    warmup_factor: float,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Stepped once per iteration."""
    f = LRFactor(iters_per_epoch, max_epochs, kind, steps, gamma, warmup_epochs, warmup_factor)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, f)


def resume_schedule(scheduler: torch.optim.lr_scheduler.LRScheduler, global_step: int) -> None:
    """Continue the schedule of the *current* config at ``global_step`` (after a resume).

    The schedule is a pure function of the step, so it is recomputed instead of restored from a
    checkpoint: a raised ``SOLVER.MAX_EPOCHS`` (or new steps, gamma, warm-up, base LR) then
    applies to the epochs still to run, and with an unchanged config the LR is bit-identical to
    the one the checkpoint holds (same arithmetic on the same numbers).
    """
    if not isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
        raise TypeError(f"cannot recompute a {type(scheduler).__name__} at a step")
    scheduler.last_epoch = int(global_step)
    lrs = [
        base * f(scheduler.last_epoch) for f, base in zip(scheduler.lr_lambdas, scheduler.base_lrs)
    ]
    for group, lr in zip(scheduler.optimizer.param_groups, lrs):
        group["lr"] = lr
    scheduler._last_lr = list(lrs)  # what get_last_lr() reports


def warn_inert_settings(cfg) -> None:
    """Settings that are valid but make training do nothing, said before it starts."""
    if cfg.SOLVER.BASE_LR == 0:
        logger.warning(
            "SOLVER.BASE_LR is 0: the weights will not change during training (set a "
            "learning rate, e.g. SOLVER.BASE_LR 0.01, unless that is what you want)"
        )
