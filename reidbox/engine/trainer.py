"""One trainer, one ``run_step``; behaviour is added with hooks.

The steady-state step never waits for the device: each step's loss terms are stacked into one
device tensor and kept; every ``log_period`` steps and at the end of each epoch the trainer
reads them all in one copy (:meth:`Trainer.read_losses`). That read checks every kept step for
a non-finite total, so a NaN is still found exactly (the error names its epoch, iteration and
global step and every loss term), only up to ``log_period - 1`` steps later; after each clean
read the trainer snapshots the model, optimizer and scheduler (:meth:`last_finite_state`), so a
run that stops keeps the newest state known to be finite.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional

import torch
from torch import nn

from ..errors import UserError
from .hooks import HookBase

logger = logging.getLogger("reidbox")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class NonFiniteLossError(UserError, FloatingPointError):
    """A loss became NaN or Inf; the message gives the step and every loss term.

    Attributes: ``epoch`` and ``iteration`` (1-based), ``global_step`` (0-based, the steps
    completed before the bad one), ``terms`` (every loss term of the bad step).
    """

    def __init__(
        self,
        message: str,
        epoch: int = 0,
        iteration: int = 0,
        global_step: int = -1,
        terms: Optional[Dict[str, float]] = None,
    ) -> None:
        super().__init__(message)
        self.epoch, self.iteration, self.global_step = epoch, iteration, global_step
        self.terms = dict(terms or {})


def amp_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CPU and on GPUs that support it, fp16 (with a GradScaler) on older GPUs."""
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


@dataclass
class StepRecord:
    """What the trainer knows about one step; ``losses`` is filled when it is read."""

    epoch: int  # 0-based
    iter: int  # 0-based, within the epoch
    global_step: int  # steps completed before this one
    batch_size: int
    data_time: float  # seconds the loop waited for this batch
    lr: float  # of the first parameter group, used by this step
    end_time: float = 0.0  # time.perf_counter() when the host finished queueing the step
    losses: Dict[str, float] = field(default_factory=dict)


def _clone_state(obj: Any) -> Any:
    """A deep copy whose tensors are detached clones on their own device (no host sync)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone_state(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_clone_state(v) for v in obj)
    return copy.deepcopy(obj)


class Trainer:
    """Epoch-based training loop.

    ``model`` in train mode returns a ``ModelOutput``; ``model.compute_losses(output, targets)``
    returns named weighted loss terms, summed for the backward pass. The scheduler is stepped
    per iteration. State visible to hooks: ``epoch`` (0-based, the one running), ``iter``
    (within the epoch), ``epoch_iters`` (iterations per epoch, if the loader has a length),
    ``global_step``, ``last_batch_size``, ``data_time`` (seconds this step waited for its
    batch). After a read (``losses_read`` is True in that step's ``after_step`` and at every
    ``after_epoch``): ``last_losses`` (floats of the newest step, with ``total``) and
    ``window`` (a :class:`StepRecord` per step read, oldest first).

    ``compile``: a ``torch.compile`` mode (:data:`COMPILE_MODES`) or backend name for the
    training forward + losses, or "" for eager. Shapes are static: one graph per batch shape,
    so the last partial batch of an epoch adds one. PTL's carried latent state is written by
    the compiled code as by eager code (a fresh state is the cell's zero template, so the
    first batch of an epoch reuses the carried-state graph).
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Optional[torch.optim.lr_scheduler.LRScheduler],
        data_loader: Iterable,
        max_epochs: int,
        device: torch.device,
        hooks: Optional[List[HookBase]] = None,
        amp: bool = False,
        channels_last: bool = False,
        log_period: int = 20,
        compile: str = "",
        clip_grad_norm: float = 0.0,
    ) -> None:
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.data_loader, self.max_epochs, self.device = data_loader, max_epochs, device
        self.amp = amp
        self.amp_dtype = amp_dtype(device)
        self.scaler = (
            torch.amp.GradScaler(device.type) if (amp and self.amp_dtype == torch.float16) else None
        )
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.log_period = max(1, int(log_period))
        self.start_epoch = 0
        self.epoch = 0
        self.iter = 0
        self.epoch_iters: Optional[int] = None
        self.global_step = 0
        self.last_losses: Dict[str, float] = {}
        self.last_batch_size = 0
        self.data_time = 0.0
        self.losses_read = False
        self.window: List[StepRecord] = []
        self._pending: List[torch.Tensor] = []  # one (terms + 1,) device tensor per step
        self._pending_meta: List[StepRecord] = []
        self._loss_names: Optional[List[str]] = None
        self._finite_state: Optional[Dict] = None
        self.compile_mode = compile
        self.clip_grad_norm = float(clip_grad_norm)
        self._forward_losses = self._eager_forward_losses
        if compile:
            # A torch.compile mode, or a backend name (e.g. "aot_eager": no code generation).
            kind = "mode" if compile in COMPILE_MODES else "backend"
            self._forward_losses = torch.compile(
                self._eager_forward_losses, dynamic=False, **{kind: compile}
            )
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
        if self.start_epoch >= self.max_epochs:
            logger.info("all %d epochs are trained already: nothing to train", self.max_epochs)
        else:
            logger.info("training epochs %d..%d", self.start_epoch + 1, self.max_epochs)
        self.epoch_iters = len(self.data_loader) if hasattr(self.data_loader, "__len__") else None
        self._finite_state = None
        self._call("before_train")
        for epoch in range(self.start_epoch, self.max_epochs):
            self.epoch = epoch
            sampler = getattr(self.data_loader, "batch_sampler", None)
            for s in (sampler, getattr(self.data_loader, "sampler", None)):
                if hasattr(s, "set_epoch"):
                    s.set_epoch(self.epoch)
            self.model.train()
            self._call("before_epoch")
            if self._finite_state is None:
                self._snapshot(completed=epoch)  # what a failure in the first window keeps
            t_wait = time.perf_counter()
            for it, batch in enumerate(self.data_loader):
                self.data_time = time.perf_counter() - t_wait
                self.iter = it
                self._call("before_step")
                self.losses_read = False
                self.run_step(batch)
                self.global_step += 1
                end = it + 1 == self.epoch_iters
                if self.global_step % self.log_period == 0 or end:
                    self.read_losses(end_of_epoch=end)
                self._call("after_step")
                t_wait = time.perf_counter()
            # A checkpoint is only ever written after a clean read.
            self.read_losses(end_of_epoch=True)
            self.losses_read = True
            self._call("after_epoch")
        self._call("after_train")

    def _eager_forward_losses(
        self, images: torch.Tensor, targets: torch.Tensor
    ) -> Dict[str, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp):
            output = self.model(images)
            return self.unwrapped_model.compute_losses(output, targets)

    def run_step(self, batch: Dict[str, torch.Tensor]) -> None:
        """Forward, losses, backward, optimizer and scheduler step: no wait for the device."""
        images = batch["images"].to(
            self.device, non_blocking=True, memory_format=self.memory_format
        )
        targets = batch["targets"].to(self.device, non_blocking=True)
        if self.compile_mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()
        losses = self._forward_losses(images, targets)
        total = sum(losses.values())
        names = list(losses)
        if names != self._loss_names:  # a model whose terms vary: read the kept rows first
            if self._loss_names is not None:
                self.read_losses()
            self._loss_names = names
        self._pending.append(
            torch.stack([v.detach().float() for v in losses.values()] + [total.detach().float()])
        )
        record = StepRecord(
            self.epoch,
            self.iter,
            self.global_step,
            images.shape[0],
            self.data_time,
            self.optimizer.param_groups[0]["lr"],
        )
        self._pending_meta.append(record)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(total).backward()
            if self.clip_grad_norm > 0:
                self.scaler.unscale_(self.optimizer)  # clip the true gradients
                self._clip()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            total.backward()
            self._clip()
            self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.last_batch_size = images.shape[0]
        record.end_time = time.perf_counter()

    def _clip(self) -> None:
        """Scale the gradients so their global L2 norm is at most ``clip_grad_norm`` (no
        device sync: the norm stays a device tensor)."""
        if self.clip_grad_norm > 0:
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.clip_grad_norm, foreach=True)

    def read_losses(self, end_of_epoch: bool = False) -> None:
        """Copy the kept loss terms to the host (the one sync), check them, fill ``window``.

        A non-finite total raises :class:`NonFiniteLossError` naming the first bad step (under
        DDP the earliest over all ranks, so every rank stops at the same read); otherwise the
        current state becomes :meth:`last_finite_state`.
        """
        if not self._pending:
            if (
                end_of_epoch
                and self._finite_state is not None
                and self.last_finite_step == self.global_step
            ):
                self._finite_state["epoch"] = self.epoch + 1
            return
        values = torch.stack(self._pending).cpu()  # (steps, terms + 1)
        meta, self._pending, self._pending_meta = self._pending_meta, [], []
        bad = (~torch.isfinite(values[:, -1])).nonzero()
        first_bad = meta[int(bad[0])].global_step if len(bad) else -1
        first_bad = self._earliest_over_ranks(first_bad)
        names = list(self._loss_names or []) + ["total"]
        if first_bad >= 0:
            self._pending, self._pending_meta = [], []
            rows = [i for i, m in enumerate(meta) if m.global_step == first_bad]
            if rows:
                m = meta[rows[0]]
                epoch, it, step = m.epoch, m.iter, m.global_step
                terms = dict(zip(names, values[rows[0]].tolist()))
                detail = ": " + ", ".join(f"{k}={v}" for k, v in terms.items())
            else:  # another rank's bad step
                epoch, it, step = meta[0].epoch, meta[0].iter, meta[0].global_step
                it += first_bad - step
                step, terms, detail = first_bad, {}, " (on another rank)"
            raise NonFiniteLossError(
                f"non-finite loss at epoch {epoch + 1}, iteration {it + 1} "
                f"(global step {step}){detail}",
                epoch + 1,
                it + 1,
                step,
                terms,
            )
        for m, row in zip(meta, values.tolist()):
            m.losses = dict(zip(names, row))
        self.window = meta
        self.last_losses = dict(meta[-1].losses)
        self.losses_read = True
        self._snapshot(completed=self.epoch + 1 if end_of_epoch else self.epoch)

    @staticmethod
    def _earliest_over_ranks(step: int) -> int:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return step
        backend_device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        t = torch.tensor(
            [step if step >= 0 else 2**62],
            dtype=torch.int64,
            device=torch.device(backend_device, torch.cuda.current_device())
            if backend_device == "cuda"
            else backend_device,
        )
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        v = int(t.item())
        return -1 if v == 2**62 else v

    def _snapshot(self, completed: int) -> None:
        """Keep a device copy of the state: the newest state known to be finite."""
        self._finite_state = _clone_state(self.state_dict())
        self._finite_state["epoch"] = completed  # epochs completed

    @property
    def last_finite_step(self) -> int:
        """Global steps completed in :meth:`last_finite_state` (-1 before training)."""
        return int(self._finite_state["global_step"]) if self._finite_state else -1

    def last_finite_state(self) -> Dict:
        """The newest state (``state_dict`` layout) whose every step had a finite loss: at the
        last clean read, at most ``log_period`` steps before a bad step (with ``log_period 1``
        the state just before it). ``global_step`` in it says which."""
        if self._finite_state is None:
            return self.state_dict()
        return self._finite_state

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
