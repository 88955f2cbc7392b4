"""ResNet-50-IBN-a and -b (Pan et al., "Two at Once: Enhancing Learning and Generalization
Capacities via IBN-Net", ECCV 2018), written from the paper on torchvision's ResNet-50.

* IBN-a: the first normalisation of every bottleneck in conv2_x..conv4_x (layer1..layer3)
  normalises half of its channels with InstanceNorm and the other half with BatchNorm;
  conv5_x (layer4) is unchanged.
* IBN-b: InstanceNorm after the stem's conv (in place of its BN), and after the residual
  addition of the last bottleneck of conv2_x and conv3_x (before that block's ReLU).

Module names follow the layout of the authors' ImageNet files (``bn1.IN`` / ``bn1.BN`` and a
block's ``IN``), so those files load as they are.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck, ResNet

from ...registry import BACKBONES
from .staged import StagedBackbone, check_last_stride, load_imagenet_into, set_stage_stride

#: the IBN-Net authors' ImageNet files (GitHub releases); torch.hub caches them by file name
IMAGENET_URLS = {
    "resnet50_ibn_a": "https://github.com/XingangPan/IBN-Net/releases/download/v1.0/"
    "resnet50_ibn_a-d9d0bb7b.pth",
    "resnet50_ibn_b": "https://github.com/XingangPan/IBN-Net/releases/download/v1.0/"
    "resnet50_ibn_b-9ca61e85.pth",
}


class IBN(nn.Module):
    """InstanceNorm (affine) on the first ``ratio`` of the channels, BatchNorm on the rest."""

    def __init__(self, channels: int, ratio: float = 0.5) -> None:
        super().__init__()
        self.half = int(channels * ratio)
        self.IN = nn.InstanceNorm2d(self.half, affine=True)
        self.BN = nn.BatchNorm2d(channels - self.half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = torch.split(x, [self.half, x.shape[1] - self.half], dim=1)
        return torch.cat([self.IN(a.contiguous()), self.BN(b.contiguous())], dim=1)


class BottleneckIN(Bottleneck):
    """torchvision's bottleneck with InstanceNorm after the residual addition (IBN-b)."""

    def __init__(self, block: Bottleneck) -> None:
        nn.Module.__init__(self)
        for name, child in block.named_children():
            setattr(self, name, child)
        self.downsample, self.stride = block.downsample, block.stride
        self.IN = nn.InstanceNorm2d(block.bn3.num_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.IN(out + identity))


def resnet50_ibn(variant: str) -> ResNet:
    """torchvision's ResNet-50 turned into IBN-``variant`` ("a" or "b")."""
    net = ResNet(Bottleneck, [3, 4, 6, 3])
    if variant == "a":
        for layer in (net.layer1, net.layer2, net.layer3):
            for block in layer:
                block.bn1 = IBN(block.bn1.num_features)
    else:
        net.bn1 = nn.InstanceNorm2d(64, affine=True)
        for layer in (net.layer1, net.layer2):
            layer[-1] = BottleneckIN(layer[-1])
    return net


def resnet_ibn(
    arch: str, pretrained: bool = False, weights: str = "", last_stride: int = 1, **_
) -> StagedBackbone:
    net = resnet50_ibn(arch[-1])
    if pretrained:
        load_imagenet_into(net, arch, IMAGENET_URLS[arch], weights or None)
    set_stage_stride(net.layer4, check_last_stride(last_stride, arch))
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    return StagedBackbone(stem, [(f"layer{i}", getattr(net, f"layer{i}")) for i in range(1, 5)])


for _arch in IMAGENET_URLS:
    BACKBONES.register(_arch)(lambda arch=_arch, **kw: resnet_ibn(arch, **kw))
