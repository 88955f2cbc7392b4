"""Heads: pooling, BN neck, classifier."""

from .pooling import CosineClassifier, EmbeddingHead, GeneralizedMeanPooling, build_pooling

__all__ = ["CosineClassifier", "EmbeddingHead", "GeneralizedMeanPooling", "build_pooling"]
