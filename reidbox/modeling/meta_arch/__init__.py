"""Meta-architectures registered in ``reidbox.registry.META_ARCHS``."""

from . import baseline  # noqa: F401
from .base import ReIDMetaArch
from .baseline import Baseline

__all__ = ["Baseline", "ReIDMetaArch"]
