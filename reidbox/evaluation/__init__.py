"""Evaluation: retrieval metrics under named reference protocols, from distances or features,
and classification metrics."""

from ..retrieval.protocols import AP_MODES, PROTOCOLS, Protocol, get_protocol
from .features import FeatureModel
from .metrics import Accumulator, EvalResult, evaluate_distmat, results_table
from .settings import EvalSettings
from .streaming import evaluate
from .verification import VerificationResult, verification_metrics

__all__ = [
    "AP_MODES",
    "PROTOCOLS",
    "Accumulator",
    "EvalResult",
    "EvalSettings",
    "FeatureModel",
    "Protocol",
    "VerificationResult",
    "evaluate",
    "evaluate_distmat",
    "get_protocol",
    "results_table",
    "verification_metrics",
]
