"""torchvision ResNet and DenseNet as :class:`StagedBackbone` (weights from local files only)."""

from __future__ import annotations

import os
from typing import Optional

import torch
from torch import nn
from torchvision import models

from ...registry import BACKBONES
from ...utils.checkpoint import (
    WeightsMismatchError,
    is_classifier_key,
    strip_wrapper_prefixes,
)
from .staged import (
    StagedBackbone,
    check_last_stride,
    imagenet_weights_path,
    load_imagenet_into,
    load_imagenet_state,
    set_stage_stride,
    set_transition_stride,
)

# torchvision's classic ImageNet weights (the ones ReID papers of the period start from).
_WEIGHTS = {
    "resnet18": models.ResNet18_Weights.IMAGENET1K_V1,
    "resnet50": models.ResNet50_Weights.IMAGENET1K_V1,
    "densenet121": models.DenseNet121_Weights.IMAGENET1K_V1,
    "densenet161": models.DenseNet161_Weights.IMAGENET1K_V1,
}


def _guess_arch(state: dict) -> Optional[str]:
    """The torchvision architecture whose every non-classifier tensor ``state`` matches."""
    for arch in _WEIGHTS:
        with torch.device("meta"):
            own = {
                k: tuple(v.shape)
                for k, v in getattr(models, arch)().state_dict().items()
                if not is_classifier_key(k)
            }
        body = {
            k: tuple(v.shape)
            for k, v in strip_wrapper_prefixes(state, own).items()
            if not is_classifier_key(k)
        }
        if own == body:
            return arch
    return None


def _load(net: nn.Module, arch: str, pretrained: bool, weights: Optional[str]) -> None:
    if not pretrained:
        return
    url = _WEIGHTS[arch].url
    try:
        load_imagenet_into(net, arch, url, weights or None)
    except WeightsMismatchError:
        path = imagenet_weights_path(url, weights or None)
        other = _guess_arch(load_imagenet_state(url, weights or None))
        found = (
            f"it holds {other} weights"
            if other
            else f"it is not a torchvision {'/'.join(_WEIGHTS)} file"
        )
        raise WeightsMismatchError(
            f"ImageNet weight file {path} does not fit MODEL.BACKBONE.NAME {arch}: {found}; "
            f"point MODEL.BACKBONE.WEIGHTS at a {arch} file ({os.path.basename(url)}) or set "
            "MODEL.BACKBONE.NAME to the file's architecture"
        ) from None


def _resnet(
    arch: str, pretrained: bool = False, weights: str = "", last_stride: int = 1, **_
) -> StagedBackbone:
    net = getattr(models, arch)(weights=None)
    _load(net, arch, pretrained, weights)
    set_stage_stride(net.layer4, check_last_stride(last_stride, arch))
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    stages = [(f"layer{i}", getattr(net, f"layer{i}")) for i in range(1, 5)]
    return StagedBackbone(stem, stages)


def _densenet(
    arch: str, pretrained: bool = False, weights: str = "", last_stride: int = 1, **_
) -> StagedBackbone:
    """Stages: block1, transition1+block2, transition2+block3, transition3+block4+norm5+ReLU."""
    net = getattr(models, arch)(weights=None)
    _load(net, arch, pretrained, weights)
    f = net.features
    set_transition_stride(f.transition3, last_stride, arch)
    stem = nn.Sequential(f.conv0, f.norm0, f.relu0, f.pool0)
    stages = [
        ("denseblock1", f.denseblock1),
        ("denseblock2", nn.Sequential(f.transition1, f.denseblock2)),
        ("denseblock3", nn.Sequential(f.transition2, f.denseblock3)),
        (
            "denseblock4",
            nn.Sequential(f.transition3, f.denseblock4, f.norm5, nn.ReLU(inplace=True)),
        ),
    ]
    return StagedBackbone(stem, stages)


for _arch in ("resnet18", "resnet50"):
    BACKBONES.register(_arch)(lambda arch=_arch, **kw: _resnet(arch, **kw))
for _arch in ("densenet121", "densenet161"):
    BACKBONES.register(_arch)(lambda arch=_arch, **kw: _densenet(arch, **kw))
