"""DenseNet-BC for 32x32 inputs (Huang et al. 2017, CIFAR variant) as a :class:`StagedBackbone`.

CIFAR stem: one 3x3 convolution (3 -> 2k channels, stride 1, no BN/ReLU: every dense layer starts
with its own BN-ReLU). Three dense blocks of ``(depth - 4) / 6`` bottleneck layers each
(BN-ReLU-1x1 conv to 4k, BN-ReLU-3x3 conv to k), separated by transitions (BN-ReLU-1x1 conv that
halves the channels, 2x2 average pooling). The last stage ends with BN + ReLU, so global average
pooling and a linear layer on its output is the paper's network.

DenseNet-BC-100, k = 12: 16 layers per block, channels 24 -> 216 | 108 -> 300 | 150 -> 342,
strides 1, 1, 2, 4 (stem, block1, block2, block3), 0.77m parameters before the classifier.
The blocks and transitions are torchvision's own (``torchvision.models.densenet``).
"""

from __future__ import annotations

from typing import List, Tuple

from torch import nn
from torchvision.models.densenet import _DenseBlock, _Transition

from ...registry import BACKBONES
from .staged import StagedBackbone


def densenet_bc_cifar(depth: int = 100, growth_rate: int = 12, compression: float = 0.5,
                      drop_rate: float = 0.0, bn_size: int = 4, last_stride: int = 2
                      ) -> StagedBackbone:
    """DenseNet-BC of ``depth`` for CIFAR; (B, 3, 32, 32) -> (B, C, 8, 8).

    ``drop_rate``: dropout after each dense layer's 3x3 conv (0.2 in the DenseNet paper when
    training without data augmentation). ``last_stride``: 2 is the published network; 1 drops
    the last transition's pooling (the backbone contract's ReID option; output 16x16).
    """
    if last_stride not in (1, 2):
        raise ValueError(f"DenseNet-BC last stride must be 1 or 2, got {last_stride} "
                         "(MODEL.BACKBONE.LAST_STRIDE; 2 for the published CIFAR network)")
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"DenseNet-BC depth must be 6n + 4 (e.g. 40, 100, 190), got {depth}")
    if not 0.0 < compression <= 1.0:
        raise ValueError(f"DenseNet compression must be in (0, 1], got {compression}")
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"DenseNet drop rate must be in [0, 1), got {drop_rate}")
    layers = (depth - 4) // 6
    channels = 2 * growth_rate
    stem = nn.Conv2d(3, channels, kernel_size=3, padding=1, bias=False)
    stages: List[Tuple[str, nn.Module]] = []
    for i in range(3):
        parts: List[nn.Module] = []
        if i > 0:
            out = int(channels * compression)
            transition = _Transition(channels, out)
            if i == 2 and last_stride == 1:
                transition.pool = nn.Identity()  # keep the 1x1 conv, drop the 2x2 pooling
            parts.append(transition)
            channels = out
        parts.append(_DenseBlock(layers, channels, bn_size, growth_rate, drop_rate))
        channels += layers * growth_rate
        if i == 2:
            parts += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        stages.append((f"denseblock{i + 1}", nn.Sequential(*parts) if len(parts) > 1
                       else parts[0]))
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
    def build(pretrained: bool = False, drop_rate: float = 0.0, last_stride: int = 2,
              **_) -> StagedBackbone:
        if pretrained:
            raise ValueError(f"densenet{depth}_cifar has no ImageNet weights (it is trained from "
                             "scratch on 32x32 images); set MODEL.BACKBONE.PRETRAINED False")
        return densenet_bc_cifar(depth, growth_rate=12, drop_rate=drop_rate,
                                 last_stride=last_stride)
    return build


# DenseNet-100 of Table VII (DenseNet-BC-100, k = 12); the shallower members of the same family
# (22: 3 layers per block, 10: 1) are there for CPU demos and tests.
for _depth in (10, 22, 40, 100):
    BACKBONES.register(f"densenet{_depth}_cifar")(_registered(_depth))
