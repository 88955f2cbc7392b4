"""Fixtures of the slow real-path tests (stand-in data, a stand-in STD teacher)."""

from __future__ import annotations

import os
from typing import List

import pytest

from reidbox.config import load_config
from reidbox.engine import runner

from .stand_ins import COMMON, REPO, Data


@pytest.fixture(scope="session")
def stand_in_data(tmp_path_factory) -> Data:
    """Dataset roots written on demand for the slow real-path tests (one per session)."""
    return Data(str(tmp_path_factory.mktemp("matrix_data")))


@pytest.fixture(scope="session")
def stand_in_teacher(tmp_path_factory, stand_in_data) -> List[str]:
    """A stand-in teacher for STD configs: a tiny PTL ResNet-18 run, trained one epoch."""
    out = str(tmp_path_factory.mktemp("teacher"))
    base = load_config(
        os.path.join(REPO, "configs", "demo", "ptl.yml"),
        COMMON
        + [
            "DATASETS.TRAIN",
            "['market1501']",
            "DATASETS.TEST",
            "['market1501']",
            "SOLVER.IMS_PER_BATCH",
            "8",
        ],
    )
    _, opts = stand_in_data.root(base, ["market1501"])
    cfg = load_config(
        os.path.join(REPO, "configs", "demo", "ptl.yml"),
        COMMON
        + opts
        + [
            "DATASETS.TRAIN",
            "['market1501']",
            "DATASETS.TEST",
            "['market1501']",
            "OUTPUT_DIR",
            out,
            "SOLVER.IMS_PER_BATCH",
            "8",
            "INPUT.SIZE_TRAIN",
            "[64, 32]",
            "INPUT.SIZE_TEST",
            "[64, 32]",
        ],
    )
    runner.train(cfg, progress=False)
    return [
        "MODEL.STD.TEACHER_CONFIG",
        os.path.join(out, "config.yaml"),
        "MODEL.STD.TEACHER_WEIGHTS",
        os.path.join(out, "model_final.pth"),
    ]
