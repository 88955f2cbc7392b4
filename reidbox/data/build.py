"""Builders: the only readers of ``cfg.DATASETS`` / ``cfg.INPUT`` / ``cfg.DATALOADER``."""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from ..registry import DATASETS
from ..retrieval.protocols import get_protocol
from .catalog import dataset_kwargs, dataset_task
from .datasets.base import (
    DatasetError,
    ReIDDataset,
    Sample,
    check_query_matches,
    combine,
    require_items,
    validate_dataset,
)
from .classification import ArrayImageDataset, ArraySplit, ClassificationDataset
from .datasets.combined import combine_by_name
from .image_dataset import ImageDataset, filter_readable
from .samplers import PKBatchSampler
from .transforms import classification_transforms, transforms_from_config
from ..errors import InputError, UnknownNameError


def build_dataset(name: str, root: str = "datasets", **kwargs) -> ReIDDataset:
    """Parse the registered dataset ``name`` under ``root`` (the datasets folder).

    ``"a+b+..."`` combines registered datasets for training (see ``datasets.combine``);
    ``kwargs`` then map each part's name to its options.
    """
    if name not in DATASETS and "+" in name:
        ds = combine_by_name(name.split("+"), root=root, options=kwargs, name=name)
    else:
        ds = DATASETS.get(name)(root=root, **kwargs)
    # every parser, built-in or plugin, meets the same contract (docs/custom_dataset.md)
    return validate_dataset(ds) if isinstance(ds, ReIDDataset) else ds


def check_task(names, task: str) -> None:
    """Refuse, before anything is read or generated, a dataset that declares another task
    (``"reid"`` / ``"classification"``); an ``a+b`` name is checked part by part."""
    for name in names:
        for part in [name] if name in DATASETS else name.split("+"):
            if part not in DATASETS:
                continue  # building it says "unknown dataset" with the list
            other = dataset_task(part)
            if other == task:
                continue
            if task == "reid":
                raise DatasetError(
                    f"dataset {part!r} is a {other} dataset but TASK is 'reid': set TASK "
                    f"{other} (as configs/cifar10/*.yml do) or choose a ReID dataset"
                )
            same = sorted(n for n in DATASETS if dataset_task(n) == task)
            raise DatasetError(
                f"TASK is {task!r} but dataset {part!r} is a {other} dataset; use "
                f"{', '.join(same) or f'a {task} dataset'} (or TASK: {other} for it)"
            )


def _reid(ds, name: str) -> ReIDDataset:
    if not isinstance(ds, ReIDDataset):
        raise DatasetError(
            f"dataset {name!r} returned {type(ds).__name__}, not a ReIDDataset "
            "(see docs/custom_dataset.md)"
        )
    return ds


def build_dataset_from_config(cfg, name: str, dsetid: int = 0) -> ReIDDataset:
    """Dataset ``name`` with the options it declares it reads from the config."""
    kwargs = dataset_kwargs(cfg, name)
    if dsetid:
        kwargs["dsetid"] = dsetid
    return build_dataset(name, root=cfg.DATASETS.ROOT, **kwargs)


def build_train_set(cfg) -> ReIDDataset:
    """All ``DATASETS.TRAIN`` sets combined: labels and cameras shifted so they never collide,
    ``dsetid`` = position in the list, each source's test split kept in ``test_sets``."""
    names = list(cfg.DATASETS.TRAIN)
    check_task(names, "reid")
    parts = [_reid(build_dataset_from_config(cfg, n, dsetid=k), n) for k, n in enumerate(names)]
    ds = parts[0] if len(parts) == 1 else combine(parts, name="+".join(names), names=names)
    require_items(ds.train, ds.name, "train", check_files=not cfg.DATALOADER.SKIP_UNREADABLE)
    if ds.num_train_pids < 2:
        raise DatasetError(
            f"training set {ds.name} has {ds.num_train_pids} identit"
            f"{'y' if ds.num_train_pids == 1 else 'ies'} ({len(ds.train)} images under "
            f"{cfg.DATASETS.ROOT}): training needs at least 2 identities to tell apart; add "
            "identities or choose another DATASETS.TRAIN"
        )
    return ds


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def check_train_batch(batch: int, num_instances: int, sampler: str, world_size: int = 1) -> int:
    """The per-rank batch of a global ``SOLVER.IMS_PER_BATCH`` = ``batch``, checked up front.

    Every rank needs >= 2 images (BatchNorm cannot train on one); the K divisibility
    (``DATALOADER.NUM_INSTANCES``) applies only to the P x K sampler.
    """
    if sampler not in ("pk", "pk_camera", "random"):
        raise UnknownNameError(
            f"unknown DATALOADER.SAMPLER {sampler!r}; available: pk, pk_camera, random"
        )
    if batch % world_size:
        raise InputError(
            f"SOLVER.IMS_PER_BATCH {batch} (the global batch) must split evenly "
            f"over {world_size} ranks: use a multiple of {world_size}"
        )
    per_rank = batch // world_size
    if per_rank < 2:
        raise InputError(
            f"SOLVER.IMS_PER_BATCH {batch} over {world_size} rank(s) gives "
            f"{per_rank} image(s) per batch, which BatchNorm cannot train on: use "
            f"at least {2 * world_size}"
        )
    if sampler != "random" and (num_instances < 1 or per_rank % num_instances):
        raise InputError(
            f"SOLVER.IMS_PER_BATCH {batch} must split into {world_size} rank(s) x "
            f"P identities x K={num_instances} images (DATALOADER.NUM_INSTANCES) "
            "with the pk sampler: change either, or use DATALOADER.SAMPLER random"
        )
    return per_rank


def build_train_loader(cfg, items: List[Sample], rank: int = 0, world_size: int = 1) -> DataLoader:
    """Training loader: P x K batches (``pk``) or plain shuffling (``random``).

    Both give every rank full batches of ``SOLVER.IMS_PER_BATCH / world_size`` images, so no
    step depends on the remainder of the set size by the batch. ``random`` is
    ``DistributedSampler`` semantics for any world size (one process is world size 1): one
    permutation of the whole set per epoch, seeded by ``SEED`` + epoch; rank r takes every
    world_size-th image of it, so the ranks' batches of step i together are exactly the
    1-process batch i; the incomplete last batch is dropped (as torchreid and fast-reid do).
    """
    d = cfg.DATALOADER
    batch = check_train_batch(cfg.SOLVER.IMS_PER_BATCH, d.NUM_INSTANCES, d.SAMPLER, world_size)
    if d.SKIP_UNREADABLE:
        items = filter_readable(items, "training images")
    dataset = ImageDataset(items, transforms_from_config(cfg, is_train=True))
    common = dict(
        num_workers=d.NUM_WORKERS,
        worker_init_fn=_seed_worker,
        persistent_workers=False,
        pin_memory=torch.cuda.is_available(),
    )
    if d.SAMPLER in ("pk", "pk_camera"):
        sampler = PKBatchSampler(
            [s.pid for s in items],
            batch,
            d.NUM_INSTANCES,
            seed=cfg.SEED,
            rank=rank,
            world_size=world_size,
            camids=[s.camid for s in items] if d.SAMPLER == "pk_camera" else None,
        )
        return DataLoader(dataset, batch_sampler=sampler, **common)
    if len(items) < cfg.SOLVER.IMS_PER_BATCH:
        raise InputError(
            f"the train set has {len(items)} images, fewer than one batch "
            f"(SOLVER.IMS_PER_BATCH {cfg.SOLVER.IMS_PER_BATCH}); the random sampler "
            "trains on full batches only: lower SOLVER.IMS_PER_BATCH"
        )
    shuffle = DistributedSampler(
        dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=cfg.SEED, drop_last=True
    )
    return DataLoader(dataset, batch_size=batch, sampler=shuffle, drop_last=True, **common)


def build_test_loader(cfg, items: List[Sample], batch_size: Optional[int] = None) -> DataLoader:
    """Deterministic loader in item order (query then gallery, typically)."""
    dataset = ImageDataset(items, transforms_from_config(cfg, is_train=False))
    return DataLoader(
        dataset,
        batch_size=batch_size or cfg.TEST.IMS_PER_BATCH,
        shuffle=False,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        pin_memory=torch.cuda.is_available(),
    )


@dataclass
class TestSet:
    name: str
    query: List[Sample]
    gallery: List[Sample]

    def fingerprint(self) -> str:
        """Which data a result was measured on: 12 hex digits over every query and gallery
        image's file name, identity and camera (not the pixels: cheap for any size). Two
        results compare only when their test sets' fingerprints are equal."""
        h = hashlib.sha1()
        for part, items in (("q", self.query), ("g", self.gallery)):
            for s in sorted((os.path.basename(s.path), s.pid, s.camid) for s in items):
                h.update(f"{part}|{s[0]}|{s[1]}|{s[2]}\n".encode())
        return h.hexdigest()[:12]


def build_test_sets(cfg) -> List[TestSet]:
    """One test set per ``DATASETS.TEST`` entry; a combined set (``market_duke``) gives one per
    source, named after it. Each is checked: non-empty splits, files present, and some query
    with a valid gallery match under ``TEST.PROTOCOL``."""
    protocol = get_protocol(cfg.TEST.PROTOCOL)
    check_task(cfg.DATASETS.TEST, "reid")
    out = []
    for name in cfg.DATASETS.TEST:
        ds = _reid(build_dataset_from_config(cfg, name), name)
        if not ds.evaluation_sets():
            raise DatasetError(
                f"{name}: no query/gallery split to test on; list it in "
                "DATASETS.TRAIN only, or give it query and gallery items"
            )
        for sub, query, gallery in ds.evaluation_sets():
            label = name if sub == ds.name else sub
            for split, items in (("query", query), ("gallery", gallery)):
                require_items(items, label, split, check_files=not cfg.DATALOADER.SKIP_UNREADABLE)
            check_query_matches(label, query, gallery, protocol.same_camera_matches, protocol.name)
            if cfg.DATALOADER.SKIP_UNREADABLE:
                query = filter_readable(query, f"{label} query images")
                gallery = filter_readable(gallery, f"{label} gallery images")
            out.append(TestSet(label, query, gallery))
    return out


def classification_set(cfg, name: str) -> ClassificationDataset:
    """The registered classification dataset ``name`` under ``DATASETS.ROOT``; a dataset of
    another task is one clear error, before anything is read."""
    check_task([name], "classification")
    ds = build_dataset_from_config(cfg, name)
    if not isinstance(ds, ClassificationDataset):
        raise DatasetError(
            f"dataset {name!r} returned {type(ds).__name__}, not a ClassificationDataset"
        )
    return ds


def build_classification_sets(cfg) -> Tuple[ClassificationDataset, List[ClassificationDataset]]:
    """The one ``DATASETS.TRAIN`` set and the ``DATASETS.TEST`` sets (their test splits are
    evaluated; an empty TEST list means the training set's own test split)."""
    if len(cfg.DATASETS.TRAIN) != 1:
        raise DatasetError(
            f"classification trains on exactly one dataset; DATASETS.TRAIN is "
            f"{list(cfg.DATASETS.TRAIN)}"
        )
    train = classification_set(cfg, cfg.DATASETS.TRAIN[0])
    tests = [
        train if n == train.name else classification_set(cfg, n)
        for n in (cfg.DATASETS.TEST or [train.name])
    ]
    for t in tests:
        if t.num_classes != train.num_classes:
            raise DatasetError(
                f"test set {t.name} has {t.num_classes} classes but the "
                f"training set {train.name} has {train.num_classes}"
            )
        if not len(t.test):
            raise DatasetError(
                f"test set {t.name} has no test images under "
                f"{cfg.DATASETS.ROOT}: add them or choose another DATASETS.TEST"
            )
    return train, tests


def build_classification_train_loader(
    cfg, split: ArraySplit, rank: int = 0, world_size: int = 1
) -> DataLoader:
    """Shuffled batches of ``SOLVER.IMS_PER_BATCH`` (the global batch; ``DATALOADER.SAMPLER``
    does not apply), the ``random`` ReID sampler's semantics: one permutation per epoch seeded
    by ``SEED`` + epoch, rank r takes every world_size-th image of it.

    The last incomplete batch is dropped when the set holds more than a batch per rank (it is
    a different random remainder every epoch), so a BatchNorm never sees a batch of one.
    """
    batch = check_train_batch(cfg.SOLVER.IMS_PER_BATCH, 1, "random", world_size)
    size = split.images.shape[1:3]
    dataset = ArrayImageDataset(split, classification_transforms(cfg, size, True))
    shuffle = DistributedSampler(
        dataset,
        num_replicas=world_size,
        rank=rank,
        shuffle=True,
        seed=cfg.SEED,
        drop_last=world_size > 1,
    )
    return DataLoader(
        dataset,
        batch_size=batch,
        sampler=shuffle,
        drop_last=len(split) // world_size > batch,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        worker_init_fn=_seed_worker,
        pin_memory=torch.cuda.is_available(),
    )


def build_classification_test_loader(cfg, split: ArraySplit) -> DataLoader:
    """Test images in order, no augmentation."""
    transform = classification_transforms(cfg, split.images.shape[1:3], False)
    return DataLoader(
        ArrayImageDataset(split, transform),
        batch_size=cfg.TEST.IMS_PER_BATCH,
        shuffle=False,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
        pin_memory=torch.cuda.is_available(),
    )
