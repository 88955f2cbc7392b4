"""Builders: the only readers of ``cfg.DATASETS`` / ``cfg.INPUT`` / ``cfg.DATALOADER``."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

from ..registry import DATASETS
from .datasets.base import DatasetError, ReIDDataset, Sample, combine
from .datasets.combined import combine_by_name
from .image_dataset import ImageDataset, filter_readable
from .samplers import PKBatchSampler
from .transforms import transforms_from_config


def build_dataset(name: str, root: str = "datasets", **kwargs) -> ReIDDataset:
    """Parse the registered dataset ``name`` under ``root`` (the datasets folder).

    ``"a+b+..."`` combines registered datasets for training (see ``datasets.combine``);
    ``kwargs`` then map each part's name to its options.
    """
    if name not in DATASETS and "+" in name:
        return combine_by_name(name.split("+"), root=root, options=kwargs, name=name)
    return DATASETS.get(name)(root=root, **kwargs)


def dataset_kwargs(cfg, name: str) -> Dict[str, Any]:
    """Per-dataset options from the config (only the datasets that take options)."""
    d = cfg.DATASETS
    name = name.lower()
    if name.startswith("synthetic"):
        s = d.SYNTHETIC
        return dict(num_train_ids=s.NUM_TRAIN_IDS, num_test_ids=s.NUM_TEST_IDS,
                    num_cameras=s.NUM_CAMERAS, image_size=tuple(s.IMAGE_SIZE))
    if name == "cuhk03":
        return dict(variant=d.CUHK03.VARIANT, protocol=d.CUHK03.PROTOCOL, split=d.CUHK03.SPLIT)
    if name == "cuhk03_market":
        return dict(variant=d.CUHK03.VARIANT, protocol=d.CUHK03.PROTOCOL)
    if name == "msmt17":
        return dict(version=d.MSMT17.VERSION, include_val=d.MSMT17.INCLUDE_VAL)
    return {}


def build_dataset_from_config(cfg, name: str, dsetid: int = 0) -> ReIDDataset:
    kwargs = dataset_kwargs(cfg, name)
    if dsetid:
        kwargs["dsetid"] = dsetid
    return build_dataset(name, root=cfg.DATASETS.ROOT, **kwargs)


def build_train_set(cfg) -> ReIDDataset:
    """All ``DATASETS.TRAIN`` sets combined: labels and cameras shifted so they never collide,
    ``dsetid`` = position in the list, each source's test split kept in ``test_sets``."""
    names = list(cfg.DATASETS.TRAIN)
    parts = [build_dataset_from_config(cfg, n, dsetid=k) for k, n in enumerate(names)]
    train = parts[0] if len(parts) == 1 else combine(parts, name="+".join(names), names=names)
    if train.num_train_pids < 2:
        raise DatasetError(
            f"training set {train.name} has {train.num_train_pids} identit"
            f"{'y' if train.num_train_pids == 1 else 'ies'} ({len(train.train)} images under "
            f"{cfg.DATASETS.ROOT}): training needs at least 2 identities to tell apart; add "
            "identities or choose another DATASETS.TRAIN")
    return train


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def build_train_loader(cfg, items: List[Sample], rank: int = 0, world_size: int = 1
                       ) -> DataLoader:
    """Training loader: P x K batches (``pk``) or plain shuffling (``random``)."""
    if cfg.DATALOADER.SKIP_UNREADABLE:
        items = filter_readable(items, "training images")
    dataset = ImageDataset(items, transforms_from_config(cfg, is_train=True))
    batch = cfg.SOLVER.IMS_PER_BATCH // world_size
    common = dict(num_workers=cfg.DATALOADER.NUM_WORKERS, worker_init_fn=_seed_worker,
                  persistent_workers=False, pin_memory=torch.cuda.is_available())
    if cfg.DATALOADER.SAMPLER == "pk":
        sampler = PKBatchSampler([s.pid for s in items], batch, cfg.DATALOADER.NUM_INSTANCES,
                                 seed=cfg.SEED, rank=rank, world_size=world_size)
        return DataLoader(dataset, batch_sampler=sampler, **common)
    if cfg.DATALOADER.SAMPLER == "random":
        return DataLoader(dataset, batch_size=batch, sampler=RandomSampler(dataset),
                          drop_last=False, **common)
    raise KeyError(f"unknown DATALOADER.SAMPLER {cfg.DATALOADER.SAMPLER!r}; available: pk, random")


def build_test_loader(cfg, items: List[Sample], batch_size: Optional[int] = None) -> DataLoader:
    """Deterministic loader in item order (query then gallery, typically)."""
    dataset = ImageDataset(items, transforms_from_config(cfg, is_train=False))
    return DataLoader(dataset, batch_size=batch_size or cfg.TEST.IMS_PER_BATCH, shuffle=False,
                      num_workers=cfg.DATALOADER.NUM_WORKERS,
                      pin_memory=torch.cuda.is_available())


@dataclass
class TestSet:
    name: str
    query: List[Sample]
    gallery: List[Sample]


def build_test_sets(cfg) -> List[TestSet]:
    """One test set per ``DATASETS.TEST`` entry; a combined set (``market_duke``) gives one per
    source, named after it."""
    out = []
    for name in cfg.DATASETS.TEST:
        ds = build_dataset_from_config(cfg, name)
        for sub, query, gallery in ds.evaluation_sets():
            label = name if sub == ds.name else sub
            if cfg.DATALOADER.SKIP_UNREADABLE:
                query = filter_readable(query, f"{label} query images")
                gallery = filter_readable(gallery, f"{label} gallery images")
            out.append(TestSet(label, query, gallery))
    return out
