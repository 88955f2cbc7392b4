"""Shared fixtures: tiny datasets written in the real Market-1501 layout."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image


def write_market_tree(
    base: str, num_train_ids: int = 6, num_test_ids: int = 5, size=(32, 16), seed: int = 0
) -> str:
    """A Market-1501-v15.09.15 tree with colour-coded identities (learnable in a few steps)."""
    rng = np.random.default_rng(seed)
    release = os.path.join(base, "market1501", "Market-1501-v15.09.15")
    dirs = {
        k: os.path.join(release, k) for k in ("bounding_box_train", "bounding_box_test", "query")
    }
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    h, w = size

    def img(pid: int, cam: int) -> Image.Image:
        top = np.array([(pid * 53) % 256, (pid * 97) % 256, (pid * 31) % 256], np.float32)
        bottom = np.array([(pid * 71) % 256, (pid * 13) % 256, (pid * 151) % 256], np.float32)
        a = np.empty((h, w, 3), np.float32)
        a[: h // 2], a[h // 2 :] = top, bottom
        a = a * (0.8 + 0.1 * cam) + rng.normal(0, 8, a.shape)
        return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))

    frame = 0
    for pid in range(1, num_train_ids + 1):
        for cam in (1, 2, 3):
            for _ in range(2):
                frame += 1
                img(pid, cam).save(
                    os.path.join(
                        dirs["bounding_box_train"], f"{pid:04d}_c{cam}s1_{frame:06d}_01.jpg"
                    )
                )
    for pid in range(100, 100 + num_test_ids):
        for cam in (1, 2):
            frame += 1
            img(pid, cam).save(
                os.path.join(dirs["query"], f"{pid:04d}_c{cam}s1_{frame:06d}_00.jpg")
            )
        for cam in (1, 2, 3):
            frame += 1
            img(pid, cam).save(
                os.path.join(dirs["bounding_box_test"], f"{pid:04d}_c{cam}s1_{frame:06d}_01.jpg")
            )
    for i in range(3):  # distractors and junk, as in the real release
        frame += 1
        img(900 + i, 1).save(
            os.path.join(dirs["bounding_box_test"], f"0000_c{i + 1}s1_{frame:06d}_02.jpg")
        )
        img(950 + i, 2).save(
            os.path.join(dirs["bounding_box_test"], f"-1_c{i + 1}s1_{frame:06d}_03.jpg")
        )
    with open(os.path.join(dirs["bounding_box_test"], "Thumbs.db"), "wb") as f:
        f.write(b"\0" * 16)
    return base


@pytest.fixture(scope="session")
def market_root(tmp_path_factory) -> str:
    return write_market_tree(str(tmp_path_factory.mktemp("datasets")))


def tiny_cifar_model(arch: str, cell: str = "v1", hidden: str = "[16]") -> list:
    """Overrides for a tiny ``TASK: classification`` model (DenseNet-10 on 32x32 images)."""
    return [
        "TASK",
        "classification",
        "MODEL.META_ARCHITECTURE",
        arch,
        "MODEL.BACKBONE.NAME",
        "densenet10_cifar",
        "MODEL.BACKBONE.LAST_STRIDE",
        "2",
        "MODEL.PTL.CELL",
        cell,
        "MODEL.HEADS.PAPER.FEAT_DIM",
        "0",
        "MODEL.HEADS.PAPER.CLASSIFIER_HIDDEN",
        hidden,
    ]


#: narrow PTL cells for the tiny CIFAR model
NARROW_PTL = ["MODEL.PTL.CHANNEL_RATIO", "0.25", "MODEL.PTL.LAST_CELL_CHANNELS", "8"]


def cifar_run(root, out) -> list:
    """Overrides of a CPU run on the ``cifar10`` tree under ``root``, writing into ``out``."""
    return [
        "DATASETS.TRAIN",
        "['cifar10']",
        "DATASETS.TEST",
        "['cifar10']",
        "DATASETS.ROOT",
        str(root),
        "OUTPUT_DIR",
        str(out),
        "DEVICE",
        "cpu",
        "DATALOADER.NUM_WORKERS",
        "0",
    ]


# Small, fast settings for end-to-end runs on the CPU: the model, input and solver ...
TINY_RUN = [
    "MODEL.BACKBONE.NAME",
    "resnet18",
    "INPUT.SIZE_TRAIN",
    "[32, 16]",
    "INPUT.SIZE_TEST",
    "[32, 16]",
    "INPUT.PADDING",
    "2",
    "SOLVER.IMS_PER_BATCH",
    "8",
    "DATALOADER.NUM_INSTANCES",
    "2",
    "DATALOADER.NUM_WORKERS",
    "0",
    "SOLVER.MAX_EPOCHS",
    "2",
    "SOLVER.STEPS",
    "[1]",
    "SOLVER.BASE_LR",
    "0.05",
    "TEST.IMS_PER_BATCH",
    "16",
    "DEVICE",
    "cpu",
]
# ... on the tiny Market-1501 tree (tests/conftest.py: market_root)
TINY_OPTS = ["DATASETS.TRAIN", "['market1501']", "DATASETS.TEST", "['market1501']"] + TINY_RUN


@pytest.fixture
def tiny_opts(market_root, tmp_path):
    return TINY_OPTS + ["DATASETS.ROOT", market_root, "OUTPUT_DIR", str(tmp_path / "out")]
