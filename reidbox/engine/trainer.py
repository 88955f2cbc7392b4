"""One trainer, one ``run_step``; behaviour is added with hooks."""

from __future__ import annotations

import logging
import time
from typing import Dict, Iterable, List, Optional

import torch
from torch import nn

logger = logging.getLogger("reidbox")


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or Inf; the message gives the step and every loss term."""


def amp_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CPU and on GPUs that support it, fp16 (with a GradScaler) on older GPUs."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


class HookBase:
    """Override any of these; ``self.trainer`` is set when the hook is registered."""

    trainer: Trainer

    def before_train(self) -> None: ...

    def after_train(self) -> None: ...

    def before_epoch(self) -> None: ...

    def after_epoch(self) -> None: ...

    def before_step(self) -> None: ...

    def after_step(self) -> None: ...


class Trainer:
    """Epoch-based training loop.

    ``model`` in train mode returns a ``ModelOutput``; ``model.compute_losses(output, targets)``
    returns named weighted loss terms, summed for the backward pass. The scheduler is stepped
    per iteration. State visible to hooks: ``epoch`` (0-based, the one running),
    ``iter`` (within the epoch), ``global_step``, ``last_losses`` (floats), ``last_batch_size``.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: Optional[torch.optim.lr_scheduler.LRScheduler],
                 data_loader: Iterable, max_epochs: int, device: torch.device,
                 hooks: Optional[List[HookBase]] = None, amp: bool = False,
                 channels_last: bool = False) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.data_loader, self.max_epochs, self.device = data_loader, max_epochs, device
        self.amp = amp
        self.amp_dtype = amp_dtype(device)
        self.scaler = torch.amp.GradScaler(device.type) if (
            amp and self.amp_dtype == torch.float16) else None
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.start_epoch = 0
        self.epoch = 0
        self.iter = 0
        self.global_step = 0
        self.last_losses: Dict[str, float] = {}
        self.last_batch_size = 0
        self.hooks: List[HookBase] = []
        self.register_hooks(hooks or [])

    @property
    def unwrapped_model(self) -> nn.Module:
        """The model without a DistributedDataParallel wrapper."""
        return getattr(self.model, "module", self.model)

    def register_hooks(self, hooks: Iterable[HookBase]) -> None:
        for h in hooks:
            h.trainer = self
            self.hooks.append(h)

    def _call(self, name: str) -> None:
        for h in self.hooks:
            getattr(h, name)()

    def train(self) -> None:
        logger.info("training epochs %d..%d", self.start_epoch + 1, self.max_epochs)
        self._call("before_train")
        for epoch in range(self.start_epoch, self.max_epochs):
            self.epoch = epoch
            sampler = getattr(self.data_loader, "batch_sampler", None)
            for s in (sampler, getattr(self.data_loader, "sampler", None)):
                if hasattr(s, "set_epoch"):
                    s.set_epoch(self.epoch)
            self.model.train()
            self._call("before_epoch")
            for it, batch in enumerate(self.data_loader):
                self.iter = it
                self._call("before_step")
                self.run_step(batch)
                self.global_step += 1
                self._call("after_step")
            self._call("after_epoch")
        self._call("after_train")

    def run_step(self, batch: Dict[str, torch.Tensor]) -> None:
        images = batch["images"].to(self.device, non_blocking=True,
                                    memory_format=self.memory_format)
        targets = batch["targets"].to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            output = self.model(images)
            losses = self.unwrapped_model.compute_losses(output, targets)
        total = sum(losses.values())
        values = {k: float(v.detach()) for k, v in losses.items()}
        values["total"] = float(total.detach())
        if not torch.isfinite(total.detach()):
            # Raised before any update: the model still holds the last good weights.
            terms = ", ".join(f"{k}={v}" for k, v in values.items())
            raise NonFiniteLossError(
                f"non-finite loss at epoch {self.epoch + 1}, iteration {self.iter + 1} "
                f"(global step {self.global_step}): {terms}")
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(total).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            total.backward()
            self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.last_losses = values
        self.last_batch_size = images.shape[0]

    def state_dict(self) -> Dict:
        return {
            "model": self.unwrapped_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
            "epoch": self.epoch + 1,  # epochs completed
            "global_step": self.global_step,
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
        }

    def load_state_dict(self, state: Dict) -> None:
        self.unwrapped_model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler"):
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.start_epoch = int(state["epoch"])
        self.global_step = int(state.get("global_step", 0))


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.start
