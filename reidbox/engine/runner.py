"""What the tools run: ``train(cfg)`` and ``test(cfg, weights)``, as plain functions."""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from torch import nn

from ..config import save_config
from ..data import build_test_loader, build_test_sets, build_train_loader, build_train_set
from ..evaluation import evaluate_kwargs
from ..evaluation.evaluator import Metrics, evaluate_model, format_table, save_rank_lists
from ..visualization.ranks import rank_list_kwargs
from ..modeling import build_model
from ..modeling.summary import format_summary, model_summary
from ..modeling.sync_bn import convert_sync_batchnorm
from ..utils.checkpoint import (Checkpointer, atomic_save, load_model_weights, rng_states,
                                set_rng_states)
from ..utils import distributed as du
from ..utils.logger import setup_logger
from ..utils.misc import count_parameters, resolve_device, seed_all, write_json
from .hooks import CheckpointHook, EvalHook, LatentStateResetHook, ProgressHook, TensorBoardHook
from .solver import build_solver
from .trainer import HookBase, NonFiniteLossError, Trainer

logger = logging.getLogger("reidbox")


def setup_run(cfg, progress: bool = True) -> torch.device:
    """Process group (under torchrun), output folder, log file, ``config.yaml``, seeds.

    Only rank 0 writes files and logs at INFO; each rank seeds ``SEED + rank`` so ranks draw
    different augmentations. Returns this process's device.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        device = du.init_distributed()
    else:
        device = resolve_device(cfg.DEVICE)
    main = du.is_main_process()
    if main:
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        save_config(cfg, cfg.OUTPUT_DIR)
    setup_logger(cfg.OUTPUT_DIR if main else None,
                 level=logging.INFO if main else logging.WARNING)
    seed_all(cfg.SEED + du.get_rank())
    logger.info("output: %s, device: %s, world size %d, torch %s", cfg.OUTPUT_DIR, device,
                du.get_world_size(), torch.__version__)
    return device


def model_info(model: nn.Module) -> Dict[str, Any]:
    """What a result should record about the model (parameters, PTL state handling)."""
    info: Dict[str, Any] = {"parameters_m": count_parameters(model) / 1e6}
    ptl = getattr(model, "ptl_state_info", None)
    if callable(ptl):
        info["ptl"] = ptl()
    std = getattr(model, "std_info", None)
    if callable(std):
        info["std"] = std()
    return info


def evaluate_on_test_sets(cfg, model: nn.Module, device: torch.device, progress: bool = True,
                          save_ranks: bool = False, vis_ranks: int = 0) -> Dict[str, Metrics]:
    """Every ``DATASETS.TEST`` set with the configured protocol, metric, flip and re-ranking.

    ``save_ranks`` writes ``OUTPUT_DIR/ranklist_<set>.csv`` with each query's top
    ``TEST.TOPK_SAVE`` gallery images; ``vis_ranks`` > 0 draws top-``vis_ranks`` rank-list
    images into ``OUTPUT_DIR/ranks/<set>/`` from the same features.
    """
    kwargs = evaluate_kwargs(cfg)
    results = {}
    for ts in build_test_sets(cfg):
        feats: Dict[str, torch.Tensor] = {}
        results[ts.name] = evaluate_model(
            model, ts.query, ts.gallery, lambda items: build_test_loader(cfg, items), device,
            flip=cfg.TEST.FLIP_AUG, normalize=cfg.TEST.NORM_FEAT, progress=progress,
            name=ts.name, features_out=feats, **kwargs)
        if save_ranks and cfg.TEST.TOPK_SAVE > 0 and feats:
            path = save_rank_lists(os.path.join(cfg.OUTPUT_DIR, f"ranklist_{ts.name}.csv"),
                                   ts.query, ts.gallery, feats["query"], feats["gallery"],
                                   cfg.TEST.TOPK_SAVE, cfg.TEST.METRIC, **rank_list_kwargs(cfg))
            logger.info("top-%d rank lists: %s", cfg.TEST.TOPK_SAVE, path)
        if vis_ranks > 0 and feats:
            from ..visualization import visualize_ranks

            out = os.path.join(cfg.OUTPUT_DIR, "ranks", ts.name)
            visualize_ranks(ts.query, ts.gallery, feats["query"], feats["gallery"], out,
                            topk=vis_ranks, metric=cfg.TEST.METRIC, seed=cfg.SEED,
                            size=tuple(cfg.INPUT.SIZE_TEST), **rank_list_kwargs(cfg))
            logger.info("rank-list images: %s", out)
    return results


def metrics_record(results: Dict[str, Metrics], model: nn.Module, **extra) -> Dict[str, Any]:
    """``metrics.json``: the first test set's numbers at the top level, every set under
    ``per_dataset``, plus the protocol and model facts."""
    first = next(iter(results.values()))
    record: Dict[str, Any] = dict(first.headline())
    record["protocol"] = first.protocol
    record["per_dataset"] = {
        name: dict(m.headline(), cmc=m.cmc[:20], num_query=m.num_query,
                   num_gallery=m.num_gallery, num_valid=m.num_valid, protocol=m.protocol)
        for name, m in results.items()
    }
    record.update(model_info(model))
    record.update(extra)
    return record


def write_results(cfg, results: Dict[str, Metrics], model: nn.Module, **extra) -> Dict[str, Any]:
    t = cfg.TEST
    extra["evaluation"] = dict(
        protocol=t.PROTOCOL, metric=t.METRIC, flip=t.FLIP_AUG, normalize=t.NORM_FEAT,
        ap_mode=t.AP_MODE or None,
        rerank=dict(k1=t.RERANK.K1, k2=t.RERANK.K2, lambda_value=t.RERANK.LAMBDA)
        if t.RERANK.ENABLED else None)
    record = metrics_record(results, model, **extra)
    write_json(record, os.path.join(cfg.OUTPUT_DIR, "metrics.json"))
    try:
        from ..visualization import plot_all_cmc

        plot_all_cmc(results, cfg.OUTPUT_DIR)  # cmc_<testset>.png beside metrics.json
    except (ImportError, ValueError, OSError) as e:
        logger.warning("no CMC plot: %s", e)
    logger.info("results (%s):\n%s", record["protocol"],
                format_table({n: m.headline() for n, m in results.items()}))
    return record


class _RNGSafeEval:
    """Evaluation must not change the training RNG streams (resume equals uninterrupted)."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def __call__(self):
        state = rng_states()
        try:
            return self.fn()
        finally:
            set_rng_states(state)


def build_hooks(cfg, checkpointer: Checkpointer, periodic_eval: Callable[[], Dict[str, float]],
                tb: Optional[TensorBoardHook], progress: bool,
                extra_hooks: Sequence[HookBase] = ()) -> List[HookBase]:
    """The hooks every training run uses (ReID and classification), then ``extra_hooks``."""
    s = cfg.SOLVER
    return [
        LatentStateResetHook(),
        ProgressHook(s.LOG_PERIOD, enabled=progress),
        *([tb] if tb else []),
        CheckpointHook(checkpointer, s.CHECKPOINT_PERIOD, {"config": cfg.dump()}),
        EvalHook(cfg.TEST.EVAL_PERIOD, _RNGSafeEval(periodic_eval),
                 tb.log_metrics if tb else None),
        *extra_hooks,
    ]


def run_trainer(cfg, trainer: Trainer, checkpointer: Checkpointer, resume: bool) -> None:
    """Resume from the newest checkpoint if asked, train; a non-finite loss saves the last good
    state to ``last_good.pth`` and re-raises."""
    rank, world, main = du.get_rank(), du.get_world_size(), du.is_main_process()
    if resume:
        state = checkpointer.load_latest()
        if state is None:
            logger.info("no checkpoint in %s: starting from scratch", cfg.OUTPUT_DIR)
        else:
            trainer.load_state_dict(state)
            per_rank = state.get("rng_per_rank") or [state["rng"]]
            set_rng_states(per_rank[rank] if len(per_rank) == world else state["rng"])
            logger.info("resumed from %s (epoch %d done)", state["_path"], trainer.start_epoch)
    try:
        trainer.train()
    except NonFiniteLossError as e:
        path = os.path.join(cfg.OUTPUT_DIR, f"last_good{'' if main else f'_rank{rank}'}.pth")
        state = trainer.state_dict()
        state.update(rng=rng_states(), config=cfg.dump())
        atomic_save(state, path)
        raise NonFiniteLossError(f"{e}; stopped, last good state saved to {path}") from None


def train(cfg, resume: bool = False, extra_hooks: Sequence[HookBase] = (),
          progress: bool = True) -> Dict[str, Any]:
    """Train on ``DATASETS.TRAIN``, evaluate on ``DATASETS.TEST``; returns the metrics record.

    Writes ``config.yaml``, ``checkpoint_*.pth``, ``model_final.pth`` and ``metrics.json``
    into ``OUTPUT_DIR``. ``resume`` continues from the newest readable checkpoint there.
    ``TASK: classification`` runs :func:`reidbox.engine.classification.train_classification`.
    """
    if cfg.TASK == "classification":
        from .classification import train_classification

        return train_classification(cfg, resume=resume, extra_hooks=extra_hooks,
                                    progress=progress)
    device = setup_run(cfg, progress)
    rank, world, main = du.get_rank(), du.get_world_size(), du.is_main_process()
    progress = progress and main
    train_set = build_train_set(cfg)
    num_classes = train_set.num_train_pids
    logger.info("train set %s: %d images, %d identities", train_set.name, len(train_set.train),
                num_classes)
    if cfg.SOLVER.IMS_PER_BATCH % (world * cfg.DATALOADER.NUM_INSTANCES):
        raise ValueError(f"SOLVER.IMS_PER_BATCH {cfg.SOLVER.IMS_PER_BATCH} must split into "
                         f"{world} ranks x K={cfg.DATALOADER.NUM_INSTANCES} images")
    loader = build_train_loader(cfg, train_set.train, rank=rank, world_size=world)
    model = build_model(cfg, num_classes=num_classes)
    if cfg.MODEL.WEIGHTS:
        load_model_weights(model, cfg.MODEL.WEIGHTS)
    if cfg.MODEL.SYNC_BN and world > 1:
        model = convert_sync_batchnorm(model, device)
    model = model.to(device)
    if cfg.MODEL.CHANNELS_LAST:
        model = model.to(memory_format=torch.channels_last)
    train_model: nn.Module = model
    if world > 1:
        # PTL latent state lives on the wrapper as plain tensors (not buffers), so DDP neither
        # broadcasts nor averages it: each rank carries the state of its own batches.
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if main:
        summary = model_summary(model, tuple(cfg.INPUT.SIZE_TEST))
        logger.info("%s/%s\n%s", cfg.MODEL.META_ARCHITECTURE, cfg.MODEL.BACKBONE.NAME,
                    format_summary(summary))
    s = cfg.SOLVER
    optimizer, scheduler = build_solver(cfg, model, len(loader))
    checkpointer = Checkpointer(cfg.OUTPUT_DIR, keep=s.KEEP_CHECKPOINTS)
    tb = TensorBoardHook(os.path.join(cfg.OUTPUT_DIR, "tb"), s.LOG_PERIOD) if main else None

    def periodic_eval() -> Dict[str, float]:
        results = evaluate_on_test_sets(cfg, model, device, progress)
        logger.info("evaluation:\n%s", format_table({n: m.headline() for n, m in results.items()}))
        return next(iter(results.values())).headline()

    hooks = build_hooks(cfg, checkpointer, periodic_eval, tb, progress, extra_hooks)
    trainer = Trainer(train_model, optimizer, scheduler, loader, s.MAX_EPOCHS, device, hooks,
                      amp=s.AMP, channels_last=cfg.MODEL.CHANNELS_LAST)
    run_trainer(cfg, trainer, checkpointer, resume)
    if main:
        atomic_save({"model": model.state_dict(), "num_classes": num_classes},
                    os.path.join(cfg.OUTPUT_DIR, "model_final.pth"))
    results = evaluate_on_test_sets(cfg, model, device, progress)
    extra = dict(epochs=s.MAX_EPOCHS, train_datasets=list(cfg.DATASETS.TRAIN),
                 num_classes=num_classes, world_size=world)
    if not main:
        du.barrier()
        return metrics_record(results, model, **extra)
    record = write_results(cfg, results, model, **extra)
    du.barrier()
    return record


def build_test_model(cfg, weights: Optional[str], device: torch.device) -> nn.Module:
    """A model for feature extraction; the classifier (training-only) may not fit the file."""
    model = build_model(cfg, num_classes=1)
    if weights:
        load_model_weights(model, weights)
    return model.to(device).eval()


def test(cfg, weights: Optional[str] = None, progress: bool = True, vis_ranks: int = 0
         ) -> Dict[str, Any]:
    """Evaluate ``weights`` (default ``MODEL.WEIGHTS``) on ``DATASETS.TEST``; ``vis_ranks`` > 0
    also draws rank-list images of that many top matches."""
    if cfg.TASK == "classification":
        from .classification import classification_test

        return classification_test(cfg, weights=weights, progress=progress)
    device = setup_run(cfg, progress)
    weights = weights or cfg.MODEL.WEIGHTS
    if not weights:
        logger.warning("no MODEL.WEIGHTS given: testing an untrained model")
    model = build_test_model(cfg, weights, device)
    results = evaluate_on_test_sets(cfg, model, device, progress, save_ranks=True,
                                    vis_ranks=vis_ranks)
    return write_results(cfg, results, model, weights=weights or None)
