"""PTL on equal terms: ``MODEL.PTL.ENABLED`` switches the side network on any ReID model, and the
two twins differ only there (``ptl.*`` and the head's layers that read the joined vector)."""

import glob
import os

import pytest
import torch

from reidbox.config import ConfigError, load_config
from reidbox.config.loader import packaged_config_dir
from reidbox.modeling import build_model
from reidbox.utils.checkpoint import WeightsMismatchError, load_state_into

CONFIGS = packaged_config_dir()


def _shipped_ptl_configs():
    out = []
    for path in sorted(glob.glob(os.path.join(CONFIGS, "**", "*.yml"), recursive=True)):
        rel = os.path.relpath(path, CONFIGS)
        if rel.startswith(("_base_", "chains")):
            continue
        try:
            cfg = load_config(path)
        except ConfigError:
            continue  # fragments that need a chain around them
        if cfg.MODEL.PTL.ENABLED:
            out.append(rel)
    return out


PTL_CONFIGS = _shipped_ptl_configs()


def _meta_model(cfg, num_classes=1041):
    with torch.device("meta"):
        return build_model(cfg, num_classes, pretrained=False)


def _shapes(model):
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def test_every_family_of_ptl_config_is_found():
    assert len(PTL_CONFIGS) >= 15
    assert {"demo/ptl.yml", "msmt17/ptl_d161.yml", "market1501/mgn_ptl.yml"} <= set(PTL_CONFIGS)
    assert any(c.startswith("cifar10/") for c in PTL_CONFIGS)


@pytest.mark.parametrize("config", PTL_CONFIGS)
def test_enabled_false_builds_the_twin(config):
    """The twins share every tensor name and shape except the side network's (``ptl.*``, only
    in the PTL twin) and the layers that read the joined vector (``side_join``)."""
    cfg = load_config(os.path.join(CONFIGS, config))
    with_cells = _meta_model(cfg)
    plain = _meta_model(load_config(os.path.join(CONFIGS, config), ["MODEL.PTL.ENABLED", "False"]))
    a, b = _shapes(with_cells), _shapes(plain)
    assert getattr(plain, "ptl", None) is None and with_cells.ptl is not None
    assert set(a) - set(b) == {k for k in a if k.startswith("ptl.")} != set()
    assert set(b) <= set(a)
    join = with_cells.side_join()
    differing = {k for k in b if a[k] != b[k]}
    assert differing and differing <= set(join), config
    for k in differing:  # wider by the side network's width along the declared dim only
        dim, _ = join[k]
        assert [x for i, x in enumerate(a[k]) if i != dim] == [
            x for i, x in enumerate(b[k]) if i != dim
        ]
        assert a[k][dim] - b[k][dim] == with_cells.ptl.out_channels


@pytest.mark.parametrize(
    "config, params_m",
    [("msmt17/ptl_r50.yml", 35.7), ("msmt17/ptl_d161.yml", 43.6), ("market1501/mgn_ptl.yml", 81.5)],
)
def test_paper_configs_keep_their_parameter_counts(config, params_m):
    model = _meta_model(load_config(os.path.join(CONFIGS, config)), num_classes=1041)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 1) == params_m


def test_the_demos_ptl_twin_is_the_demos_plain_model_tensor_for_tensor():
    torch.manual_seed(0)
    twin = build_model(
        load_config(os.path.join(CONFIGS, "demo/ptl.yml"), ["MODEL.PTL.ENABLED", "False"]), 10
    )
    torch.manual_seed(0)
    plain = build_model(load_config(os.path.join(CONFIGS, "demo/baseline.yml")), 10)
    a, b = twin.state_dict(), plain.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)


def _tiny(*opts):
    base = ["MODEL.BACKBONE.NAME", "resnet18", "INPUT.SIZE_TEST", "[64, 32]"]
    return load_config(None, base + list(opts))


@pytest.mark.parametrize("head", [["MODEL.HEADS.NAME", "paper"], ["MODEL.HEADS.NAME", "embedding"]])
def test_a_plain_file_loads_into_its_ptl_twin_which_starts_as_the_plain_model(head):
    torch.manual_seed(0)
    plain = build_model(_tiny(*head), 7).eval()
    torch.manual_seed(1)
    twin = build_model(_tiny(*head, "MODEL.PTL.ENABLED", "True"), 7).eval()
    with pytest.raises(WeightsMismatchError, match="missing: ptl"):  # not a PTL model's file
        load_state_into(twin, plain.state_dict(), "plain.pth")
    rep = load_state_into(twin, plain.state_dict(), "plain.pth", twin=True)  # a starting point
    assert rep.fits and rep.side and all(k.startswith("ptl.") for k in rep.side)
    assert "side network fresh" in rep.counts()
    own = twin.state_dict()
    for k, v in plain.state_dict().items():
        if own[k].shape == v.shape:
            assert torch.equal(own[k], v), k
        else:  # widened: the plain part copied, the side part neutral
            dim, fill = twin.side_join()[k]
            assert torch.equal(own[k].narrow(dim, 0, v.shape[dim]), v)
            rest = own[k].narrow(dim, v.shape[dim], own[k].shape[dim] - v.shape[dim])
            assert torch.all(rest == fill)
    x = torch.randn(3, 3, 64, 32)
    with torch.no_grad():
        f_plain, f_twin = plain(x), twin(x)
    if head[1] == "paper":  # the cells enter with weight zero: the same feature
        torch.testing.assert_close(f_twin, f_plain)
    else:  # BN neck, no embedding: the joined vector is the feature; its plain part is equal
        torch.testing.assert_close(f_twin[:, : f_plain.shape[1]], f_plain)


def test_cell_pooling_is_independent_of_the_backbones_pooling():
    torch.manual_seed(0)
    mx = build_model(_tiny("MODEL.PTL.ENABLED", "True", "MODEL.PTL.CELL_POOLING", "max"), 3)
    torch.manual_seed(0)
    av = build_model(_tiny("MODEL.PTL.ENABLED", "True", "MODEL.PTL.CELL_POOLING", "avg"), 3)
    assert isinstance(mx.cell_pool, torch.nn.AdaptiveMaxPool2d)
    assert isinstance(av.cell_pool, torch.nn.AdaptiveAvgPool2d)
    assert isinstance(mx.head.pool, torch.nn.AdaptiveAvgPool2d)  # HEADS.POOLING stays avg
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        assert not torch.allclose(mx.eval()(x), av.eval()(x))


@pytest.mark.parametrize(
    "opts, says",
    [
        (["MODEL.PTL.CELL_POOLING", "mean"], r"MODEL.PTL.CELL_POOLING.*one of avg, max"),
        (["MODEL.HEADS.NAME", "bnneck"], r"MODEL.HEADS.NAME.*one of embedding, paper"),
        (["MODEL.PTL.FEAT_DIM", "256"], r"MODEL.HEADS.PAPER.FEAT_DIM"),
    ],
)
def test_bad_switch_values_are_one_line(opts, says):
    with pytest.raises(ConfigError, match=says) as e:
        load_config(None, opts)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "opts",
    [
        ["MODEL.META_ARCHITECTURE", "std", "MODEL.LOSSES.NAMES", "['std']"],
        ["MODEL.META_ARCHITECTURE", "classifier"],
    ],
)
def test_a_model_that_cannot_carry_the_side_network_refuses_it(opts):
    cfg = load_config(
        None,
        opts
        + [
            "MODEL.STD.LAMBDA",
            "0.0",
            "MODEL.BACKBONE.NAME",
            "resnet18",
            "MODEL.PTL.ENABLED",
            "True",
        ],
    )
    with pytest.raises(ConfigError, match="MODEL.PTL.ENABLED True: meta-architecture") as e:
        build_model(cfg, 3)
    assert "\n" not in str(e.value)


def test_aliases_resolve_before_later_overrides():
    cfg = load_config(None, ["MODEL.META_ARCHITECTURE", "ptl"])
    assert (cfg.MODEL.META_ARCHITECTURE, cfg.MODEL.HEADS.NAME, cfg.MODEL.PTL.ENABLED) == (
        "baseline",
        "paper",
        True,
    )
    off = load_config(
        os.path.join(CONFIGS, "market1501/mgn_ptl.yml"), ["MODEL.PTL.ENABLED", "False"]
    )
    assert off.MODEL.META_ARCHITECTURE == "mgn" and not off.MODEL.PTL.ENABLED


def test_a_former_ptl_checkpoint_loads_under_the_new_names():
    torch.manual_seed(0)
    model = build_model(_tiny("MODEL.META_ARCHITECTURE", "ptl"), 4)
    old = {
        (k[len("head.") :] if k.startswith(("head.reduction", "head.classifier")) else k): v
        for k, v in model.state_dict().items()
    }
    assert "reduction.0.weight" in old
    torch.manual_seed(1)
    again = build_model(_tiny("MODEL.META_ARCHITECTURE", "ptl"), 4)
    rep = load_state_into(again, old, "old_ptl.pth")
    assert rep.fits and not rep.side
    assert all(torch.equal(again.state_dict()[k], v) for k, v in model.state_dict().items())
