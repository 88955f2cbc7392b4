"""Hooks: latent-state reset, progress bar, TensorBoard, checkpoints, periodic evaluation."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Dict, Optional

from tqdm import tqdm

from ..utils.checkpoint import Checkpointer, rng_states
from .trainer import HookBase

logger = logging.getLogger("reidbox")


class LatentStateResetHook(HookBase):
    """PTL: latent states start every epoch at zero (the model's ``reset_latent_state``)."""

    def before_epoch(self) -> None:
        reset = getattr(self.trainer.unwrapped_model, "reset_latent_state", None)
        if callable(reset):
            reset()


class ProgressHook(HookBase):
    """A tqdm bar per epoch with loss, LR and images/s; a log line per ``log_period`` steps."""

    def __init__(self, log_period: int = 20, enabled: bool = True) -> None:
        self.log_period, self.enabled = log_period, enabled
        self.bar: Optional[tqdm] = None

    def before_epoch(self) -> None:
        t = self.trainer
        total = len(t.data_loader) if hasattr(t.data_loader, "__len__") else None
        self.bar = tqdm(total=total, desc=f"epoch {t.epoch + 1}/{t.max_epochs}",
                        disable=not self.enabled, leave=False, dynamic_ncols=True)
        self.t0, self.images = time.perf_counter(), 0

    def after_step(self) -> None:
        t = self.trainer
        self.images += t.last_batch_size
        speed = self.images / max(time.perf_counter() - self.t0, 1e-9)
        lr = t.optimizer.param_groups[0]["lr"]
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{t.last_losses['total']:.3f}", lr=f"{lr:.2e}",
                                 img_s=f"{speed:.0f}")
            self.bar.update(1)

    def after_epoch(self) -> None:
        t = self.trainer
        if self.bar is not None:
            self.bar.close()
        dt = time.perf_counter() - self.t0
        losses = " ".join(f"{k}={v:.4f}" for k, v in t.last_losses.items())
        logger.info("epoch %d/%d done in %.1fs (%.0f img/s) lr=%.2e %s", t.epoch + 1,
                    t.max_epochs, dt, self.images / max(dt, 1e-9),
                    t.optimizer.param_groups[0]["lr"], losses)


class TensorBoardHook(HookBase):
    """Loss terms and LR every ``period`` steps; evaluation results as they come."""

    def __init__(self, log_dir: str, period: int = 20) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir)
        self.period = period

    def after_step(self) -> None:
        t = self.trainer
        if t.global_step % self.period == 0:
            for k, v in t.last_losses.items():
                self.writer.add_scalar(f"loss/{k}", v, t.global_step)
            self.writer.add_scalar("lr", t.optimizer.param_groups[0]["lr"], t.global_step)

    def log_metrics(self, metrics: Dict[str, float], step: int) -> None:
        for k, v in metrics.items():
            if isinstance(v, (int, float)):
                self.writer.add_scalar(f"eval/{k}", v, step)
        self.writer.flush()

    def after_train(self) -> None:
        self.writer.close()


class CheckpointHook(HookBase):
    """Saves model, optimizer, scheduler, epoch, RNG states and config every ``period`` epochs.

    The last epoch is always saved, so ``--resume`` continues from the newest good file.
    """

    def __init__(self, checkpointer: Checkpointer, period: int, extra: Dict[str, Any]) -> None:
        self.checkpointer, self.period, self.extra = checkpointer, max(1, period), extra

    def after_epoch(self) -> None:
        t = self.trainer
        done = t.epoch + 1
        if done % self.period == 0 or done == t.max_epochs:
            state = t.state_dict()
            state["rng"] = rng_states()
            state.update(self.extra)
            path = self.checkpointer.save(done, state)
            logger.info("saved %s", path)


class EvalHook(HookBase):
    """Calls ``eval_fn()`` every ``period`` epochs (not after the last: the run evaluates then)."""

    def __init__(self, period: int, eval_fn: Callable[[], Dict[str, float]],
                 on_result: Optional[Callable[[Dict[str, float], int], None]] = None) -> None:
        self.period, self.eval_fn, self.on_result = period, eval_fn, on_result

    def after_epoch(self) -> None:
        t = self.trainer
        done = t.epoch + 1
        if self.period > 0 and done % self.period == 0 and done < t.max_epochs:
            metrics = self.eval_fn()
            if self.on_result:
                self.on_result(metrics, done)
            t.model.train()
