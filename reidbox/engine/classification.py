"""``TASK: classification``: train and test image classifiers (CIFAR) with the same Trainer.

What differs from ReID: array datasets (:class:`ClassificationDataset`) instead of image files,
plain shuffled batches instead of P x K, CIFAR transforms (pad + random crop + flip, or none),
and top-1 error on each test set's test split instead of retrieval metrics. Everything else --
Trainer, hooks (latent-state reset, progress, TensorBoard, checkpoints/resume, periodic
evaluation), solver, output files -- is the ReID runner's.

Outputs in ``OUTPUT_DIR``: ``config.yaml``, ``checkpoint_*.pth``, ``model_final.pth``
(``{"model", "num_classes"}``) and ``metrics.json`` with ``top1_error`` (a fraction).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, RandomSampler
from torchvision.transforms import v2 as T
from tqdm import tqdm

from ..data import ArrayImageDataset, ArraySplit, ClassificationDataset, build_dataset_from_config
from ..data.build import _seed_worker
from ..modeling import build_model
from ..modeling.summary import format_summary, model_summary
from ..utils import distributed as du
from ..utils.checkpoint import Checkpointer, atomic_save, load_file, load_model_weights
from ..utils.misc import write_json
from .hooks import TensorBoardHook, stderr_is_terminal
from .runner import (build_hooks, eval_dir, load_resume_state, model_info, prepare_eval_dir,
                     run_trainer, setup_run, use_channels_last)
from .solver import build_solver
from .trainer import HookBase, Trainer

logger = logging.getLogger("reidbox")

# Per-channel statistics of the training sets (RGB, [0, 1] scale), the usual constants.
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)


def cifar_transforms(image_size: Sequence[int], is_train: bool, padding: int = 4,
                     flip_prob: float = 0.5, mean: Sequence[float] = CIFAR10_MEAN,
                     std: Sequence[float] = CIFAR10_STD) -> T.Compose:
    """PIL image -> normalised (3, H, W) float tensor, at the images' own size (no resize).

    Training with ``padding > 0``: zero-pad by ``padding`` pixels and crop back at a random
    place (translation); ``flip_prob > 0``: horizontal mirroring -- together the standard
    "+" augmentation (CIFAR-100+). Both 0: no augmentation (plain CIFAR-10 / CIFAR-100).
    """
    ops: List[Any] = [T.ToImage()]
    if is_train and padding > 0:
        ops.append(T.RandomCrop(tuple(int(s) for s in image_size), padding=int(padding)))
    if is_train and flip_prob > 0:
        ops.append(T.RandomHorizontalFlip(flip_prob))
    ops += [T.ToDtype(torch.float32, scale=True), T.Normalize(list(mean), list(std))]
    return T.Compose(ops)


def _transforms(cfg, split: ArraySplit, is_train: bool) -> T.Compose:
    i = cfg.INPUT
    return cifar_transforms(split.images.shape[1:3], is_train, i.PADDING, i.FLIP_PROB,
                            i.PIXEL_MEAN, i.PIXEL_STD)


def _classification_set(cfg, name: str) -> ClassificationDataset:
    ds = build_dataset_from_config(cfg, name)
    if not isinstance(ds, ClassificationDataset):
        raise ValueError(f"TASK is 'classification' but dataset {name!r} is a "
                         f"{type(ds).__name__}; use cifar10, cifar100, cifar10_synthetic or "
                         "cifar100_synthetic (or TASK: reid for ReID datasets)")
    return ds


def build_classification_sets(cfg) -> Tuple[ClassificationDataset, List[ClassificationDataset]]:
    """The one ``DATASETS.TRAIN`` set and the ``DATASETS.TEST`` sets (their test splits are
    evaluated; an empty TEST list means the training set's own test split)."""
    if len(cfg.DATASETS.TRAIN) != 1:
        raise ValueError(f"classification trains on exactly one dataset; DATASETS.TRAIN is "
                         f"{list(cfg.DATASETS.TRAIN)}")
    train = _classification_set(cfg, cfg.DATASETS.TRAIN[0])
    tests = [train if n == train.name else _classification_set(cfg, n)
             for n in (cfg.DATASETS.TEST or [train.name])]
    for t in tests:
        if t.num_classes != train.num_classes:
            raise ValueError(f"test set {t.name} has {t.num_classes} classes but the training "
                             f"set {train.name} has {train.num_classes}")
    return train, tests


def build_classification_train_loader(cfg, split: ArraySplit) -> DataLoader:
    """Shuffled batches of ``SOLVER.IMS_PER_BATCH`` (``DATALOADER.SAMPLER`` does not apply).

    The last incomplete batch is dropped when the set is larger than a batch (it is a different
    random remainder every epoch), so a BatchNorm never sees a batch of one.
    """
    batch = cfg.SOLVER.IMS_PER_BATCH
    return DataLoader(ArrayImageDataset(split, _transforms(cfg, split, True)), batch_size=batch,
                      sampler=RandomSampler(range(len(split))), drop_last=len(split) > batch,
                      num_workers=cfg.DATALOADER.NUM_WORKERS, worker_init_fn=_seed_worker,
                      pin_memory=torch.cuda.is_available())


def build_classification_test_loader(cfg, split: ArraySplit) -> DataLoader:
    return DataLoader(ArrayImageDataset(split, _transforms(cfg, split, False)),
                      batch_size=cfg.TEST.IMS_PER_BATCH, shuffle=False,
                      num_workers=cfg.DATALOADER.NUM_WORKERS,
                      pin_memory=torch.cuda.is_available())


@torch.no_grad()
def evaluate_classifier(model: nn.Module, loader: DataLoader, device: torch.device,
                        progress: bool = True, name: str = "test") -> Dict[str, float]:
    """Eval-mode logits (B, N) over ``loader``: top-1 / top-5 error (fractions), mean CE loss.

    Restores the model's train/eval mode afterwards.
    """
    was_training = model.training
    model.eval()
    n, loss, wrong1, wrong5 = 0, 0.0, 0, 0
    try:
        for batch in tqdm(loader, desc=f"evaluate {name}", disable=not progress, leave=False,
                          dynamic_ncols=True):
            images = batch["images"].to(device, non_blocking=True)
            targets = torch.as_tensor(batch["targets"]).to(device)
            logits = model(images).float()  # (B, N)
            if logits.ndim != 2:
                raise ValueError(f"a classifier's eval forward must return (B, num_classes) "
                                 f"logits; got shape {tuple(logits.shape)}")
            loss += float(F.cross_entropy(logits, targets, reduction="sum"))
            top = logits.topk(min(5, logits.shape[1]), dim=1).indices  # (B, k)
            wrong1 += int((top[:, 0] != targets).sum())
            wrong5 += int((top != targets[:, None]).all(dim=1).sum())
            n += targets.numel()
    finally:
        model.train(was_training)
    if n == 0:
        raise ValueError(f"test set {name} is empty")
    return {"top1_error": wrong1 / n, "top5_error": wrong5 / n, "loss": loss / n,
            "num_images": n}


def _evaluate_all(cfg, model: nn.Module, tests: Sequence[ClassificationDataset],
                  device: torch.device, progress: bool) -> Dict[str, Dict[str, float]]:
    return {t.name: evaluate_classifier(model, build_classification_test_loader(cfg, t.test),
                                        device, progress, t.name) for t in tests}


def _format(results: Dict[str, Dict[str, float]]) -> str:
    """Markdown table: top-1 / top-5 error in percent, mean loss, images per test set."""
    from ..data.stats import format_table

    return format_table(["dataset", "top-1 err (%)", "top-5 err (%)", "loss", "images"],
                        [[name, f"{100 * m['top1_error']:.2f}", f"{100 * m['top5_error']:.2f}",
                          f"{m['loss']:.4f}", m["num_images"]] for name, m in results.items()])


def classification_record(cfg, results: Dict[str, Dict[str, float]], model: nn.Module,
                          **extra) -> Dict[str, Any]:
    """``metrics.json``: the first test set's numbers at the top level, all under per_dataset."""
    first = next(iter(results.values()))
    record: Dict[str, Any] = {"task": "classification", "top1_error": first["top1_error"],
                              "top5_error": first["top5_error"], "test_loss": first["loss"],
                              "num_test_images": first["num_images"],
                              "per_dataset": {k: dict(v) for k, v in results.items()},
                              "augmentation": {"padding": cfg.INPUT.PADDING,
                                               "flip_prob": cfg.INPUT.FLIP_PROB}}
    record.update(model_info(model))
    record.update(extra)
    return record


def _write(cfg, results, model, out_dir: Optional[str] = None, **extra) -> Dict[str, Any]:
    record = classification_record(cfg, results, model, **extra)
    write_json(record, os.path.join(out_dir or cfg.OUTPUT_DIR, "metrics.json"))
    logger.info("results:\n%s", _format(results))
    return record


def _single_process() -> None:
    if du.get_world_size() > 1:
        raise RuntimeError("TASK: classification runs in one process; start it without torchrun")


def train_classification(cfg, resume: bool = False, extra_hooks: Sequence[HookBase] = (),
                         progress: bool = True, force_resume: bool = False) -> Dict[str, Any]:
    """Train on ``DATASETS.TRAIN``'s train split, report top-1 error on the test split(s).

    Returns the ``metrics.json`` record. ``resume`` continues from the newest checkpoint.
    """
    state = load_resume_state(cfg, force_resume) if resume else None
    device = setup_run(cfg, progress)
    progress = progress and stderr_is_terminal()  # no bar debris in log files
    _single_process()
    train_set, tests = build_classification_sets(cfg)
    num_classes = train_set.num_classes
    logger.info("train set %s: %d images, %d classes; augmentation: padding %d, flip %.2f",
                train_set.name, len(train_set.train), num_classes, cfg.INPUT.PADDING,
                cfg.INPUT.FLIP_PROB)
    loader = build_classification_train_loader(cfg, train_set.train)
    model = build_model(cfg, num_classes=num_classes)
    if cfg.MODEL.WEIGHTS:
        load_model_weights(model, cfg.MODEL.WEIGHTS, partial=cfg.MODEL.WEIGHTS_PARTIAL)
    model = model.to(device)
    channels_last = use_channels_last(cfg, device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    size = tuple(train_set.train.images.shape[1:3])
    logger.info("%s/%s\n%s", cfg.MODEL.META_ARCHITECTURE, cfg.MODEL.BACKBONE.NAME,
                format_summary(model_summary(model, size)))
    s = cfg.SOLVER
    optimizer, scheduler = build_solver(cfg, model, len(loader))
    checkpointer = Checkpointer(cfg.OUTPUT_DIR, keep=s.KEEP_CHECKPOINTS)
    tb = TensorBoardHook(os.path.join(cfg.OUTPUT_DIR, "tb"), s.LOG_PERIOD)

    def periodic_eval() -> Dict[str, Dict[str, float]]:
        results = _evaluate_all(cfg, model, tests, device, progress)
        logger.info("evaluation:\n%s", _format(results))
        return results

    hooks = build_hooks(cfg, checkpointer, periodic_eval, tb, progress, extra_hooks)
    trainer = Trainer(model, optimizer, scheduler, loader, s.MAX_EPOCHS, device, hooks,
                      amp=s.AMP, channels_last=channels_last, log_period=s.LOG_PERIOD,
                      compile=cfg.MODEL.COMPILE)
    run_trainer(cfg, trainer, checkpointer, resume, force_resume, state)
    atomic_save({"model": model.state_dict(), "num_classes": num_classes},
                os.path.join(cfg.OUTPUT_DIR, "model_final.pth"))
    results = _evaluate_all(cfg, model, tests, device, progress)
    tb.log_metrics(results, trainer.global_step)
    tb.close()
    return _write(cfg, results, model, epochs=s.MAX_EPOCHS, train_datasets=[train_set.name],
                  num_classes=num_classes, train_images=len(train_set.train))


def load_classifier(cfg, weights: str, num_classes: Optional[int], device: torch.device
                    ) -> nn.Module:
    """The model of ``cfg`` with ``weights`` (a ``model_final.pth`` or checkpoint), eval mode.

    ``num_classes`` defaults to the count stored in the file.
    """
    if num_classes is None:
        state = load_file(weights)
        num_classes = state.get("num_classes") if isinstance(state, dict) else None
        if not isinstance(num_classes, int):
            raise ValueError(f"{weights} does not record num_classes; pass it explicitly")
    model = build_model(cfg, num_classes=num_classes)
    # the classifier is the test-time output here: it must fit like every other tensor
    load_model_weights(model, weights, what="classifier weights", skip_classifier=False,
                       partial_key=None)
    return model.to(device).eval()


def classification_test(cfg, weights: Optional[str] = None, progress: bool = True
                        ) -> Dict[str, Any]:
    """Top-1 error of ``weights`` (default ``MODEL.WEIGHTS``) on the test split(s), written to
    ``OUTPUT_DIR/eval/<settings>/metrics.json`` (never over a training run's results)."""
    device = setup_run(cfg, progress, role="test")
    progress = progress and stderr_is_terminal()  # no bar debris in log files
    _single_process()
    weights = weights or cfg.MODEL.WEIGHTS
    if not weights:
        raise ValueError("testing a classifier needs weights: pass --weights / MODEL.WEIGHTS "
                         "(an untrained classifier's error means nothing)")
    train_set, tests = build_classification_sets(cfg)
    model = load_classifier(cfg, weights, train_set.num_classes, device)
    out = eval_dir(cfg, weights)
    prepare_eval_dir(out)
    results = _evaluate_all(cfg, model, tests, device, progress)
    return _write(cfg, results, model, out_dir=out, weights=weights,
                  num_classes=train_set.num_classes)


__all__ = ["CIFAR100_MEAN", "CIFAR100_STD", "CIFAR10_MEAN", "CIFAR10_STD",
           "build_classification_sets", "cifar_transforms", "evaluate_classifier",
           "load_classifier", "classification_test", "train_classification"]
