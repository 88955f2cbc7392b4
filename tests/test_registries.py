"""Contract tests over every registry entry (as timm's tests iterate its model registry).

A component registered later (built-in or plugin) is covered by adding it to the registry:
every backbone meets the ``StagedBackbone`` stage contract, every loss returns a finite scalar
under its name, every meta-architecture builds, trains a step and exports, every dataset
declares its task.
"""

import math

import pytest
import torch

import reidbox.data  # noqa: F401  (registrations)
import reidbox.modeling  # noqa: F401  (registrations)
from reidbox.config import load_config
from reidbox.export import export_model
from reidbox.modeling import ModelOutput, build_losses, build_model, model_display_name
from reidbox.modeling.backbones import StagedBackbone, build_backbone
from reidbox.modeling.zoo import backbone_names, default_last_stride
from reidbox.config.loader import ARCH_ALIASES
from reidbox.registry import DATASETS, LOSSES, META_ARCHS

# Entries that take more than a few seconds on a CPU are `slow` (CI runs them): DenseNet-161
# (~27M parameters), DenseNet-BC-100 (48 layers a block), MGN (three copies of layer3/layer4);
# the default run keeps one plain and one PTL meta-architecture (a step + a TorchScript trace
# is several seconds each), new entries are in it until listed here.
HEAVY = {
    "densenet161",
    "resnet50_ibn_a",
    "resnet50_ibn_b",
    "densenet100_cifar",
    "mgn",
    "mgn_ptl",
    "std",
    "classifier",
    "ptl_classifier",
    "paper_classifier",
}


def _slow_if_heavy(names):
    return [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in names]


@pytest.mark.parametrize("name", _slow_if_heavy(backbone_names()))
def test_backbone_meets_the_stage_contract(name):
    torch.manual_seed(0)
    b = build_backbone(name, pretrained=False, last_stride=default_last_stride(name))
    assert isinstance(b, StagedBackbone)
    specs = [b.stem_spec] + list(b.stage_specs)
    assert len(b.stage_names) == len(b.stages) == len(b.stage_specs) >= 2
    assert [s.name for s in b.stage_specs] == b.stage_names
    assert len(set(b.stage_names)) == len(b.stage_names)
    assert all(s.channels > 0 and s.stride >= 1 for s in specs)
    assert all(x.stride <= y.stride for x, y in zip(specs, specs[1:]))  # never upsamples
    assert b.out_channels == b.stage_specs[-1].channels
    # the measured specs hold at another input size (64 x 32, what tests train on)
    b.eval()
    x = torch.randn(1, 3, 64, 32)
    with torch.no_grad():
        taps = b.forward_taps(x)
        out = b(x)
    assert len(taps) == len(specs)
    for t, s in zip(taps, specs):
        assert t.shape == (1, s.channels, 64 // s.stride, 32 // s.stride), (s, t.shape)
    assert torch.equal(out, taps[-1])


def _output(num_classes=3, batch=4, dim=8):
    torch.manual_seed(0)
    feats = torch.randn(batch, dim, requires_grad=True)
    return ModelOutput(
        features=feats,
        # cosines (in [-1, 1]), which every classifier loss accepts, the margin losses need
        logits=(torch.rand(batch, num_classes) * 2 - 1).requires_grad_(),
        extras={"teacher_features": torch.randn(batch, dim), "cosine_logits": True},
    )


@pytest.mark.parametrize("name", LOSSES.names())
def test_loss_returns_a_named_finite_scalar(name):
    cfg = load_config(None, ["MODEL.LOSSES.NAMES", f"['{name}']", "MODEL.STD.LAMBDA", "0.5"])
    losses, weights = build_losses(cfg)
    assert list(losses) == [name] and math.isfinite(weights[name])
    out = _output()
    value = losses[name](out, torch.tensor([0, 0, 1, 1]))
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    assert out.features.grad is not None or out.logits.grad is not None


def _arch_opts(name):
    opts = [
        "MODEL.META_ARCHITECTURE",
        name,
        "MODEL.BACKBONE.NAME",
        "resnet18",
        "MODEL.BACKBONE.PRETRAINED",
        "False",
        "MODEL.WEIGHTS",
        "",
        "MODEL.MGN.FEAT_DIM",
        "16",
        "MODEL.HEADS.PAPER.FEAT_DIM",
        "16",
    ]
    if name == "std":  # no teacher: plain fine-tuning of the student (LAMBDA 0)
        opts += ["MODEL.LOSSES.NAMES", "['std']", "MODEL.STD.LAMBDA", "0.0"]
    elif name in ("classifier", "ptl_classifier", "paper_classifier"):
        opts += [
            "MODEL.LOSSES.NAMES",
            "['cross_entropy']",
            "MODEL.HEADS.PAPER.CLASSIFIER_HIDDEN",
            "[16]",
        ]
    return opts


@pytest.mark.parametrize("name", _slow_if_heavy(META_ARCHS.names() + list(ARCH_ALIASES)))
def test_meta_arch_builds_trains_a_step_and_exports(name, tmp_path):
    """Every registered meta-architecture and every config alias (``ptl``: one with PTL)."""
    torch.manual_seed(0)
    model = build_model(load_config(None, _arch_opts(name)), num_classes=3)
    _train_step_and_export(model, tmp_path / f"{name}.pt")
    assert model_display_name(name, "resnet18")


# Every backbone, plain (the BNNeck baseline) and with PTL's side network. A step + a
# TorchScript trace is seconds each (OSNet's many small modules: ~15 s), so the default run
# keeps the smallest OSNet and one timm network with PTL (the plain path is the baseline's,
# run above on resnet18); the rest run in the slow suite (tests/modeling/test_backbone_zoo.py
# builds the four backbones plain and +PTL in the default run).
FAST_ZOO = {("osnet_x0_25", "ptl"), ("timm:convnext_atto", "ptl")}
ZOO = [
    (n, a) if (n, a) in FAST_ZOO else pytest.param(n, a, marks=pytest.mark.slow)
    for n in backbone_names()
    for a in ("baseline", "ptl")
]


@pytest.mark.parametrize("name,arch", ZOO)
def test_backbone_trains_plain_and_with_ptl_and_exports(name, arch, tmp_path):
    torch.manual_seed(0)
    opts = _arch_opts(arch)
    opts[opts.index("MODEL.BACKBONE.NAME") + 1] = name
    opts += ["MODEL.BACKBONE.LAST_STRIDE", str(default_last_stride(name))]
    model = build_model(load_config(None, opts), num_classes=3)
    _train_step_and_export(model, tmp_path / "model.pt")


def _train_step_and_export(model, path):
    """One SGD step moves the weights; eval features are finite; the TorchScript export gives
    the same (L2-normalised) features."""
    images, targets = torch.randn(4, 3, 64, 32), torch.tensor([0, 0, 1, 1])
    model.train()
    losses = model.compute_losses(model(images), targets)
    assert losses and all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    opt.zero_grad()
    sum(losses.values()).backward()
    opt.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    model.eval()
    with torch.no_grad():
        feat = model(images)
    assert feat.dim() == 2 and feat.shape[0] == 4 and torch.isfinite(feat).all()
    path = export_model(model, "torchscript", str(path), input_size=(64, 32))
    loaded = torch.jit.load(path)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(images), torch.nn.functional.normalize(model(images), dim=1)
        )


@pytest.mark.parametrize("name", DATASETS.names())
def test_dataset_declares_its_task(name):
    assert getattr(DATASETS.get(name), "task", None) in ("reid", "classification")


def test_meta_archs_name_themselves_in_result_tables():
    # what visualization/results.py spelled out per meta-architecture name
    want = {
        "baseline": "r50",
        "mgn": "MGN",
        "std": "r50+STD",
        "classifier": "r50",
        "paper_classifier": "r50",
        # the aliases, as an earlier run's config.yaml may still name them
        "ptl": "r50+PTL [paper head]",
        "mgn_ptl": "MGN+PTL",
        "ptl_classifier": "r50+PTL",
    }
    assert {n: model_display_name(n, "r50") for n in [*META_ARCHS, *ARCH_ALIASES]} == want
    # the switch and the head, as a config names them
    assert model_display_name("baseline", "r50", ptl=True) == "r50+PTL"
    assert model_display_name("baseline", "r50", head="paper") == "r50 [paper head]"
    assert model_display_name("mgn", "r50", ptl=True) == "MGN+PTL"
    assert model_display_name("someday", "r50") == "someday/r50"
