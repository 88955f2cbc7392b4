"""MGN and MGN+PTL built from the registered ResNet StagedBackbone."""

import pytest
import torch

from reidbox.config import load_config
from reidbox.modeling import ModelOutput, build_model
from reidbox.modeling.backbones import build_backbone
from reidbox.modeling.meta_arch import MGN
from reidbox.config.loader import ARCH_ALIASES
from reidbox.registry import META_ARCHS

SIZE = (96, 32)


def _model(arch="mgn", *opts, num_classes=6):
    torch.manual_seed(0)
    cfg = load_config(
        None,
        [
            "MODEL.META_ARCHITECTURE",
            arch,
            "MODEL.BACKBONE.NAME",
            "resnet18",
            "MODEL.LOSSES.NAMES",
            "['cross_entropy', 'triplet']",
            *opts,
        ],
    )
    return build_model(cfg, num_classes=num_classes)


def _x(b=4, seed=0):
    return torch.randn(b, 3, *SIZE, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("arch", ["mgn", "mgn_ptl"])
def test_mgn_outputs_losses_and_backward(arch):
    assert arch in META_ARCHS or arch in ARCH_ALIASES
    model = _model(arch).train()
    assert (model.ptl is not None) == (arch == "mgn_ptl")
    out = model(_x())
    assert isinstance(out, ModelOutput)
    assert len(out.logits) == 8 and all(z.shape == (4, 6) for z in out.logits)
    trip = out.extras["triplet_features"]
    assert len(trip) == 3 and all(f.shape == (4, 256) for f in trip)
    assert out.features.shape == (4, 8 * 256)
    # The first three 256-d blocks of the feature are the global (triplet) features.
    torch.testing.assert_close(out.features[:, :256], trip[0])
    losses = model.compute_losses(out, torch.tensor([0, 0, 1, 1]))
    assert set(losses) == {"cross_entropy", "triplet"}
    sum(losses.values()).backward()
    assert model.branches[2][1][0].conv1.weight.grad is not None
    assert model.eval()(_x()).shape == (4, 2048)


def test_branch_strides_and_shared_weights():
    model = _model()
    assert model.branch_strides == [32, 16, 16]  # global branch keeps layer4's stride 2
    assert model.backbone.stage_names == ["layer1", "layer2", "layer3_0"]
    assert len(model.reductions) == 1 and len(model.classifiers) == 8
    # Branches start from the same (pre-trained) layer4 weights but are separate copies.
    w = [b[1][0].conv1.weight for b in model.branches]
    assert torch.equal(w[0], w[1]) and w[0].data_ptr() != w[1].data_ptr()
    separate = _model("mgn", "MODEL.MGN.SHARED_REDUCTION", "False")
    assert len(separate.reductions) == 8
    assert model.ptl is None and model.ptl_state_info() is None  # plain: no cells, no state


@pytest.mark.slow
def test_mgn_builds_on_the_registered_resnet50():
    cfg = load_config(None, ["MODEL.META_ARCHITECTURE", "mgn"])
    model = build_model(cfg, num_classes=751)
    n = sum(p.numel() for p in model.parameters()) / 1e6
    assert 60 < n < 75  # the paper quotes 66m for MGN
    assert model.branch_strides == [32, 16, 16]


def test_mgn_ptl_cells_per_branch_and_state():
    model = _model("mgn_ptl").train()
    ptl = model.ptl
    assert [c.stride for c in ptl.out_cells] == [2, 1, 1]
    assert len(ptl.fuses) == 4  # beside stem, layer1, layer2, layer3[0]
    assert model.reductions[0][0].in_channels == 512 + ptl.out_channels
    a, b = _x(seed=1), _x(seed=2)
    with torch.no_grad():
        model.reset_latent_state()
        fresh = model(b).features
        model.reset_latent_state()
        model(a)
        carried = model(b).features
        assert not torch.allclose(fresh, carried)
        keys = set(model.state_dict())
        assert not any("latent" in k for k in keys)
        model.eval()
        f1 = model(b)
        model.reset_latent_state()
        torch.testing.assert_close(model(b), f1)
    assert model.ptl_state_info()["cell"] == "v1"


def test_mgn_ptl_explicit_code_channels():
    model = _model(
        "mgn_ptl",
        "MODEL.PTL.CELL_CHANNELS",
        "[32, 64, 256, 512, 128]",
        "MODEL.PTL.FUSE_CHANNELS",
        "[64, 128, 256, 512]",
    )
    assert [f[0].out_channels for f in model.ptl.fuses] == [64, 128, 256, 512]
    assert [c.out_channels for _, c in model.ptl.named_cells()] == [32, 64, 256, 512, 128, 128, 128]
    with pytest.raises(ValueError, match="CELL_CHANNELS needs 5"):
        _model("mgn_ptl", "MODEL.PTL.CELL_CHANNELS", "[32, 64]")


def test_mgn_rejects_a_non_resnet_backbone():
    with pytest.raises(ValueError, match="ResNet-style"):
        MGN(build_backbone("densenet121"), num_classes=3)
