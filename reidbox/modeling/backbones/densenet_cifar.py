"""DenseNet-BC for 32x32 inputs (Huang et al. 2017, CIFAR variant) as a :class:`StagedBackbone`.

CIFAR stem: one 3x3 convolution (3 -> 2k channels, stride 1, no BN/ReLU: every dense layer starts
with its own BN-ReLU). Three dense blocks of ``(depth - 4) / 6`` bottleneck layers each
(BN-ReLU-1x1 conv to 4k, BN-ReLU-3x3 conv to k), separated by transitions (BN-ReLU-1x1 conv that
halves the channels, 2x2 average pooling). The last stage ends with BN + ReLU, so global average
pooling and a linear layer on its output is the paper's network.

Dropout (``drop_rate`` > 0) follows the DenseNet reference recipe (the authors' Torch code,
``addLayer`` / ``addTransition``): after **every** convolution of the dense layers and of the
transitions, i.e. after both the 1x1 and the 3x3 conv of a bottleneck layer and after the
transition's 1x1 conv (before its pooling): 2 x 48 + 2 = 98 dropout layers in DenseNet-BC-100.
(torchvision's dense layer drops only after its 3x3 conv, 48 places; not used here.)

DenseNet-BC-100, k = 12: 16 layers per block, channels 24 -> 216 | 108 -> 300 | 150 -> 342,
strides 1, 1, 2, 4 (stem, block1, block2, block3), 0.77m parameters before the classifier.
Module and parameter names are torchvision's (``norm1``/``conv1``/..., ``denselayerN``,
``transition``), so state dicts are interchangeable; the dropouts hold no parameters.
"""

from __future__ import annotations

from typing import List, Tuple

import torch
from torch import nn

from ...registry import BACKBONES
from .staged import StagedBackbone, check_last_stride, set_transition_stride
from ...errors import InputError


def _dropout(p: float) -> List[nn.Module]:
    return [nn.Dropout(p)] if p > 0 else []


class DenseLayer(nn.Module):
    """Bottleneck layer: BN-ReLU-1x1 conv (4k)-dropout-BN-ReLU-3x3 conv (k)-dropout."""

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int, drop_rate: float) -> None:
        super().__init__()
        mid = bn_size * growth_rate
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, mid, kernel_size=1, bias=False)
        self.drop1 = nn.Sequential(*_dropout(drop_rate))
        self.norm2 = nn.BatchNorm2d(mid)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(mid, growth_rate, kernel_size=3, padding=1, bias=False)
        self.drop2 = nn.Sequential(*_dropout(drop_rate))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, k, H, W)
        h = self.drop1(self.conv1(self.relu1(self.norm1(x))))
        return self.drop2(self.conv2(self.relu2(self.norm2(h))))


class DenseBlock(nn.ModuleDict):
    """``n`` dense layers; each sees the concatenation of the input and all earlier outputs."""

    def __init__(
        self, n: int, in_channels: int, bn_size: int, growth_rate: int, drop_rate: float
    ) -> None:
        super().__init__()
        for i in range(n):
            self[f"denselayer{i + 1}"] = DenseLayer(
                in_channels + i * growth_rate, growth_rate, bn_size, drop_rate
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C + n k, H, W)
        feats = [x]
        for layer in self.values():
            feats.append(layer(torch.cat(feats, 1)))
        return torch.cat(feats, 1)


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv-dropout-2x2 average pooling (``pool`` may be replaced by Identity)."""

    def __init__(self, in_channels: int, out_channels: int, drop_rate: float) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        if drop_rate > 0:
            self.drop = nn.Dropout(drop_rate)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


def densenet_bc_cifar(
    depth: int = 100,
    growth_rate: int = 12,
    compression: float = 0.5,
    drop_rate: float = 0.0,
    bn_size: int = 4,
    last_stride: int = 2,
) -> StagedBackbone:
    """DenseNet-BC of ``depth`` for CIFAR; (B, 3, 32, 32) -> (B, C, 8, 8).

    ``drop_rate``: dropout after every conv of the dense layers and transitions (0.2 in the
    DenseNet paper when training without data augmentation). ``last_stride``: 2 is the
    published network; 1 drops the last transition's pooling (the backbone contract's ReID
    option; output 16x16).
    """
    check_last_stride(last_stride, f"DenseNet-BC-{depth}")  # before any layer is built
    if depth < 10 or (depth - 4) % 6:
        raise InputError(f"DenseNet-BC depth must be 6n + 4 (e.g. 40, 100, 190), got {depth}")
    if not 0.0 < compression <= 1.0:
        raise InputError(f"DenseNet compression must be in (0, 1], got {compression}")
    if not 0.0 <= drop_rate < 1.0:
        raise InputError(f"DenseNet drop rate must be in [0, 1), got {drop_rate}")
    layers = (depth - 4) // 6
    channels = 2 * growth_rate
    stem = nn.Conv2d(3, channels, kernel_size=3, padding=1, bias=False)
    stages: List[Tuple[str, nn.Module]] = []
    for i in range(3):
        parts: List[nn.Module] = []
        if i > 0:
            out = int(channels * compression)
            transition = Transition(channels, out, drop_rate)
            if i == 2:
                set_transition_stride(transition, last_stride, f"DenseNet-BC-{depth}")
            parts.append(transition)
            channels = out
        parts.append(DenseBlock(layers, channels, bn_size, growth_rate, drop_rate))
        channels += layers * growth_rate
        if i == 2:
            parts += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        stages.append((f"denseblock{i + 1}", nn.Sequential(*parts) if len(parts) > 1 else parts[0]))
    backbone = StagedBackbone(stem, stages, probe_size=(32, 32))
    _init(backbone)
    return backbone


def _init(module: nn.Module) -> None:
    """He-normal convolutions, BN at (1, 0): the DenseNet reference initialisation."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def _registered(depth: int):
    def build(
        pretrained: bool = False, drop_rate: float = 0.0, last_stride: int = 2, **_
    ) -> StagedBackbone:
        if pretrained:
            raise InputError(
                f"densenet{depth}_cifar has no ImageNet weights (it is trained from "
                "scratch on 32x32 images); set MODEL.BACKBONE.PRETRAINED False"
            )
        return densenet_bc_cifar(
            depth, growth_rate=12, drop_rate=drop_rate, last_stride=last_stride
        )

    return build


# DenseNet-100 of Table VII (DenseNet-BC-100, k = 12); the shallower members of the same family
# (22: 3 layers per block, 10: 1) are there for CPU demos and tests.
for _depth in (10, 22, 40, 100):
    BACKBONES.register(f"densenet{_depth}_cifar")(_registered(_depth))
