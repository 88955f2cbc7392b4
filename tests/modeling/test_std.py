"""STD (Eq. 4): which loss terms act for each lambda, the frozen teacher, the projection."""

import json
import os

import pytest
import torch

from reidbox.config import ConfigError, load_config, save_config
from reidbox.engine import runner
from reidbox.modeling import build_model
from reidbox.modeling.losses import STDLoss
from reidbox.modeling.output import ModelOutput
from reidbox.utils.checkpoint import atomic_save
from tests.conftest import TINY_OPTS

PTL_OPTS = [
    "MODEL.META_ARCHITECTURE",
    "ptl",
    "MODEL.HEADS.PAPER.FEAT_DIM",
    "32",
    "MODEL.HEADS.PAPER.CLASSIFIER_HIDDEN",
    "[16]",
    "MODEL.BACKBONE.NAME",
    "resnet18",
    "INPUT.SIZE_TEST",
    "[32, 16]",
    "DEVICE",
    "cpu",
]


@pytest.fixture(scope="module")
def teacher_files(tmp_path_factory):
    """A (randomly initialised) PTL teacher saved like a finished run: config + weights."""
    d = tmp_path_factory.mktemp("teacher")
    cfg = load_config(None, PTL_OPTS)
    torch.manual_seed(1)
    model = build_model(cfg, num_classes=7)
    save_config(cfg, str(d))
    atomic_save({"model": model.state_dict(), "num_classes": 7}, str(d / "model_final.pth"))
    return str(d / "config.yaml"), str(d / "model_final.pth")


def std_cfg(teacher_files, lam, extra=()):
    return load_config(
        None,
        [
            "MODEL.META_ARCHITECTURE",
            "std",
            "MODEL.LOSSES.NAMES",
            "['std']",
            "MODEL.BACKBONE.NAME",
            "resnet18",
            "MODEL.STD.LAMBDA",
            str(lam),
            "MODEL.STD.TEACHER_CONFIG",
            teacher_files[0],
            "MODEL.STD.TEACHER_WEIGHTS",
            teacher_files[1],
            "MODEL.LOSSES.CE.EPSILON",
            "0.0",
            *extra,
        ],
    )


def _step(model, images, targets, terms=None):
    model.train()
    out = model(images)
    losses = model.compute_losses(out, targets)
    if terms is not None:
        assert set(losses) == terms  # only the terms that act are computed (and logged)
    total = sum(losses.values())
    model.zero_grad(set_to_none=True)
    total.backward()
    return out, total


def test_lambda_zero_is_plain_ce_and_never_runs_the_teacher(teacher_files):
    torch.manual_seed(0)
    model = build_model(std_cfg(teacher_files, 0.0), num_classes=5)
    model.teacher_weights = "/nonexistent/never_read.pth"  # would fail if the teacher were run
    images, targets = torch.randn(4, 3, 32, 16), torch.tensor([0, 1, 2, 3])
    out, total = _step(model, images, targets, {"std_ce"})
    assert "teacher_features" not in out.extras and not model._teacher_loaded
    ce = torch.nn.functional.cross_entropy(out.logits, targets)
    assert torch.allclose(total, ce)
    assert model.head.classifier.weight.grad is not None


def test_lambda_one_is_pure_l1_and_leaves_the_classifier_alone(teacher_files):
    torch.manual_seed(0)
    model = build_model(std_cfg(teacher_files, 1.0), num_classes=5)
    images, targets = torch.randn(4, 3, 32, 16), torch.tensor([0, 1, 2, 3])
    out, total = _step(model, images, targets, {"std_l1"})
    teacher_feat = model.teacher(images)
    assert torch.allclose(out.extras["teacher_features"], teacher_feat)
    assert torch.allclose(total, (out.features - teacher_feat).abs().mean())
    assert model.head.classifier.weight.grad is None  # CE has no weight: no gradient at all
    assert model.backbone.stem[0].weight.grad.abs().sum() > 0


def test_mixed_lambda_is_eq4(teacher_files):
    torch.manual_seed(0)
    model = build_model(std_cfg(teacher_files, 0.3), num_classes=5)
    images, targets = torch.randn(4, 3, 32, 16), torch.tensor([0, 1, 2, 3])
    out, total = _step(model, images, targets, {"std_ce", "std_l1"})
    ce = torch.nn.functional.cross_entropy(out.logits, targets)
    l1 = (out.features - out.extras["teacher_features"]).abs().mean()
    assert torch.allclose(total, 0.7 * ce + 0.3 * l1)


def test_teacher_is_frozen_stateless_and_not_part_of_the_student(teacher_files):
    torch.manual_seed(0)
    model = build_model(std_cfg(teacher_files, 0.8), num_classes=5)
    teacher = model.teacher
    assert not any(k.startswith("_teacher") or "ptl" in k for k in model.state_dict())
    assert all(id(p) not in {id(q) for q in model.parameters()} for p in teacher.parameters())
    saved = torch.load(teacher_files[1], weights_only=True)["model"]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = torch.randn(2, 3, 32, 16)
    for _ in range(2):
        _step(model, torch.randn(4, 3, 32, 16), torch.tensor([0, 1, 2, 3]))
        opt.step()
    assert not teacher.training
    for k, v in teacher.state_dict().items():
        if "classifier" not in k:
            assert torch.equal(v, saved[k]), k  # loaded, then never changed (BN stats included)
    # eval mode: zero latent state, never written, so earlier batches do not change the output
    assert torch.equal(teacher(probe), teacher(probe))
    assert model.std_info()["lambda"] == pytest.approx(0.8)


def test_projection_matches_teacher_width(teacher_files):
    model = build_model(std_cfg(teacher_files, 0.8), num_classes=5)
    assert model.std_info()["teacher_feature_dim"] == 32
    assert "512->32" in model.std_info()["projection"]
    model.eval()
    assert model(torch.randn(2, 3, 32, 16)).shape == (2, 32)
    with pytest.raises(ConfigError, match="EMBED_DIM 64 differs"):
        build_model(std_cfg(teacher_files, 0.8, ["MODEL.HEADS.EMBED_DIM", "64"]), num_classes=5)


def test_clear_errors():
    with pytest.raises(ConfigError, match="TEACHER_CONFIG"):
        build_model(
            load_config(
                None,
                [
                    "MODEL.META_ARCHITECTURE",
                    "std",
                    "MODEL.LOSSES.NAMES",
                    "['std']",
                    "MODEL.BACKBONE.NAME",
                    "resnet18",
                ],
            ),
            5,
        )
    with pytest.raises(ConfigError, match="needs the 'std' loss"):
        build_model(
            load_config(
                None, ["MODEL.META_ARCHITECTURE", "std", "MODEL.BACKBONE.NAME", "resnet18"]
            ),
            5,
        )
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        STDLoss(lam=1.5)
    out = ModelOutput(features=torch.zeros(2, 3), logits=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="META_ARCHITECTURE 'std'"):
        STDLoss(lam=0.5)(out, torch.tensor([0, 1]))
    # the plain loss call is the sum of the acting terms
    out.extras["teacher_features"] = torch.ones(2, 3)
    assert STDLoss(lam=0.25)(out, torch.tensor([0, 1])).item() == pytest.approx(
        0.75 * torch.log(torch.tensor(4.0)).item() + 0.25
    )


def test_std_trains_end_to_end_and_records_lambda(teacher_files, market_root, tmp_path):
    opts = TINY_OPTS + [
        "DATASETS.ROOT",
        market_root,
        "OUTPUT_DIR",
        str(tmp_path / "std"),
        "SOLVER.MAX_EPOCHS",
        "1",
    ]
    cfg = std_cfg(teacher_files, 0.5, opts)
    runner.train(cfg, progress=False)
    with open(os.path.join(cfg.OUTPUT_DIR, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics["std"]["lambda"] == 0.5 and metrics["std"]["teacher_feature_dim"] == 32
    state = torch.load(os.path.join(cfg.OUTPUT_DIR, "model_final.pth"), weights_only=True)
    assert not any("ptl" in k for k in state["model"])  # the teacher is not saved
