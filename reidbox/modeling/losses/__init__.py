"""Losses, registered in ``reidbox.registry.LOSSES``, called as ``loss(output, targets)``."""

from . import ce, triplet  # noqa: F401
from .ce import CrossEntropyLoss
from .triplet import TripletLoss, batch_hard_triplet

__all__ = ["CrossEntropyLoss", "TripletLoss", "batch_hard_triplet"]
