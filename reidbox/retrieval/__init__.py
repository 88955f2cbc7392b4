"""Retrieval: exact torch / FAISS indexes, ranked lists, k-reciprocal re-ranking."""

from .distance import METRICS, pairwise_distance
from .index import BACKENDS, FaissIndex, Index, TorchIndex, build_index
from .labels import Labels
from .rank import RankSettings, rank_lists
from .rerank import rerank, rerank_feature_blocks, rerank_features

__all__ = [
    "BACKENDS",
    "METRICS",
    "FaissIndex",
    "Index",
    "Labels",
    "RankSettings",
    "TorchIndex",
    "build_index",
    "pairwise_distance",
    "rank_lists",
    "rerank",
    "rerank_feature_blocks",
    "rerank_features",
]
