"""The backbone zoo: docs/model_zoo.md's backbone table is what `tools/model_info.py --list`
prints (the doc's command, run as written); OSNet and ResNet-50-IBN have their published sizes;
ImageNet files load from the paths and caches the table names, and a missing one is one line."""

import os
import re
import shlex
import subprocess
import sys

import pytest
import torch

from reidbox.modeling.backbones import WeightsNotFoundError, build_backbone
from reidbox.modeling.zoo import backbone_names
from reidbox.utils.checkpoint import WeightsMismatchError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "model_zoo.md")


def _section():
    text = open(DOC, encoding="utf-8").read()
    return text[text.index("## Backbones") :]


def _doc_rows(heading="## Backbones"):
    """The first table after ``heading``, by backbone."""
    rows, started = {}, False
    text = open(DOC, encoding="utf-8").read()
    for line in text[text.index(heading) :].splitlines():
        if not line.startswith("|"):
            if started:
                break
            continue
        started = True
        if line.startswith("| ") and not line.startswith("| backbone"):
            cells = [c.strip() for c in line.strip("| \n").split(" | ")]
            rows[cells[0]] = cells
    return rows


@pytest.mark.slow  # over 6 s: `make test` keeps within 5 minutes
def test_doc_table_is_what_the_list_command_prints():
    (block,) = re.findall(r"```bash\n(.*?)```", _section(), flags=re.S)
    cmd = shlex.split(block.strip())
    assert cmd[:2] == ["python", "tools/model_info.py"]
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.run(
        [sys.executable] + cmd[1:], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600
    )
    assert p.returncode == 0, p.stderr
    printed = {}
    for line in p.stdout.splitlines()[1:]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) == 7:
            printed[cells[0]] = cells
    doc = _doc_rows()
    assert list(printed) == backbone_names()
    assert set(doc) == set(printed), "every backbone has one row in the doc"
    for name, (n, params, gmacs, size, stride, stages, weights) in printed.items():
        assert doc[name][:7] == [n, params, gmacs, size, stride, stages, weights], name
        assert doc[name][7] == "yes"
    # the step-time note covers every backbone, plain and +PTL
    steps = _doc_rows("### CPU step time")
    assert set(steps) == set(printed)
    for cells in steps.values():
        assert re.fullmatch(r"\d+\.\d\dm \S+ \d+\.\d\dm \S+", " ".join(cells[1:])), cells


@pytest.mark.parametrize(
    "name", ["osnet_x1_0", "resnet50_ibn_a", "timm:resnet18", "timm:convnext_atto"]
)
def test_backbone_gives_finite_features_plain_and_with_ptl(name):
    from reidbox.config import load_config
    from reidbox.modeling import build_model
    from reidbox.modeling.zoo import default_last_stride

    x = torch.randn(2, 3, 64, 32)
    for arch in ("baseline", "ptl"):
        opts = ["MODEL.META_ARCHITECTURE", arch, "MODEL.BACKBONE.NAME", name]
        opts += ["MODEL.BACKBONE.LAST_STRIDE", str(default_last_stride(name))]
        torch.manual_seed(0)
        model = build_model(load_config(None, opts), num_classes=3).eval()
        with torch.no_grad():
            feat = model(x)
        assert feat.shape == (2, 512 if arch == "ptl" else model.backbone.out_channels)
        assert torch.isfinite(feat).all() and feat.abs().sum() > 0
        if arch == "ptl":  # the side network taps the stem and every stage but the last
            assert len(model.ptl.fuses) == len(model.backbone.stage_specs)


def test_osnet_and_ibn_have_their_published_sizes():
    with torch.device("meta"):  # shapes only: counting needs no memory
        osnet = build_backbone("osnet_x1_0")
        ibn = build_backbone("resnet50_ibn_a")
        ibn_b = build_backbone("resnet50_ibn_b")
    fc512 = 512 * 512 + 512 + 2 * 512  # the paper's fc 512 (the head's Linear + BN)
    total = sum(p.numel() for p in osnet.parameters()) + fc512
    assert abs(total / 2.2e6 - 1) < 0.05, total  # Zhou et al. 2019, Table 1: 2.2m
    assert abs(sum(p.numel() for p in ibn.parameters()) / 23.5e6 - 1) < 0.05
    # IBN-a: half InstanceNorm in the first norm of every layer1-3 bottleneck, none in layer4
    norms = [type(b.bn1).__name__ for s in ibn.stages for b in s]
    assert norms == ["IBN"] * 13 + ["BatchNorm2d"] * 3
    assert isinstance(ibn_b.stem[1], torch.nn.InstanceNorm2d)
    assert [hasattr(b, "IN") for b in ibn_b.stages[0]] == [False, False, True]


@pytest.mark.parametrize("name", ["osnet_x0_25", "resnet50_ibn_b"])
def test_imagenet_file_loads_from_the_cache_the_table_names(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    with pytest.raises(WeightsNotFoundError) as e:
        build_backbone(name, pretrained=True)
    from reidbox.modeling.zoo import weights_file

    expected = weights_file(name).replace("$TORCH_HOME", str(tmp_path / "th"))
    msg = str(e.value)
    assert expected in msg and "MODEL.BACKBONE.WEIGHTS" in msg and "https://" in msg
    assert "\n" not in msg
    # the file as the publishing library lays it out: the network's own state dict (plus the
    # ImageNet classifier, which is skipped) at that path
    torch.manual_seed(1)
    source = _imagenet_net(name)
    state = dict(source.state_dict(), **{"fc.weight": torch.zeros(1000, 8)})
    os.makedirs(os.path.dirname(expected), exist_ok=True)
    torch.save(state, expected)
    b = build_backbone(name, pretrained=True, last_stride=2).eval()  # the published strides
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(b(x), _features(source.eval(), x))


def _imagenet_net(name):
    from reidbox.modeling.backbones import ibn, osnet

    if name.startswith("osnet"):
        return osnet.OSNet(osnet.WIDTHS[name])
    return ibn.resnet50_ibn(name[-1])


def _features(net, x):
    """The source network's last feature map (OSNet: its forward; ResNet: without the head)."""
    if not hasattr(net, "layer4"):
        return net(x)
    trunk = [net.conv1, net.bn1, net.relu, net.maxpool, net.layer1, net.layer2, net.layer3]
    return torch.nn.Sequential(*trunk, net.layer4)(x)


def test_timm_weights_load_from_a_file_and_a_wrong_file_is_one_line(tmp_path):
    import timm

    torch.manual_seed(2)
    source = timm.create_model("resnet18")
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    b = build_backbone("timm:resnet18", pretrained=True, weights=str(path))
    torch.testing.assert_close(b.stem[0].weight, source.conv1.weight)
    other = tmp_path / "other.pth"
    torch.save(timm.create_model("resnet10t").state_dict(), other)
    with pytest.raises(WeightsMismatchError, match="does not fit timm:resnet18"):
        build_backbone("timm:resnet18", pretrained=True, weights=str(other))
    with pytest.raises(WeightsNotFoundError, match="huggingface.co/timm/resnet18"):
        build_backbone("timm:resnet18", pretrained=True)


def test_timm_refusals_are_one_line():
    from reidbox.errors import UserError

    cases = {
        "timm:no_such_net": "timm has no model",
        "timm:vit_tiny_patch16_224": "reidbox takes timm CNNs",
    }
    for name, words in cases.items():
        with pytest.raises(UserError, match=words) as e:
            build_backbone(name, last_stride=2)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="MODEL.BACKBONE.LAST_STRIDE 2"):
        build_backbone("timm:convnext_atto", last_stride=1)
