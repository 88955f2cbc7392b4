"""Dataset parsers; each registers itself in ``reidbox.registry.DATASETS``."""

from . import market1501  # noqa: F401
from . import synthetic  # noqa: F401
from .base import DatasetError, ReIDDataset, Sample, combine, relabel

__all__ = ["DatasetError", "ReIDDataset", "Sample", "combine", "relabel"]
