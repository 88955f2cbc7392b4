"""Meta-architectures registered in ``reidbox.registry.META_ARCHS``."""

from . import baseline, mgn, ptl  # noqa: F401
from .base import ReIDMetaArch
from .baseline import Baseline
from .mgn import MGN, MGNPTL
from .ptl import PTL

__all__ = ["MGN", "MGNPTL", "PTL", "Baseline", "ReIDMetaArch"]
