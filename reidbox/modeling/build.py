"""``build_model``: the only reader of ``cfg.MODEL``."""

from __future__ import annotations

from typing import Dict, Tuple

from torch import nn

from ..registry import LOSSES, META_ARCHS
from .backbones import build_backbone


def build_losses(cfg) -> Tuple[Dict[str, nn.Module], Dict[str, float]]:
    """Loss modules and weights named in ``MODEL.LOSSES.NAMES``."""
    L = cfg.MODEL.LOSSES
    args = {
        "cross_entropy": (dict(epsilon=L.CE.EPSILON), L.CE.WEIGHT),
        "triplet": (dict(margin=L.TRIPLET.MARGIN, soft_margin=L.TRIPLET.SOFT_MARGIN),
                    L.TRIPLET.WEIGHT),
        "std": (dict(lam=cfg.MODEL.STD.LAMBDA, epsilon=L.CE.EPSILON), 1.0),
    }
    losses, weights = {}, {}
    for name in L.NAMES:
        kwargs, weight = args.get(name, ({}, 1.0))
        losses[name] = LOSSES.get(name)(**kwargs)
        weights[name] = weight
    return losses, weights


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
