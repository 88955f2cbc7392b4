"""Backbones as :class:`StagedBackbone`; registered in ``reidbox.registry.BACKBONES``."""

from . import torchvision_nets  # noqa: F401
from .staged import StagedBackbone, StageSpec, WeightsNotFoundError, load_imagenet_state


def build_backbone(name: str, pretrained: bool = False, weights: str = "",
                   last_stride: int = 1) -> StagedBackbone:
    from ...registry import BACKBONES

    return BACKBONES.get(name)(pretrained=pretrained, weights=weights, last_stride=last_stride)


__all__ = ["StagedBackbone", "StageSpec", "WeightsNotFoundError", "build_backbone",
           "load_imagenet_state"]
