"""DenseNet-BC for CIFAR: the published structure, StagedBackbone specs, PTL wrapping, heads."""

import pytest
import torch
from torch import nn

from reidbox.config import load_config
from reidbox.modeling import ModelOutput, build_model
from reidbox.modeling.backbones import build_backbone
from reidbox.modeling.backbones.densenet_cifar import densenet_bc_cifar
from tests.conftest import tiny_cifar_model


def test_densenet100_has_the_published_structure():
    b = build_backbone("densenet100_cifar", last_stride=2)
    convs = [m for m in b.modules() if isinstance(m, nn.Conv2d)]
    # depth 100 = 99 convolutions (stem, 3 x 16 bottleneck layers x 2, 2 transitions) + the FC
    assert len(convs) == 99
    # growth rate 12, compression 0.5: 24 -> 216 | 108 -> 300 | 150 -> 342
    spec = [(s.name, s.channels, s.stride) for s in [b.stem_spec, *b.stage_specs]]
    assert spec == [
        ("stem", 24, 1),
        ("denseblock1", 216, 1),
        ("denseblock2", 300, 2),
        ("denseblock3", 342, 4),
    ]
    assert convs[0].kernel_size == (3, 3) and convs[0].stride == (1, 1)  # CIFAR stem
    # DenseNet-BC-100 (k=12) has 0.8m parameters; ours without the classifier:
    assert 0.75e6 < sum(p.numel() for p in b.parameters()) < 0.78e6
    x = torch.randn(2, 3, 32, 32)
    outs = b.eval().forward_stages(x)
    assert [tuple(o.shape[1:]) for o in outs] == [(216, 32, 32), (300, 16, 16), (342, 8, 8)]
    assert (outs[-1] >= 0).all()  # the last stage ends with BN + ReLU


@pytest.mark.parametrize("depth", [0, 41, 7])
def test_bad_depth_is_rejected(depth):
    with pytest.raises(ValueError, match="6n \\+ 4"):
        densenet_bc_cifar(depth)


def test_no_imagenet_weights():
    with pytest.raises(ValueError, match="PRETRAINED False"):
        build_backbone("densenet10_cifar", pretrained=True)


def test_drop_rate_reaches_the_dense_layers():
    cfg = load_config(
        None,
        [
            "MODEL.META_ARCHITECTURE",
            "classifier",
            "MODEL.BACKBONE.NAME",
            "densenet10_cifar",
            "MODEL.BACKBONE.DROP_RATE",
            "0.2",
        ],
    )
    model = build_model(cfg, num_classes=10)
    rates = {m.p for m in model.modules() if isinstance(m, nn.Dropout)}
    assert rates == {0.2}
    model.train()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.equal(model(x).logits, model(x).logits)  # dropout active in training
        model.eval()
        assert torch.equal(model(x), model(x))


def _convs_followed_by_dropout(backbone):
    """Order in which convs and dropouts run in training: (number of dense/transition convs,
    number of those whose output goes straight into a dropout)."""
    events = []
    hooks = [
        m.register_forward_hook(lambda m, i, o: events.append(m))
        for m in backbone.modules()
        if isinstance(m, (nn.Conv2d, nn.Dropout))
    ]
    backbone.train()
    with torch.no_grad():
        backbone(torch.randn(2, 3, 32, 32))
    for h in hooks:
        h.remove()
    convs = [i for i, m in enumerate(events) if isinstance(m, nn.Conv2d)][1:]  # not the stem
    followed = [i for i in convs if i + 1 < len(events) and isinstance(events[i + 1], nn.Dropout)]
    return len(convs), len(followed)


def test_densenet100_dropout_follows_every_dense_and_transition_conv():
    """The DenseNet reference recipe: dropout after every conv of the dense layers (1x1 and
    3x3) and of the transitions: 2 x 48 + 2 = 98 places in DenseNet-BC-100 (not 48)."""
    b = build_backbone("densenet100_cifar", last_stride=2, drop_rate=0.2)
    assert sum(isinstance(m, nn.Dropout) for m in b.modules()) == 98
    assert _convs_followed_by_dropout(b) == (98, 98)
    # ... and none without dropout; the state dict is the same either way (dropouts hold none)
    plain = build_backbone("densenet100_cifar", last_stride=2)
    assert not any(isinstance(m, nn.Dropout) for m in plain.modules())
    assert plain.state_dict().keys() == b.state_dict().keys()
    assert _convs_followed_by_dropout(plain) == (98, 0)


def test_dense_layer_names_are_torchvisions():
    """Checkpoints stay interchangeable with torchvision-named DenseNet layers."""
    keys = build_backbone("densenet10_cifar", last_stride=2).state_dict().keys()
    assert any(k.endswith("denselayer1.conv1.weight") for k in keys)
    assert any(k.endswith("denselayer1.norm2.running_mean") for k in keys)
    assert "stages.1.0.conv.weight" in keys  # the first transition's 1x1 conv


def _cfg(arch, cell="v1", hidden="[16]"):
    return load_config(
        None, tiny_cifar_model(arch, cell, hidden) + ["MODEL.LOSSES.CE.EPSILON", "0.0"]
    )


@pytest.mark.parametrize(
    "arch,cell", [("classifier", "v1"), ("ptl_classifier", "v1"), ("ptl_classifier", "v2")]
)
def test_classifiers_return_logits_in_eval_and_train(arch, cell):
    torch.manual_seed(0)
    model = build_model(_cfg(arch, cell), num_classes=7)
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    model.train()
    out = model(x)
    assert isinstance(out, ModelOutput) and out.logits.shape == (4, 7)
    sum(model.compute_losses(out, y).values()).backward()
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (4, 7)
    model.train()
    probs = model.predict(x)  # eval-mode softmax, whatever mode the model is in
    torch.testing.assert_close(probs.sum(1), torch.ones(4))
    assert model.training  # predict restores the mode it found


def test_ptl_classifier_wraps_densenet_with_cells_and_two_linear_layers():
    model = build_model(_cfg("ptl_classifier", "v2"), num_classes=5)
    cells = [n for n, _ in model.ptl.named_cells()]
    # image cell + cells beside stem and block1 (block2 feeds the final cell), final cell
    assert cells == ["image_cell", "cells.0", "cells.1", "out_cells.0"]
    linears = [m for m in model.head.classifier.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(model.head.out_dim, 16), (16, 5)]
    with pytest.raises(ValueError, match="two linear layers"):
        build_model(_cfg("ptl_classifier", hidden="[16, 8]"), num_classes=5)


def test_ptl_classifier_eval_ignores_the_carried_latent_state():
    torch.manual_seed(1)
    model = build_model(_cfg("ptl_classifier", "v2"), num_classes=5)
    x = torch.randn(3, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        fresh = model(x)
        weights = {k: v.clone() for k, v in model.state_dict().items()}
        model.train()
        for _ in range(2):
            model(torch.randn(3, 3, 32, 32))  # carries a state
        assert len(model.ptl.state) > 0
        model.load_state_dict(weights)  # undo the BN running-stat updates; the state stays
        assert len(model.ptl.state) > 0
        model.eval()
        torch.testing.assert_close(model(x), fresh)


def test_last_stride_one_keeps_the_last_map_at_16():
    b = build_backbone("densenet10_cifar", last_stride=1)
    assert [s.stride for s in b.stage_specs] == [1, 2, 2]
    with pytest.raises(ValueError, match="last stride"):
        build_backbone("densenet10_cifar", last_stride=4)
