"""The PTL meta-architecture: latent state ownership, train/eval behaviour, any backbone."""

import copy

import pytest
import torch
from torch import nn

from reidbox.config import load_config
from reidbox.modeling import ModelOutput, build_model
from reidbox.modeling.backbones import StagedBackbone, build_backbone
from reidbox.modeling.build import build_losses
from reidbox.config.loader import ARCH_ALIASES
from reidbox.modeling.meta_arch import Baseline
from reidbox.registry import BACKBONES, META_ARCHS

SIZE = (64, 32)


def _cfg(*opts):
    return load_config(
        None, ["MODEL.META_ARCHITECTURE", "ptl", "MODEL.BACKBONE.NAME", "resnet18", *opts]
    )


def _model(*opts, num_classes=5):
    torch.manual_seed(0)
    return build_model(_cfg(*opts), num_classes=num_classes)


def _batches(n=3, b=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, 3, *SIZE, generator=g) for _ in range(n)]


def test_registered_and_outputs():
    assert "ptl" in ARCH_ALIASES and "ptl" not in META_ARCHS  # a switch, not a class
    model = _model()
    x = _batches(1)[0]
    out = model.train()(x)
    assert isinstance(out, ModelOutput)
    assert out.features.shape == (4, 512) and out.logits.shape == (4, 5)
    assert model.eval()(x).shape == (4, 512)
    losses = model.compute_losses(out, torch.tensor([0, 1, 2, 3]))
    assert set(losses) == {"cross_entropy"}
    # Three fully connected layers in the classifier.
    assert sum(isinstance(m, nn.Linear) for m in model.head.classifier.modules()) == 3


def test_state_carried_across_training_batches_changes_output():
    model = _model().train()
    a, b, _ = _batches()
    model.reset_latent_state()
    with torch.no_grad():
        fresh = model(b).features
        model.reset_latent_state()
        model(a)
        carried = model(b).features
    assert not torch.allclose(fresh, carried, atol=1e-6)


def test_reset_each_batch_equals_fresh_state():
    model = _model("MODEL.PTL.STATE_MODE", "reset_each_batch").train()
    a, b, c = _batches()
    with torch.no_grad():
        model.reset_latent_state()
        fresh = model(c).features
        model(a)
        model(b)
        after = model(c).features
    torch.testing.assert_close(after, fresh)
    assert len(model.ptl.state) == 0


def test_epoch_reset_restores_fresh_behaviour():
    model = _model().train()
    a, b, _ = _batches()
    with torch.no_grad():
        model.reset_latent_state()
        fresh = model(b).features
        model(a)
        assert len(model.ptl.state) == len(model.ptl.named_cells())
        model.reset_latent_state()  # what the Trainer's epoch hook calls
        assert len(model.ptl.state) == 0
        again = model(b).features
    torch.testing.assert_close(again, fresh)


def test_state_is_not_in_state_dict_nor_buffers_nor_parameters():
    model = _model().train()
    keys, n_buf, n_par = (
        set(model.state_dict()),
        len(list(model.buffers())),
        len(list(model.parameters())),
    )
    with torch.no_grad():
        for x in _batches():
            model(x)
    assert len(model.ptl.state) > 0
    assert set(model.state_dict()) == keys
    assert len(list(model.buffers())) == n_buf and len(list(model.parameters())) == n_par
    stored = [model.ptl.state.get(n) for n, _ in model.ptl.named_cells()]
    ids = {t.data_ptr() for t in model.state_dict().values()}
    assert all(t.data_ptr() not in ids for t in stored)


def test_eval_ignores_state_history_and_never_writes_it():
    model = _model().train()
    with torch.no_grad():
        for x in _batches(4):
            model(x)  # leaves a latent state and updated BN statistics behind
    weights = copy.deepcopy(model.state_dict())
    before = {n: model.ptl.state.get(n).clone() for n, _ in model.ptl.named_cells()}
    q = _batches(1, b=6, seed=7)[0]
    model.eval()
    with torch.no_grad():
        feats = model(q)
    after = {n: model.ptl.state.get(n) for n, _ in model.ptl.named_cells()}
    assert all(torch.equal(before[n], after[n]) for n in before)
    # A model with the same weights and BN statistics but no state history at all.
    twin = _model()
    twin.load_state_dict(weights)
    twin.eval()
    with torch.no_grad():
        torch.testing.assert_close(twin(q), feats)
        # ... and one whose state history is different (normal init, other batches).
        other = _model("MODEL.PTL.STATE_INIT", "normal")
        other.load_state_dict(weights)
        other.train()
        for x in _batches(2, seed=9):
            other(x)
        other.load_state_dict(weights)  # undo the BN statistics those batches changed
        torch.testing.assert_close(other.eval()(q), feats)


def test_eval_is_independent_of_batch_order_and_size():
    model = _model().train()
    with torch.no_grad():
        model(_batches(1)[0])
    model.eval()
    q = _batches(1, b=6, seed=3)[0]
    perm = torch.tensor([5, 2, 0, 4, 1, 3])
    with torch.no_grad():
        full = model(q)
        torch.testing.assert_close(model(q[perm]), full[perm], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(model(q[:2]), full[:2], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(model(q[4:5]), full[4:5], atol=1e-5, rtol=1e-4)


def test_smaller_last_batch_and_larger_batch_in_training():
    model = _model().train()
    with torch.no_grad():
        model(_batches(1, b=4)[0])
        out = model(_batches(1, b=3, seed=2)[0])
        assert out.features.shape == (3, 512)
        out = model(_batches(1, b=6, seed=3)[0])
        assert out.features.shape == (6, 512)
    assert model.ptl.state.get("image_cell").shape[0] == 6


@pytest.mark.parametrize(
    "shape,init,cell",
    [
        ("batch_mean", "zeros", "v1"),
        ("per_sample", "normal", "v1"),
        ("per_sample", "zeros", "v2"),
        ("batch_mean", "normal", "v2"),
    ],
)
def test_state_variants_train_and_backward(shape, init, cell):
    model = _model(
        "MODEL.PTL.STATE_SHAPE", shape, "MODEL.PTL.STATE_INIT", init, "MODEL.PTL.CELL", cell
    ).train()
    for x in _batches(2):
        out = model(x)
        loss = sum(model.compute_losses(out, torch.tensor([0, 0, 1, 1])).values())
        loss.backward()
    assert model.ptl.cells[0].gates.weight.grad is not None
    info = model.ptl_state_info()
    assert info == {"cell": cell, "state_mode": "carry", "state_shape": shape, "state_init": init}
    state = model.ptl.state.get("image_cell")
    if cell == "v2":
        assert isinstance(state, tuple) and len(state) == 2
    first = state[0] if cell == "v2" else state
    assert first.shape[0] == (1 if shape == "batch_mean" else 4)
    assert not first.requires_grad


def test_cells_follow_the_measured_stage_strides():
    model = _model()
    bb = model.backbone
    taps = [bb.stem_spec] + list(bb.stage_specs)
    cells = [c for _, c in model.ptl.named_cells()]
    assert len(cells) == len(taps)  # one on the image and one beside each tap
    strides = [1] + [t.stride for t in taps]
    for cell, prev, nxt in zip(cells, strides, strides[1:]):
        assert cell.stride == nxt // prev
    for fuse, tap, cell in zip(model.ptl.fuses, taps, cells):
        assert fuse[0].in_channels == tap.channels + cell.out_channels


def _odd_backbone() -> StagedBackbone:
    """A tiny made-up backbone: odd channel counts, a stride-3 stage that pools with floor."""
    stem = nn.Sequential(nn.Conv2d(3, 5, 3, stride=2, padding=1), nn.ReLU())
    stages = [
        ("a", nn.Sequential(nn.Conv2d(5, 7, 3, padding=1), nn.ReLU())),
        ("b", nn.Sequential(nn.Conv2d(7, 11, 3, padding=1), nn.AvgPool2d(3))),
        ("c", nn.Sequential(nn.Conv2d(11, 13, 3, stride=2, padding=1), nn.ReLU())),
    ]
    return StagedBackbone(stem, stages, probe_size=(48, 48))


def test_wraps_a_custom_staged_backbone_without_code_changes():
    cfg = _cfg()
    losses, weights = build_losses(cfg)
    bb = _odd_backbone()
    assert [(s.channels, s.stride) for s in bb.stage_specs] == [(7, 2), (11, 6), (13, 12)]
    model = Baseline.from_config(
        cfg, num_classes=3, backbone=bb, losses=losses, loss_weights=weights
    )
    out = model.train()(torch.randn(2, 3, 48, 24))
    assert out.logits.shape == (2, 3)
    assert [c.stride for _, c in model.ptl.named_cells()] == [2, 1, 3, 2]
    with pytest.raises(ValueError, match="divisible"):
        model.eval()(torch.randn(2, 3, 50, 26))


# DenseNet-161 is also wrapped, trained one step, by the ptl_d161 configs in test_configs.py.
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.slow) if n == "densenet161" else n
        for n in BACKBONES.names()
    ],
)
def test_ptl_wraps_every_registered_backbone(name):
    cfg = _cfg("MODEL.BACKBONE.NAME", name)
    model = build_model(cfg, num_classes=4)
    out = model.train()(torch.randn(2, 3, *SIZE))
    out.logits.sum().backward()
    assert model.eval()(torch.randn(2, 3, *SIZE)).shape == (2, model.head.out_dim)


@pytest.mark.parametrize("name", BACKBONES.names())
@pytest.mark.parametrize("last_stride", [1, 2])
def test_measured_stage_specs_match_a_dummy_forward(name, last_stride):
    bb = build_backbone(name, last_stride=last_stride).eval()
    x = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        h = bb.stem(x)
        assert (h.shape[1], 96 // h.shape[2], 64 // h.shape[3]) == (
            bb.stem_spec.channels,
            bb.stem_spec.stride,
            bb.stem_spec.stride,
        )
        outs = bb.forward_stages(x)
    for spec, o in zip(bb.stage_specs, outs):
        assert o.shape[1] == spec.channels
        assert 96 // o.shape[2] == spec.stride and 64 // o.shape[3] == spec.stride
    assert bb.stage_specs[-1].stride == bb.stage_specs[-2].stride * last_stride


def _paper_order_feature(model, images):
    """1x1 conv + BN + ReLU on the concatenated *maps*, then pooling (Fig. 2 read literally)."""
    taps = model.backbone.forward_taps(images)
    last = taps.pop()
    (y,) = model.ptl(images, taps)
    return model.head.pool(model.head.reduction(torch.cat([last, y], dim=1))).flatten(1)


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@torch.no_grad()
def test_pooling_before_the_final_conv_is_not_the_papers_linear_map():
    """docs/ptl.md: we pool, then apply the 1x1 conv + BN + ReLU (the paper's code's order).
    Only the bare 1x1 conv commutes with average pooling; with ReLU (and BN's batch statistics
    in training) the two orders are different maps, so the docs must not call them equal."""
    model = _model("MODEL.PTL.CELL_POOLING", "avg")  # both maps pooled alike
    x = _batches(1, b=4)[0]
    for mode in ("eval", "train"):
        getattr(model, mode)()
        model.reset_latent_state()
        ours = model(x).features if mode == "train" else model(x)
        model.reset_latent_state()
        taps = model.backbone.forward_taps(x)
        last = taps.pop()
        (y,) = model.ptl(x, taps)
        maps = torch.cat([last, y], dim=1)
        head = model.head
        expected = head.reduction(head.pool(maps)).flatten(1)
        torch.testing.assert_close(ours, expected)  # our order, exactly
        conv = head.reduction[0]
        torch.testing.assert_close(head.pool(conv(maps)), conv(head.pool(maps)))  # linear part
        model.reset_latent_state()
        assert _rel(ours, _paper_order_feature(model, x)) > 0.05, mode  # not the same map
