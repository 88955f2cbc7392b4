"""Backbones as :class:`StagedBackbone`; registered in ``reidbox.registry.BACKBONES``."""

from . import densenet_cifar, ibn, osnet, torchvision_nets  # noqa: F401
from .staged import StagedBackbone, StageSpec, WeightsNotFoundError, load_imagenet_state
from .timm_nets import PREFIX as TIMM_PREFIX
from .timm_nets import is_timm_name, timm_backbone


def build_backbone(
    name: str,
    pretrained: bool = False,
    weights: str = "",
    last_stride: int = 1,
    drop_rate: float = 0.0,
) -> StagedBackbone:
    """The registered backbone ``name``, or timm's model for ``timm:<model>``; ``drop_rate`` is
    passed only when set (CIFAR DenseNets)."""
    from ...registry import BACKBONES

    extra = {"drop_rate": drop_rate} if drop_rate else {}
    make = timm_backbone if is_timm_name(name) else BACKBONES.get(name)
    if is_timm_name(name):
        extra["name"] = name
    return make(pretrained=pretrained, weights=weights, last_stride=last_stride, **extra)


__all__ = [
    "StagedBackbone",
    "StageSpec",
    "TIMM_PREFIX",
    "WeightsNotFoundError",
    "build_backbone",
    "load_imagenet_state",
]
