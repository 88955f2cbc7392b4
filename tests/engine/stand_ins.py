"""Stand-in data and settings for the slow tests that walk the real training paths.

Each config runs as shipped except :data:`COMMON` and :func:`tiny_opts` (tiny inputs, no
ImageNet weights, one epoch, CPU, no workers), on stand-in data written in each dataset's real
layout with a train set whose size leaves a remainder of 1 by the batch (:func:`sizes`).
"""

from __future__ import annotations

import os
from typing import List, Sequence, Tuple

from reidbox.config import load_config
from reidbox.data.build import dataset_kwargs

from ..data.fixtures import (
    make_cifar10,
    make_cifar100,
    make_cuhk03,
    make_reid_sized,
    trim_market_style_train,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMMON = [
    "MODEL.BACKBONE.PRETRAINED",
    "False",
    "MODEL.WEIGHTS",
    "",
    "SOLVER.MAX_EPOCHS",
    "1",
    "DEVICE",
    "cpu",
    "DATALOADER.NUM_WORKERS",
    "0",
    "TEST.IMS_PER_BATCH",
    "64",
    "TEST.EVAL_PERIOD",
    "0",
    "SOLVER.LOG_PERIOD",
    "1",
]
SYNTHETIC = ["DATASETS.SYNTHETIC.NUM_TEST_IDS", "3", "DATASETS.SYNTHETIC.IMAGE_SIZE", "[32, 16]"]
# CIFAR keeps its 32x32 images (the format's size); DenseNet-100 is the costliest model per
# image here, so classification configs run with a batch of at most this.
CIFAR_MAX_BATCH = 4
# Chain step datasets that stand for several registered ones.
ALIAS_PARTS = {"market_duke": ["market1501", "dukemtmcreid"]}


def tiny_opts(cfg) -> List[str]:
    """Tiny inputs: a quarter of the configured size (ReID), the batch cap (CIFAR)."""
    if cfg.TASK == "classification":
        return ["SOLVER.IMS_PER_BATCH", str(min(cfg.SOLVER.IMS_PER_BATCH, CIFAR_MAX_BATCH))]
    h, w = cfg.INPUT.SIZE_TRAIN
    size = f"[{max(32, h // 4)}, {max(16, w // 4)}]"
    return ["INPUT.SIZE_TRAIN", size, "INPUT.SIZE_TEST", size]


def sizes(batch: int, sampler: str, k: int) -> Tuple[int, int]:
    """(identities, images) of a train set whose size leaves a remainder of 1 by the batch."""
    if sampler == "pk":
        ids = batch // k + 1  # P + 1 identities: the old sampler's last batch held one
        images = batch * -(-ids * k // batch) + 1
        return ids, images
    images = 2 * batch + 1
    return max(4, images // 6), images


class Data:
    """Dataset roots written on demand, one per (datasets, sizes) combination."""

    def __init__(self, base: str) -> None:
        self.base, self.roots = base, {}

    def root(self, cfg, names: Sequence[str]) -> Tuple[str, List[str]]:
        s = cfg.SOLVER
        ids, images = sizes(s.IMS_PER_BATCH, cfg.DATALOADER.SAMPLER, cfg.DATALOADER.NUM_INSTANCES)
        parts = sorted({p for n in names for p in ALIAS_PARTS.get(n, [n])})
        key = (tuple(parts), ids, images, cfg.DATASETS.CUHK03.VARIANT)
        if key in self.roots:
            return self.roots[key]
        root = os.path.join(self.base, f"root{len(self.roots)}")
        opts: List[str] = []
        for n in parts:
            if n in ("market1501", "dukemtmcreid", "msmt17"):
                make_reid_sized(root, n, ids, images)
            elif n == "cuhk03":  # new protocol: train ids = P + 1 (5 at P = 4)
                labeled = cfg.DATASETS.CUHK03.VARIANT == "labeled"
                make_cuhk03(root, pairs=(5, 3, 2) if labeled else (3, 2, 2))
            elif n.startswith("synthetic"):
                opts = SYNTHETIC + ["DATASETS.SYNTHETIC.NUM_TRAIN_IDS", str(images // 8 + 2)]
                c = load_config(None, opts + ["DATASETS.ROOT", root])
                from reidbox.data import build_dataset

                ds = build_dataset(n, root=root, **dataset_kwargs(c, n))
                trim_market_style_train(os.path.dirname(os.path.dirname(ds.train[0].path)), images)
            elif n in ("cifar10", "cifar10_synthetic"):
                where = root
                if n == "cifar10_synthetic":  # generated, then its arrays replaced (same format)
                    from reidbox.data.cifar_synthetic import generate_synthetic_cifar

                    where = os.path.join(root, "cifar10_synthetic")
                    generate_synthetic_cifar(where, "cifar10")
                make_cifar10(where, per_batch=1)  # 5 images: one batch of 4 + 1
            elif n == "cifar100":
                make_cifar100(root, n_train=2 * CIFAR_MAX_BATCH + 1)  # two batches + 1
            else:
                raise AssertionError(f"no stand-in data for dataset {n!r}: extend this test")
        self.roots[key] = (root, opts + ["DATASETS.ROOT", root])
        return self.roots[key]
