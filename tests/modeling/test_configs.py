"""Every config under configs/ merges and its model builds, runs forward and backward.

``build_model`` reads only ``cfg.MODEL``, so configs with an identical MODEL section share one
model build (each config is still merged and checked on its own).
"""

import glob
import os

import pytest
import torch

from reidbox.config import load_config, save_config
from reidbox.modeling import ModelOutput, build_model
from reidbox.modeling.ptl import LatentStateStore

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "configs")
CONFIGS = sorted(
    p
    for p in glob.glob(os.path.join(ROOT, "**", "*.yml"), recursive=True)
    if os.sep + "_base_" + os.sep not in p
)
# Tiny input with the configs' aspect ratio; ImageNet weights are not needed to build.
NO_WEIGHTS = ["MODEL.BACKBONE.PRETRAINED", "False"]
# The paper's ReID tables (I-IV): their recipe is checked below.
PAPER_DIRS = {"msmt17", "market1501", "cuhk03", "dukemtmcreid"}


def _rel(p: str) -> str:
    return os.path.relpath(p, ROOT)


def test_every_paper_table_has_configs():
    names = {_rel(p) for p in CONFIGS}
    expected = {
        "msmt17/r50.yml",
        "msmt17/ptl_r50.yml",
        "msmt17/d161.yml",
        "msmt17/ptl_d161.yml",
        "market1501/d161_b32.yml",
        "market1501/d161_b90.yml",
        "market1501/ptl_d161.yml",
        "market1501/mgn.yml",
        "market1501/mgn_ptl.yml",
        "cuhk03/mgn_detected.yml",
        "cuhk03/mgn_ptl_detected.yml",
        "cuhk03/mgn_labeled.yml",
        "cuhk03/mgn_ptl_labeled.yml",
        "dukemtmcreid/mgn.yml",
        "dukemtmcreid/mgn_ptl.yml",
        "msmt17/ptl_std_d161.yml",
        "market1501/ptl_std_d161.yml",
        "market1501/mgn_ptl_code_state.yml",
        "cuhk03/mgn_ptl_code_state_detected.yml",
        "cuhk03/mgn_ptl_code_state_labeled.yml",
        "dukemtmcreid/mgn_ptl_code_state.yml",
    }
    assert expected <= names


@pytest.mark.parametrize("path", CONFIGS, ids=_rel)
def test_config_merges(path):
    cfg = load_config(path, NO_WEIGHTS)
    assert cfg.OUTPUT_DIR.startswith("output/")
    if _rel(path).split(os.sep)[0] not in PAPER_DIRS:
        return  # demo, chain and classification configs have their own recipes
    if os.path.basename(path).startswith("bot_"):  # the BNNeck baseline (Luo et al.)
        assert cfg.MODEL.BACKBONE.NAME in ("resnet50_ibn_a", "osnet_x1_0")
        assert cfg.MODEL.LOSSES.NAMES == ["cross_entropy", "triplet", "center"]
        # last stride 1 for ResNet; OSNet's published network (2) already ends at 1/16
        last = 2 if cfg.MODEL.BACKBONE.NAME.startswith("osnet") else 1
        assert (cfg.MODEL.HEADS.NECK, cfg.MODEL.BACKBONE.LAST_STRIDE) == ("bnneck", last)
        assert cfg.DATASETS.TRAIN == cfg.DATASETS.TEST and cfg.TEST.PROTOCOL == "market1501"
        return
    assert cfg.MODEL.BACKBONE.NAME in ("resnet50", "densenet161")
    assert cfg.DATASETS.TRAIN == cfg.DATASETS.TEST
    if cfg.MODEL.META_ARCHITECTURE.startswith("mgn"):
        assert cfg.INPUT.SIZE_TRAIN == [384, 128] and "triplet" in cfg.MODEL.LOSSES.NAMES
    elif cfg.MODEL.META_ARCHITECTURE == "std":  # Eq. 4: CE + L1 to the teacher's feature
        assert cfg.INPUT.SIZE_TRAIN == [256, 128] and cfg.MODEL.LOSSES.NAMES == ["std"]
    else:
        assert cfg.INPUT.SIZE_TRAIN == [256, 128] and cfg.MODEL.LOSSES.NAMES == ["cross_entropy"]


def _architecture_key(cfg) -> str:
    """The MODEL section without the latent-state settings (they change no module)."""
    model = cfg.MODEL.clone()
    model.defrost()
    for k in ("STATE_MODE", "STATE_SHAPE", "STATE_INIT"):
        model.PTL[k] = ""
    model.BACKBONE.DROP_RATE = 0.0  # a dropout probability changes no module either
    return model.dump()


def _model_groups():
    """One representative config per distinct architecture (what build_model reads)."""
    groups = {}
    for path in CONFIGS:
        groups.setdefault(_architecture_key(load_config(path, NO_WEIGHTS)), []).append(_rel(path))
    return [paths for paths in groups.values()]


@pytest.fixture(scope="module")
def small_teacher(tmp_path_factory):
    """A run folder (config.yaml + model_final.pth) of a small PTL model, standing in for the
    trained teacher that STD configs name (their real teachers are outputs of training runs)."""
    out = tmp_path_factory.mktemp("teacher")
    cfg = load_config(os.path.join(ROOT, "demo", "ptl.yml"), ["OUTPUT_DIR", str(out)])
    save_config(cfg, str(out))
    torch.save({"model": build_model(cfg, num_classes=5).state_dict()}, out / "model_final.pth")
    return [
        "MODEL.STD.TEACHER_CONFIG",
        str(out / "config.yaml"),
        "MODEL.STD.TEACHER_WEIGHTS",
        str(out / "model_final.pth"),
    ]


@pytest.mark.parametrize("paths", _model_groups(), ids=lambda ps: "+".join(ps))
def test_config_model_trains_one_step(paths, small_teacher):
    cfg = load_config(os.path.join(ROOT, paths[0]), NO_WEIGHTS)
    if cfg.MODEL.META_ARCHITECTURE == "std":
        cfg = load_config(os.path.join(ROOT, paths[0]), NO_WEIGHTS + small_teacher)
    torch.manual_seed(0)
    model = build_model(cfg, num_classes=7)
    h, w = cfg.INPUT.SIZE_TRAIN
    triplet = "triplet" in cfg.MODEL.LOSSES.NAMES
    targets = torch.tensor([0, 0, 1, 1] if triplet else [0, 1])  # triplet needs pairs
    x = torch.randn(len(targets), 3, h // 4, w // 4)  # 64x32 or 96x32
    model.train()
    out = model(x)
    assert isinstance(out, ModelOutput)
    losses = model.compute_losses(out, targets)
    if cfg.MODEL.META_ARCHITECTURE == "std":  # Eq. 4's two terms, logged apart
        assert set(losses) <= {"std_ce", "std_l1"} and losses
    else:
        assert set(losses) == set(cfg.MODEL.LOSSES.NAMES)
    sum(losses.values()).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    # DistributedDataParallel (without find_unused_parameters) needs a gradient for every
    # trainable parameter in every step; a loss setting that leaves one out (STD lambda 1: the
    # classifier) must freeze it, or the second DDP step fails.
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not unused, f"trainable parameters without gradient: {unused[:5]}"
    model.eval()
    with torch.no_grad():
        assert model(x[:2]).shape[0] == 2
    for path in paths:  # every member's state settings are valid and reach the model
        p = load_config(os.path.join(ROOT, path), NO_WEIGHTS).MODEL.PTL
        if getattr(model, "ptl", None) is not None:
            model.ptl.state = LatentStateStore(p.STATE_MODE, p.STATE_SHAPE, p.STATE_INIT)
            assert model.ptl_state_info()["state_mode"] == p.STATE_MODE
            model.train()
            with torch.no_grad():
                model(x)
