"""Dataset parsers; each registers itself in ``reidbox.registry.DATASETS``."""

from . import (  # noqa: F401 (imported to register the parsers)
    cifar,
    combined,
    cuhk03,
    dukemtmcreid,
    market1501,
    msmt17,
    synthetic,
)
from .base import DatasetError, ReIDDataset, Sample, combine, relabel
from .combined import combine_by_name

__all__ = ["DatasetError", "ReIDDataset", "Sample", "combine", "combine_by_name", "relabel"]
