"""What the tools run: ``train(cfg)`` and ``test(cfg, weights)``, as plain functions.

The runner wires the parts together; the run folder's life (how a run starts, resume, the log,
results) belongs to :mod:`reidbox.engine.run_folder`.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, Optional, Sequence

import torch
from torch import nn

from ..config import save_config
from ..config.loader import imported_plugins
from ..modeling import build_model
from ..modeling.summary import format_summary, model_summary
from ..modeling.sync_bn import convert_sync_batchnorm
from ..utils import distributed as du
from ..utils.checkpoint import Checkpointer, NonFiniteStateError, atomic_save, load_model_weights
from ..utils.logger import command_line, setup_logger
from ..utils.misc import resolve_device, seed_all
from ..utils.run_folder import die_with_parent
from .hooks import TensorBoardHook, build_hooks
from .run_folder import (  # noqa: F401  eval_dir and save_last_good: also the runner's API
    METRICS_FILE,
    TB_DIR,
    RunFolder,
    StartMode,
    buffer_log,
    detach_log_file,
    eval_dir,
    eval_settings,
    prepare_eval_dir,
    resume_trainer,
    save_last_good,
)
from .solver import build_solver
from .tasks import Outputs, Task, build_task
from .trainer import HookBase, NonFiniteLossError, Trainer

logger = logging.getLogger("reidbox")


def setup_run(
    cfg, folder: Optional[RunFolder] = None, start: StartMode = StartMode.NEW
) -> torch.device:
    """Process group (under torchrun), the run's ``folder`` opened for ``start``
    (:meth:`RunFolder.open`: locked and judged; None for a test, which writes only into its
    own ``eval/<settings>/``), console log, seeds; nothing written yet: log lines are kept in
    memory until the run starts. Only rank 0 writes files and logs at INFO; each rank seeds
    ``SEED + rank`` so ranks draw different augmentations. Returns this process's device."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        die_with_parent()  # a worker whose torchrun agent is killed must not go on writing
        device = du.init_distributed(cfg.DEVICE)
    else:
        device = resolve_device(cfg.DEVICE)
    main = du.is_main_process()
    if folder is not None:
        folder.open(start)
    setup_logger(None, level=logging.INFO if main else logging.WARNING)
    if main:
        buffer_log()
        logger.info("command: %s", command_line())  # the first line of log.txt
    seed_all(cfg.SEED + du.get_rank())
    logger.info(
        "output: %s, device: %s, world size %d, torch %s",
        cfg.OUTPUT_DIR,
        device,
        du.get_world_size(),
        torch.__version__,
    )
    for name, where in imported_plugins().items():  # the code this run imported, in log.txt
        logger.info("plugin %s imported from %s", name, where)
    return device


def use_channels_last(cfg, device: torch.device) -> bool:
    """``MODEL.CHANNELS_LAST``, except bf16 autocast on the CPU: there torch 2.15's
    channels_last convolutions intermittently return NaN for finite inputs (3 of 4 fresh
    ResNet-18s at the first step in our measurement), so that pair trains contiguous."""
    if cfg.MODEL.CHANNELS_LAST and cfg.SOLVER.AMP and device.type == "cpu":
        logger.warning(
            "MODEL.CHANNELS_LAST ignored: bf16 autocast on the CPU gives NaN with "
            "channels_last convolutions in this torch; training contiguous"
        )
        return False
    return bool(cfg.MODEL.CHANNELS_LAST)


def run_trainer(
    trainer: Trainer,
    folder: RunFolder,
    checkpointer: Checkpointer,
    start: StartMode,
    state: Optional[Dict[str, Any]] = None,
) -> None:
    """Resume from ``state`` (the folder's newest checkpoint, already checked by
    :meth:`RunFolder.load_resume`), start the run's files, train; under DDP every rank then
    takes rank 0's weights and buffers, so what is evaluated is what was saved. A non-finite
    loss saves the last finite state to ``last_good.pth`` and re-raises."""
    if state is not None:
        resume_trainer(trainer, state, checkpointer)
    elif start is StartMode.RESUME:
        m = folder.cfg.MODEL
        begin = m.WEIGHTS or ("ImageNet weights" if m.BACKBONE.PRETRAINED else "random weights")
        logger.info(
            "no checkpoint in %s yet: training starts at epoch 1 from %s", folder.path, begin
        )
    if du.is_main_process():
        folder.start(checkpointer, start, state)
    try:
        trainer.train()
    except KeyboardInterrupt:
        newest = checkpointer.list()[-1:] if du.is_main_process() else []
        logger.warning(
            "interrupted (Ctrl-C) in epoch %d, global step %d; %s",
            trainer.epoch + 1,
            trainer.global_step,
            f"--resume continues from {newest[0]}" if newest else "no checkpoint written yet",
        )
        raise
    except (NonFiniteLossError, NonFiniteStateError) as e:
        saved = folder.save_last_good(trainer, checkpointer, du.get_rank())
        raise NonFiniteLossError(f"{e}; stopped, {saved}") from None
    du.broadcast_module_state(trainer.unwrapped_model)


def build_train_model(cfg, task: Task, device: torch.device):
    """The model to train (``MODEL.WEIGHTS`` loaded, on ``device``), what the trainer drives
    (DDP-wrapped under torchrun) and whether it trains channels_last."""
    world = du.get_world_size()
    model = build_model(cfg, num_classes=task.num_classes)
    if cfg.MODEL.WEIGHTS:
        # a starting point: a plain twin's file starts the PTL twin (side network fresh)
        load_model_weights(model, cfg.MODEL.WEIGHTS, partial=cfg.MODEL.WEIGHTS_PARTIAL, twin=True)
    # The data stream (augmentations, loader workers' seeds) must not depend on how many random
    # numbers the model's initialisation drew: twins that differ by a side network see the same
    # batches (reidbox.engine.compare).
    seed_all(cfg.SEED + du.get_rank())
    if cfg.MODEL.SYNC_BN and world > 1:
        model = convert_sync_batchnorm(model, device)
    model = model.to(device)
    channels_last = use_channels_last(cfg, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    driven: nn.Module = model
    if world > 1:
        # PTL latent state lives on the wrapper as plain tensors (not buffers), so DDP neither
        # broadcasts nor averages it: each rank carries the state of its own batches.
        driven = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            # a frozen backbone (SOLVER.FREEZE_BACKBONE_EPOCHS) takes no gradient
            find_unused_parameters=cfg.SOLVER.FREEZE_BACKBONE_EPOCHS > 0,
        )
    if du.is_main_process():
        summary = format_summary(model_summary(model, task.input_size))
        logger.info("%s/%s\n%s", cfg.MODEL.META_ARCHITECTURE, cfg.MODEL.BACKBONE.NAME, summary)
    return model, driven, channels_last


def train(
    cfg,
    start: StartMode = StartMode.NEW,
    extra_hooks: Sequence[HookBase] = (),
    progress: bool = True,
    force_resume: bool = False,
    *,
    resume: bool = False,
    overwrite: bool = False,
) -> Dict[str, Any]:
    """Train on ``DATASETS.TRAIN``, evaluate on ``DATASETS.TEST``; returns the metrics record.

    Writes ``config.yaml``, ``checkpoint_*.pth``, ``model_final.pth`` and ``metrics.json``
    into ``OUTPUT_DIR``. ``start`` (:class:`StartMode`, or its name; ``resume=True`` /
    ``overwrite=True`` say the same): NEW refuses a folder holding an earlier run's results
    before anything is written; RESUME continues from the newest readable checkpoint there,
    refusing one of another config unless ``force_resume`` (the one rule of
    :mod:`reidbox.engine.run_folder`: schedule keys such as ``SOLVER.MAX_EPOCHS`` may change
    while epochs remain); OVERWRITE deletes the earlier run's files when training starts.
    What differs between ``TASK`` kinds (data, evaluation, results) is the task's
    (:mod:`reidbox.engine.tasks`); one process or many under torchrun, alike.
    """
    start = StartMode.of(start, resume=resume, overwrite=overwrite)
    folder = RunFolder(cfg.OUTPUT_DIR, cfg)
    state = folder.load_resume(force_resume) if start is StartMode.RESUME else None
    device = setup_run(cfg, folder, start)
    progress = progress and du.is_main_process()  # a bar on a terminal, timed log lines else
    task = build_task(cfg)
    task.load_train()  # data read and checked once, before anything trains
    loader = task.train_loader(du.get_rank(), du.get_world_size())
    model, driven, channels_last = build_train_model(cfg, task, device)
    s = cfg.SOLVER
    optimizer, scheduler = build_solver(cfg, model, len(loader))
    checkpointer = Checkpointer(folder.path, keep=s.KEEP_CHECKPOINTS)
    tb = TensorBoardHook(folder.file(TB_DIR), s.LOG_PERIOD) if du.is_main_process() else None

    def periodic_eval() -> Dict[str, Dict[str, float]]:
        results = task.evaluate(model, device, progress)
        logger.info("evaluation:\n%s", task.format(results))
        return {n: r.headline() for n, r in results.items()}

    hooks = build_hooks(cfg, checkpointer, periodic_eval, tb, progress, extra_hooks)
    trainer = Trainer(
        driven,
        optimizer,
        scheduler,
        loader,
        s.MAX_EPOCHS,
        device,
        hooks,
        amp=s.AMP,
        channels_last=channels_last,
        log_period=s.LOG_PERIOD,
        compile=cfg.MODEL.COMPILE,
        clip_grad_norm=s.CLIP_GRAD_NORM,
    )
    run_trainer(trainer, folder, checkpointer, start, state)
    return finish_run(cfg, folder, task, model, device, trainer, tb, progress)


def finish_run(cfg, folder: RunFolder, task: Task, model, device, trainer, tb, progress):
    """The run's results: ``model_final.pth``, the final evaluation, ``metrics.json``."""
    if du.is_main_process():
        atomic_save(
            {"model": model.state_dict(), "num_classes": task.num_classes}, folder.final_weights
        )
    results = task.evaluate(model, device, progress)
    if tb is not None:
        tb.log_metrics({n: r.headline() for n, r in results.items()}, trainer.global_step)
        tb.close()
    extra = dict(
        epochs=cfg.SOLVER.MAX_EPOCHS,
        train_datasets=list(cfg.DATASETS.TRAIN),
        num_classes=task.num_classes,
        world_size=du.get_world_size(),
        **task.train_record(),
    )
    if not du.is_main_process():
        du.barrier()
        return task.record(results, model, **extra)
    record = task.write(results, model, folder.path, **extra)
    logger.info("done: weights %s, results %s", folder.final_weights, folder.metrics_file)
    detach_log_file()
    du.barrier()
    return record


def test(
    cfg,
    weights: Optional[str] = None,
    progress: bool = True,
    vis_ranks: int = 0,
    vis_queries: int = 10,
    vis_order: str = "random",
) -> Dict[str, Any]:
    """Evaluate ``weights`` (default ``MODEL.WEIGHTS``) on ``DATASETS.TEST``; ``vis_ranks`` > 0
    also draws rank-list images of that many top matches. Results go to :func:`eval_dir`
    (``OUTPUT_DIR/eval/<settings>/``: ``metrics.json``, ``config.yaml``, ``log.txt``, rank
    lists, CMC plots)."""
    device = setup_run(cfg)
    main = du.is_main_process()
    progress = progress and main  # a bar on a terminal, timed log lines elsewhere
    weights = weights or cfg.MODEL.WEIGHTS or None
    task = build_task(cfg)
    task.load_test()
    model = task.test_model(weights, device)
    out = eval_dir(cfg, weights)
    if main:
        prepare_eval_dir(out)
        save_config(cfg, out)  # what was evaluated, also where no training run's config is
    saved = Outputs(out, True, vis_ranks=vis_ranks, vis_queries=vis_queries, vis_order=vis_order)
    results = task.evaluate(model, device, progress, saved)
    extra = dict(weights=weights, settings=eval_settings(cfg, weights))
    if not main:
        return task.record(results, model, **extra)
    record = task.write(results, model, out, **extra)
    logger.info("results written to %s", os.path.join(out, METRICS_FILE))
    detach_log_file()
    return record
