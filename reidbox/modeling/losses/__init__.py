"""Losses, registered in ``reidbox.registry.LOSSES``, called as ``loss(output, targets)``."""

from . import ce, margin, metric, std, triplet  # noqa: F401
from .ce import CrossEntropyLoss
from .margin import ArcFaceLoss, CosFaceLoss, arcface_logits, cosface_logits
from .metric import CenterLoss, CircleLoss, circle_loss
from .std import STDLoss
from .triplet import TripletLoss, batch_hard_triplet

__all__ = [
    "ArcFaceLoss",
    "CenterLoss",
    "CircleLoss",
    "CosFaceLoss",
    "CrossEntropyLoss",
    "STDLoss",
    "TripletLoss",
    "arcface_logits",
    "batch_hard_triplet",
    "circle_loss",
    "cosface_logits",
]
