"""Meta-architectures registered in ``reidbox.registry.META_ARCHS``."""

from . import baseline, classification, distill, mgn, ptl  # noqa: F401
from .base import ReIDMetaArch
from .baseline import Baseline
from .classification import Classifier, PTLClassifier
from .distill import STDDistill
from .mgn import MGN, MGNPTL
from .ptl import PTL

__all__ = [
    "MGN",
    "MGNPTL",
    "PTL",
    "Baseline",
    "Classifier",
    "PTLClassifier",
    "ReIDMetaArch",
    "STDDistill",
]
