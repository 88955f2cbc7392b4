"""Heads: pooling, BN neck, classifier."""

from .pooling import EmbeddingHead, GeneralizedMeanPooling, build_pooling

__all__ = ["EmbeddingHead", "GeneralizedMeanPooling", "build_pooling"]
