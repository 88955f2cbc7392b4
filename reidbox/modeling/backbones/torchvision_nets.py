"""torchvision ResNet and DenseNet as :class:`StagedBackbone` (weights from local files only)."""

from __future__ import annotations

from typing import Optional

from torch import nn
from torchvision import models

from ...registry import BACKBONES
from .staged import StagedBackbone, load_imagenet_state

# torchvision's classic ImageNet weights (the ones ReID papers of the period start from).
_WEIGHTS = {
    "resnet18": models.ResNet18_Weights.IMAGENET1K_V1,
    "resnet50": models.ResNet50_Weights.IMAGENET1K_V1,
    "densenet121": models.DenseNet121_Weights.IMAGENET1K_V1,
    "densenet161": models.DenseNet161_Weights.IMAGENET1K_V1,
}


def _load(net: nn.Module, arch: str, pretrained: bool, weights: Optional[str]) -> None:
    if not pretrained:
        return
    state = load_imagenet_state(_WEIGHTS[arch].url, weights or None)
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "classifier."))}
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(("fc.", "classifier."))]
    if missing or unexpected:
        raise ValueError(f"{arch}: ImageNet weights do not fit: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")


def _resnet(arch: str, pretrained: bool = False, weights: str = "", last_stride: int = 1,
            **_) -> StagedBackbone:
    net = getattr(models, arch)(weights=None)
    _load(net, arch, pretrained, weights)
    if last_stride == 1:
        block = net.layer4[0]
        conv = block.conv2 if hasattr(block, "conv3") else block.conv1  # bottleneck vs basic
        conv.stride = (1, 1)
        if block.downsample is not None:
            block.downsample[0].stride = (1, 1)
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    stages = [(f"layer{i}", getattr(net, f"layer{i}")) for i in range(1, 5)]
    return StagedBackbone(stem, stages)


def _densenet(arch: str, pretrained: bool = False, weights: str = "", last_stride: int = 1,
              **_) -> StagedBackbone:
    """Stages: block1, transition1+block2, transition2+block3, transition3+block4+norm5+ReLU."""
    net = getattr(models, arch)(weights=None)
    _load(net, arch, pretrained, weights)
    f = net.features
    if last_stride == 1:
        f.transition3.pool = nn.Identity()  # keep the 1x1 conv, drop the 2x2 average pooling
    stem = nn.Sequential(f.conv0, f.norm0, f.relu0, f.pool0)
    stages = [
        ("denseblock1", f.denseblock1),
        ("denseblock2", nn.Sequential(f.transition1, f.denseblock2)),
        ("denseblock3", nn.Sequential(f.transition2, f.denseblock3)),
        ("denseblock4",
         nn.Sequential(f.transition3, f.denseblock4, f.norm5, nn.ReLU(inplace=True))),
    ]
    return StagedBackbone(stem, stages)


for _arch in ("resnet18", "resnet50"):
    BACKBONES.register(_arch)(lambda arch=_arch, **kw: _resnet(arch, **kw))
for _arch in ("densenet121", "densenet161"):
    BACKBONES.register(_arch)(lambda arch=_arch, **kw: _densenet(arch, **kw))
