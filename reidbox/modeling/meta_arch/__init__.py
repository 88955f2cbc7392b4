"""Meta-architectures registered in ``reidbox.registry.META_ARCHS``.

PTL is not a meta-architecture of its own: ``MODEL.PTL.ENABLED`` adds its side network to
``baseline``, ``mgn`` and ``paper_classifier`` (the config aliases ``ptl``, ``mgn_ptl`` and
``ptl_classifier`` name those with it).
"""

from . import baseline, classification, distill, mgn  # noqa: F401
from .base import ReIDMetaArch
from .baseline import Baseline
from .classification import Classifier, PaperClassifier
from .distill import STDDistill
from .mgn import MGN

__all__ = ["MGN", "Baseline", "Classifier", "PaperClassifier", "ReIDMetaArch", "STDDistill"]
