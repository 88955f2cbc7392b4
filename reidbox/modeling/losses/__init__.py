"""Losses, registered in ``reidbox.registry.LOSSES``, called as ``loss(output, targets)``."""

from . import ce, std, triplet  # noqa: F401
from .ce import CrossEntropyLoss
from .std import STDLoss
from .triplet import TripletLoss, batch_hard_triplet

__all__ = ["CrossEntropyLoss", "STDLoss", "TripletLoss", "batch_hard_triplet"]
