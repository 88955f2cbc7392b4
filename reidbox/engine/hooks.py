"""Hooks: the interface (:class:`HookBase`, with the order the trainer calls it in) and the
hooks every run uses: latent-state reset, backbone freezing, log lines and progress bar,
TensorBoard, checkpoints, periodic evaluation."""

from __future__ import annotations

import datetime
import logging
import statistics
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

import torch
from tqdm import tqdm

from ..utils import distributed as du
from ..utils.checkpoint import Checkpointer, rng_states, set_rng_states
from ..utils.progress import stderr_is_terminal


logger = logging.getLogger("reidbox")


class HookBase:
    """Override any of the six methods; ``self.trainer`` is set when the hook is registered.

    :meth:`Trainer.train <reidbox.engine.trainer.Trainer.train>` calls each method on every
    hook in the order the hooks were registered, at these points::

        before_train()
        for epoch in range(start_epoch, max_epochs):  # a resumed run starts where it stopped
            sampler.set_epoch(epoch)
            model.train()
            before_epoch()  # may change modes again (a frozen backbone goes back to eval)
            for iter, batch in enumerate(data_loader):
                before_step()
                run_step(batch)  # forward, losses, backward, optimizer and scheduler steps
                global_step += 1
                if global_step % log_period == 0 or iter + 1 == epoch_iters:
                    read_losses()  # the one device sync: losses_read, last_losses, window
                after_step()
            read_losses(end_of_epoch=True)  # so losses_read is True at every after_epoch
            after_epoch()
        after_train()

    An exception (a non-finite loss found by ``read_losses``, Ctrl-C, a hook that raises)
    leaves the loop where it is: no later method, ``after_train`` included, is called.
    """

    # the engine.trainer.Trainer that registered this hook (not imported: the trainer imports
    # the hooks, and the house keeps no circle)
    trainer: Any

    def before_train(self) -> None: ...

    def after_train(self) -> None: ...

    def before_epoch(self) -> None: ...

    def after_epoch(self) -> None: ...

    def before_step(self) -> None: ...

    def after_step(self) -> None: ...


class LatentStateResetHook(HookBase):
    """PTL: latent states start every epoch at zero (the model's ``reset_latent_state``)."""

    def before_epoch(self) -> None:
        reset = getattr(self.trainer.unwrapped_model, "reset_latent_state", None)
        if callable(reset):
            reset()


class FreezeBackboneHook(HookBase):
    """The first ``epochs`` epochs train only the new layers: the backbone's parameters take
    no gradient (so the optimizer leaves them, weight decay included) and its BatchNorm layers
    keep their ImageNet statistics (eval mode); from epoch ``epochs`` on it trains as usual.
    Decided per epoch, so a resumed run freezes exactly the epochs a straight run would."""

    def __init__(self, epochs: int) -> None:
        self.epochs = int(epochs)

    def before_epoch(self) -> None:
        backbone = getattr(self.trainer.unwrapped_model, "backbone", None)
        if backbone is None or self.epochs <= 0:
            return
        frozen = self.trainer.epoch < self.epochs
        for p in backbone.parameters():
            p.requires_grad_(not frozen)
        if frozen:
            backbone.eval()  # the Trainer put the model in train mode just before
        if self.trainer.epoch in (self.trainer.start_epoch, self.epochs):
            logger.info(
                "epoch %d: backbone %s", self.trainer.epoch + 1, "frozen" if frozen else "trains"
            )


def _hms(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(max(seconds, 0))))


class ProgressHook(HookBase):
    """A log line every ``log_period`` steps and per epoch; a tqdm bar on a terminal only.

    The line (fast-reid's fields, plus throughput)::

        epoch 2/9 iter 20/34 step 54/306 | total 2.311 cross_entropy 2.311 | lr 9.6e-04 |
        412 img/s | data 0.004s (2%) | eta 0:00:35 | max mem 5123 MB

    Loss terms are the median over the steps since the previous line (fast-reid: over a window
    of 20); img/s and the data share are over the same steps; the ETA extrapolates the training
    time so far (evaluation and checkpoint time excluded); max mem is the device's peak
    allocation (CUDA only).
    """

    def __init__(self, log_period: int = 20, enabled: bool = True) -> None:
        self.log_period = max(1, log_period)
        self.enabled = enabled
        self.bar: Optional[tqdm] = None
        self._redirect = None

    def before_train(self) -> None:
        t = self.trainer
        self.bar_on = self.enabled and stderr_is_terminal()
        self.total_steps = t.max_epochs * t.epoch_iters if t.epoch_iters else None
        self.train_time, self.train_steps = 0.0, 0
        if self.bar_on:
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._redirect = logging_redirect_tqdm([logger])
            self._redirect.__enter__()

    def after_train(self) -> None:
        if self._redirect is not None:
            self._redirect.__exit__(None, None, None)
            self._redirect = None

    def before_epoch(self) -> None:
        t = self.trainer
        if self.bar_on:
            self.bar = tqdm(
                total=t.epoch_iters,
                desc=f"epoch {t.epoch + 1}/{t.max_epochs}",
                leave=False,
                dynamic_ncols=True,
            )
        self.t0 = self.last = time.perf_counter()
        self.images = 0
        self.epoch_losses: Dict[str, list] = {}

    def after_step(self) -> None:
        t = self.trainer
        self.images += t.last_batch_size
        if self.bar is not None:
            self.bar.update(1)
        if t.losses_read:
            self._window()
            if t.global_step % self.log_period == 0 or t.iter + 1 == t.epoch_iters:
                self._log_line()

    def _window(self) -> None:
        """Account the steps just read: their time, images, data waits and losses."""
        t = self.trainer
        w = t.window
        end = w[-1].end_time
        self.span = max(end - self.last, 1e-9)
        self.last = end
        self.train_time += self.span
        self.train_steps += len(w)
        self.w_images = sum(r.batch_size for r in w)
        self.w_data = sum(r.data_time for r in w)
        self.w_steps = len(w)
        self.w_losses = {k: statistics.median(r.losses[k] for r in w) for k in w[-1].losses}
        for r in w:
            for k, v in r.losses.items():
                self.epoch_losses.setdefault(k, []).append(v)
        if self.bar is not None:
            self.bar.set_postfix(
                loss=f"{self.w_losses['total']:.3f}", img_s=f"{self.w_images / self.span:.0f}"
            )

    def _log_line(self) -> None:
        t = self.trainer
        losses = " ".join(
            f"{k} {v:.4g}"
            for k, v in [("total", self.w_losses["total"])]
            + [(k, v) for k, v in self.w_losses.items() if k != "total"]
        )
        parts = [
            f"epoch {t.epoch + 1}/{t.max_epochs} iter {t.iter + 1}"
            + (f"/{t.epoch_iters}" if t.epoch_iters else "")
            + f" step {t.global_step}"
            + (f"/{self.total_steps}" if self.total_steps else ""),
            losses,
            f"lr {t.window[-1].lr:.3g}",
            f"{self.w_images / self.span:.1f} img/s",
            f"data {self.w_data / self.w_steps:.4f}s ({100 * self.w_data / self.span:.0f}%)",
        ]
        if self.total_steps and self.train_steps:
            left = self.total_steps - t.global_step
            parts.append(f"eta {_hms(left * self.train_time / self.train_steps)}")
        if t.device.type == "cuda":
            parts.append(f"max mem {torch.cuda.max_memory_allocated(t.device) / 2**20:.0f} MB")
        logger.info(" | ".join(parts))

    def after_epoch(self) -> None:
        t = self.trainer
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if t.losses_read and t.window and t.window[-1].end_time > self.last:
            self._window()  # steps read at the epoch's end (a loader without a length)
        dt = time.perf_counter() - self.t0
        losses = " ".join(f"{k}={statistics.mean(v):.4f}" for k, v in self.epoch_losses.items())
        logger.info(
            "epoch %d/%d done in %.1fs (%.1f img/s) lr=%.3g mean %s",
            t.epoch + 1,
            t.max_epochs,
            dt,
            self.images / max(dt, 1e-9),
            t.optimizer.param_groups[0]["lr"],
            losses,
        )


class TensorBoardHook(HookBase):
    """Every step's loss terms and LR (read in bulk, no extra sync), per-window images/s and
    data-wait share, peak memory on CUDA, and every evaluation's metrics per test set
    (``eval/<set>/<metric>``). Flushed every epoch; :meth:`close` at the end of the run.
    Steps on the x axis are global steps completed (1 after the first step). The event file
    is opened at the first write, so a run refused before it trains leaves no ``tb/`` behind."""

    def __init__(self, log_dir: str, period: int = 20) -> None:
        self.log_dir = log_dir
        self._writer = None
        self.period = period  # kept for callers; every step is written
        self._written = 0
        self._last_end: Optional[float] = None

    @property
    def writer(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(self.log_dir)
        return self._writer

    def before_epoch(self) -> None:
        self._last_end = time.perf_counter()

    def _write_window(self) -> None:
        t = self.trainer
        new = [r for r in t.window if r.global_step + 1 > self._written]
        if not new or not t.losses_read:
            return
        for r in new:
            step = r.global_step + 1
            for k, v in r.losses.items():
                self.writer.add_scalar(f"loss/{k}", v, step)
            self.writer.add_scalar("lr", r.lr, step)
        span = max(new[-1].end_time - (self._last_end or new[0].end_time), 1e-9)
        step = new[-1].global_step + 1
        self.writer.add_scalar("train/images_per_s", sum(r.batch_size for r in new) / span, step)
        self.writer.add_scalar("train/data_time_share", sum(r.data_time for r in new) / span, step)
        if t.device.type == "cuda":
            self.writer.add_scalar(
                "train/max_mem_mb", torch.cuda.max_memory_allocated(t.device) / 2**20, step
            )
        self._last_end = new[-1].end_time
        self._written = step

    def after_step(self) -> None:
        self._write_window()

    def after_epoch(self) -> None:
        self._write_window()
        self.writer.flush()

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        """``{set: {metric: value}}`` (or one flat ``{metric: value}``) at global ``step``."""
        for k, v in metrics.items():
            if isinstance(v, Mapping):
                for m, x in v.items():
                    if isinstance(x, (int, float)) and not isinstance(x, bool):
                        self.writer.add_scalar(f"eval/{k}/{m}", x, step)
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                self.writer.add_scalar(f"eval/{k}", v, step)
        self.writer.flush()

    def after_train(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


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
            per_rank = du.all_gather_object(rng_states())  # every rank's RNG streams
            if du.is_main_process():
                state = t.state_dict()
                state["rng"] = per_rank[0]
                state["rng_per_rank"] = per_rank
                state.update(self.extra)
                path = self.checkpointer.save(done, state)
                logger.info("saved %s", path)
            du.barrier()


class EvalHook(HookBase):
    """Calls ``eval_fn()`` every ``period`` epochs (not after the last: the run evaluates then);
    ``on_result(metrics, global_step)`` gets what it returned."""

    def __init__(
        self,
        period: int,
        eval_fn: Callable[[], Mapping[str, Any]],
        on_result: Optional[Callable[[Mapping[str, Any], int], None]] = None,
    ) -> None:
        self.period, self.eval_fn, self.on_result = period, eval_fn, on_result

    def after_epoch(self) -> None:
        t = self.trainer
        done = t.epoch + 1
        if self.period > 0 and done % self.period == 0 and done < t.max_epochs:
            metrics = self.eval_fn()
            if self.on_result:
                self.on_result(metrics, t.global_step)
            t.model.train()


class RNGSafeEval:
    """Evaluation must not change the training RNG streams (resume equals uninterrupted)."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def __call__(self):
        state = rng_states()
        try:
            return self.fn()
        finally:
            set_rng_states(state)


def build_hooks(
    cfg,
    checkpointer: Checkpointer,
    periodic_eval: Callable[[], Dict[str, float]],
    tb: Optional[TensorBoardHook],
    progress: bool,
    extra_hooks: Sequence[HookBase] = (),
) -> List[HookBase]:
    """The hooks every training run uses (every task), then ``extra_hooks``; ``periodic_eval``
    runs every ``TEST.EVAL_PERIOD`` epochs without touching the training RNG streams."""
    s = cfg.SOLVER
    return [
        # first: PTL's latent state is zeroed before anything in the epoch runs the model
        LatentStateResetHook(),
        # sets the model up too, after the trainer's model.train(): a frozen backbone goes
        # back to eval mode
        *([FreezeBackboneHook(s.FREEZE_BACKBONE_EPOCHS)] if s.FREEZE_BACKBONE_EPOCHS else []),
        # log and progress before saving and evaluating: the epoch's time and img/s stop
        # before them, and its log line comes before "saved ..."
        ProgressHook(s.LOG_PERIOD, enabled=progress),
        # the epoch's training scalars are written before the evaluation's go to the same file
        *([tb] if tb else []),
        # before evaluation: the epoch is on disk before an evaluation that might fail
        CheckpointHook(checkpointer, s.CHECKPOINT_PERIOD, {"config": cfg.dump()}),
        # last built-in: evaluates the weights just saved; RNGSafeEval restores the RNG
        # streams, so evaluating never changes training
        EvalHook(cfg.TEST.EVAL_PERIOD, RNGSafeEval(periodic_eval), tb.log_metrics if tb else None),
        # the caller's hooks see the epoch's checkpoint already written (a hook that stops
        # after epoch N leaves that checkpoint behind)
        *extra_hooks,
    ]
