"""Heads: pooling, BN neck, classifier; the PTL paper's head."""

from .paper import MLPClassifier, PaperHead
from .pooling import CosineClassifier, EmbeddingHead, GeneralizedMeanPooling, build_pooling

__all__ = [
    "CosineClassifier",
    "EmbeddingHead",
    "GeneralizedMeanPooling",
    "MLPClassifier",
    "PaperHead",
    "build_pooling",
]
