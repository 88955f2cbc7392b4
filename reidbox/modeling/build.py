"""``build_model``: the only reader of ``cfg.MODEL``."""

from __future__ import annotations

from typing import Dict, Tuple

from torch import nn

from ..registry import LOSSES, META_ARCHS
from .backbones import build_backbone


def build_losses(cfg) -> Tuple[Dict[str, nn.Module], Dict[str, float]]:
    """Loss modules and weights named in ``MODEL.LOSSES.NAMES``.

    Each registered loss reads its own options (``from_config(cfg)``) and weight
    (``config_weight(cfg)``); one that declares neither (a plugin) is built with no arguments
    and weighs 1.
    """
    losses, weights = {}, {}
    for name in cfg.MODEL.LOSSES.NAMES:
        loss = LOSSES.get(name)
        make, weight = getattr(loss, "from_config", None), getattr(loss, "config_weight", None)
        losses[name] = make(cfg) if make is not None else loss()
        weights[name] = float(weight(cfg)) if weight is not None else 1.0
    return losses, weights


def model_display_name(meta_arch: str, backbone: str) -> str:
    """How result tables name a model (``resnet50+PTL``, ``MGN``): what the registered
    meta-architecture declares (``display_name``), else ``meta_arch/backbone``."""
    template = getattr(META_ARCHS.get(meta_arch), "display_name", None) \
        if meta_arch in META_ARCHS else None
    return template.format(backbone=backbone) if template else f"{meta_arch}/{backbone}"


def build_model(cfg, num_classes: int) -> nn.Module:
    """The model named by ``MODEL.META_ARCHITECTURE``, with ``num_classes`` training identities.

    Eval-mode forward returns (B, D) features; train-mode forward returns a ``ModelOutput``.
    """
    b = cfg.MODEL.BACKBONE
    backbone = build_backbone(b.NAME, pretrained=b.PRETRAINED, weights=b.WEIGHTS,
                              last_stride=b.LAST_STRIDE, drop_rate=b.DROP_RATE)
    losses, weights = build_losses(cfg)
    arch = META_ARCHS.get(cfg.MODEL.META_ARCHITECTURE)
    return arch.from_config(cfg, num_classes=num_classes, backbone=backbone, losses=losses,
                            loss_weights=weights)
