"""Per-query ranked gallery lists (top-k), for saving results and visual inspection."""

from __future__ import annotations

import numpy as np
import torch

from .index import build_index


def rank_lists(q_feats, g_feats, topk: int = 10, metric: str = "euclidean",
               backend: str = "auto", chunk_size: int = 1024,
               device: torch.device | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k gallery indices and distances for every query.

    Returns (indices (m, k) int64, distances (m, k) float32), ascending distance, ties by lower
    gallery index among the k returned. Memory: one (chunk_size, n) block at a time.
    """
    if int(topk) < 1:
        raise ValueError(f"topk must be >= 1, got {topk}")
    index = build_index(g_feats, metric, backend, device)
    k = min(int(topk), index.ntotal)
    m = len(q_feats)
    out_i = np.empty((m, k), np.int64)
    out_d = np.empty((m, k), np.float32)
    for s in range(0, m, chunk_size):
        d, i = index.search(q_feats[s:s + chunk_size], k)
        out_i[s:s + len(i)] = i.cpu().numpy()
        out_d[s:s + len(i)] = d.cpu().numpy()
    return out_i, out_d
