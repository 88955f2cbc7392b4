"""The Table VII configs: one per (dataset, model) cell, the DenseNet CIFAR recipe in each."""

import glob
import os

import pytest

from reidbox.config import load_config

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "configs")
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "cifar10*", "*.yml")))


def test_table_vii_has_every_cell():
    names = {os.path.relpath(p, ROOT) for p in CONFIGS}
    for dataset, suffix in (("cifar10", ""), ("cifar100", ""), ("cifar100", "_plus")):
        for model in ("densenet100", "ptl_densenet100", "ptlv2_densenet100"):
            assert f"{dataset}/{model}{suffix}.yml" in names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_config_states_the_recipe(path):
    cfg = load_config(path)
    name = os.path.basename(path)
    dataset = os.path.basename(os.path.dirname(path))
    assert cfg.TASK == "classification"
    assert cfg.DATASETS.TRAIN == cfg.DATASETS.TEST == [dataset]
    assert cfg.OUTPUT_DIR == f"output/{dataset}/{name[:-4]}"
    assert cfg.MODEL.BACKBONE.NAME == "densenet100_cifar" and not cfg.MODEL.BACKBONE.PRETRAINED
    assert cfg.MODEL.BACKBONE.LAST_STRIDE == 2  # 32 -> 8, the published network
    s = cfg.SOLVER
    assert (s.OPTIMIZER, s.BASE_LR, s.MOMENTUM, s.NESTEROV, s.WEIGHT_DECAY) == (
        "SGD",
        0.1,
        0.9,
        True,
        1e-4,
    )
    assert (s.IMS_PER_BATCH, s.MAX_EPOCHS, s.SCHEDULER, list(s.STEPS), s.GAMMA) == (
        64,
        300,
        "multistep",
        [150, 225],
        0.1,
    )
    assert cfg.MODEL.LOSSES.NAMES == ["cross_entropy"] and cfg.MODEL.LOSSES.CE.EPSILON == 0.0
    plus = name.endswith("_plus.yml")
    assert (cfg.INPUT.PADDING, cfg.INPUT.FLIP_PROB) == ((4, 0.5) if plus else (0, 0.0))
    assert cfg.MODEL.BACKBONE.DROP_RATE == (0.0 if plus else 0.2)
    assert cfg.INPUT.PIXEL_MEAN[0] == (0.4914 if dataset == "cifar10" else 0.5071)
    if name.startswith("densenet100"):
        assert cfg.MODEL.META_ARCHITECTURE == "classifier"
    else:
        assert cfg.MODEL.META_ARCHITECTURE == "paper_classifier" and cfg.MODEL.PTL.ENABLED
        assert cfg.MODEL.PTL.CELL == ("v2" if name.startswith("ptlv2") else "v1")
        assert len(cfg.MODEL.HEADS.PAPER.CLASSIFIER_HIDDEN) == 1  # two linear layers
        assert cfg.MODEL.PTL.STATE_MODE == "carry"
