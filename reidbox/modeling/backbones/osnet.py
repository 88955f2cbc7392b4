"""OSNet (Zhou et al., "Omni-Scale Feature Learning for Person Re-Identification", ICCV 2019).

Written from the paper: a 7x7 stem and max pooling, then three stages of two omni-scale
bottlenecks each (Fig. 4: a 1x1 reduction to a quarter of the width, T = 4 streams of 1..4
Lite 3x3 layers, a unified aggregation gate shared by the streams, a 1x1 expansion, a residual
connection), a 1x1 conv + 2x2 average pooling between stages, and a final 1x1 conv (Table 1).
The paper's "fc 512" after global pooling is the head's embedding here
(``MODEL.HEADS.EMBED_DIM 512``), so the backbone ends at conv5 like every other backbone.

Module names follow the layout of the ImageNet files torchreid publishes (a state dict is a
file format), so those files load as they are.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Sequence

import torch
from torch import nn

from ...registry import BACKBONES
from .staged import StagedBackbone, check_last_stride, load_imagenet_into, torch_home_file

#: width of conv1, conv2, conv3, conv4 (= conv5) per width multiplier (Table 1 and Sec. 3.3)
WIDTHS = {
    "osnet_x1_0": (64, 256, 384, 512),
    "osnet_x0_75": (48, 192, 288, 384),
    "osnet_x0_5": (32, 128, 192, 256),
    "osnet_x0_25": (16, 64, 96, 128),
}

#: torchreid's ImageNet files (Google Drive) and the name it caches each under
IMAGENET_URLS = {
    "osnet_x1_0": "https://drive.google.com/uc?id=1LaG1EJpHrxdAxKnSCJ_i0u-nbxSAeiFY",
    "osnet_x0_75": "https://drive.google.com/uc?id=1uwA9fElHOk3ZogwbeY5GkLI6QPTX70Hq",
    "osnet_x0_5": "https://drive.google.com/uc?id=16DGLbZukvVYgINws8u8deSaOqjybZ83i",
    "osnet_x0_25": "https://drive.google.com/uc?id=1rb8UN5ZzPKRc_xvtHlyDh-cSz88YX9hs",
}


def imagenet_file(arch: str) -> str:
    """Where torchreid caches ``arch``'s ImageNet file: ``$TORCH_HOME/checkpoints/``."""
    return torch_home_file("checkpoints", f"{arch}_imagenet.pth")


class ConvBN(nn.Sequential):
    """conv -> BN (-> ReLU when ``relu``); the paper's plain conv layers."""

    def __init__(self, cin: int, cout: int, k: int = 1, stride: int = 1, relu: bool = True):
        layers = [
            ("conv", nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)),
            ("bn", nn.BatchNorm2d(cout)),
        ]
        if relu:
            layers.append(("relu", nn.ReLU(inplace=True)))
        super().__init__(OrderedDict(layers))


class Lite3x3(nn.Module):
    """Lite 3x3 (Fig. 3c): pointwise 1x1 conv, depthwise 3x3 conv, BN, ReLU."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 1, bias=False)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, groups=cout, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv2(self.conv1(x))))


class AggregationGate(nn.Module):
    """Unified aggregation gate (Sec. 3.2): global average pooling, an MLP with one hidden
    layer of C/16 units and ReLU, a sigmoid; channel-wise weights (B, C, 1, 1) times the input.
    One gate is shared by every stream of a block."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)
        self.gate_activation = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.fc2(self.relu(self.fc1(self.global_avgpool(x))))
        return x * self.gate_activation(w)


class OSBlock(nn.Module):
    """Omni-scale residual bottleneck (Fig. 4): streams of exponent t = 1..4 Lite 3x3 layers."""

    def __init__(self, cin: int, cout: int, streams: int = 4, reduction: int = 4) -> None:
        super().__init__()
        mid = cout // reduction
        self.conv1 = ConvBN(cin, mid)
        # stream t has t Lite 3x3 layers: receptive field 3, 5, 7, 9 (names: conv2a..conv2d)
        for t in range(1, streams + 1):
            layers = [Lite3x3(mid, mid) for _ in range(t)]
            setattr(self, f"conv2{'abcd'[t - 1]}", layers[0] if t == 1 else nn.Sequential(*layers))
        self.streams = streams
        self.gate = AggregationGate(mid)
        self.conv3 = ConvBN(mid, cout, relu=False)
        self.downsample = ConvBN(cin, cout, relu=False) if cin != cout else None
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x)
        fused = sum(self.gate(getattr(self, f"conv2{'abcd'[t]}")(h)) for t in range(self.streams))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv3(fused) + identity)


def _stage(cin: int, cout: int, blocks: int, transition: bool) -> nn.Sequential:
    """``blocks`` OSBlocks, then (between stages) a 1x1 conv and 2x2 average pooling."""
    layers = [OSBlock(cin if i == 0 else cout, cout) for i in range(blocks)]
    if transition:
        layers.append(nn.Sequential(ConvBN(cout, cout), nn.AvgPool2d(2, stride=2)))
    return nn.Sequential(*layers)


class OSNet(nn.Module):
    """The network of Table 1 up to conv5 (its feature extractor)."""

    def __init__(self, widths: Sequence[int], blocks: Sequence[int] = (2, 2, 2)) -> None:
        super().__init__()
        c0, c1, c2, c3 = widths
        self.conv1 = ConvBN(3, c0, k=7, stride=2)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = _stage(c0, c1, blocks[0], transition=True)
        self.conv3 = _stage(c1, c2, blocks[1], transition=True)
        self.conv4 = _stage(c2, c3, blocks[2], transition=False)
        self.conv5 = ConvBN(c3, c3)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.conv1(x))
        return self.conv5(self.conv4(self.conv3(self.conv2(x))))


def osnet(arch: str, pretrained: bool = False, weights: str = "", last_stride: int = 2, **_):
    """OSNet as a :class:`StagedBackbone`: the stem is conv1 + max pooling (1/4); each stage
    starts with the previous stage's transition (as DenseNet's), so the stages' outputs are at
    1/4, 1/8 and 1/16. ``last_stride`` 2 is the published network; 1 drops the pooling of the
    transition into the last stage (its 1x1 conv stays), doubling the final map to 1/8, as
    DenseNet's last stride 1 does."""
    net = OSNet(WIDTHS[arch])
    if pretrained:
        load_imagenet_into(net, arch, IMAGENET_URLS[arch], weights or None, imagenet_file(arch))
    c2, c3 = net.conv2, net.conv3
    if check_last_stride(last_stride, arch) == 1:
        c3[-1][1] = nn.Identity()  # the 2x2 average pooling of conv3's transition
    stem = nn.Sequential(net.conv1, net.maxpool)
    stages = [
        ("conv2", nn.Sequential(*c2[:-1])),
        ("conv3", nn.Sequential(c2[-1], *c3[:-1])),
        ("conv4", nn.Sequential(c3[-1], net.conv4, net.conv5)),
    ]
    return StagedBackbone(stem, stages)


for _arch in WIDTHS:
    BACKBONES.register(_arch)(lambda arch=_arch, **kw: osnet(arch, **kw))
