"""Average query expansion (AQE, Chum et al. ICCV 2007): a query is replaced by the mean of
itself and its top-n results, then searched again; robust to the query's own view."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .distance import as_features


def average_query_expansion(q_feats, g_feats, neighbours: np.ndarray, n: int) -> torch.Tensor:
    """(m, D) unit rows: ``normalize(q + sum of its first n gallery neighbours)``.

    ``neighbours`` (m, >= n) gallery indices nearest first (-1 entries are skipped); the inputs
    are normalised first, so every image weighs the same whatever its feature norm."""
    if n < 1:
        raise ValueError(f"query expansion needs n >= 1 neighbours, got {n}")
    q = F.normalize(as_features(q_feats, "q_feats", "cpu"), dim=1)
    g = F.normalize(as_features(g_feats, "g_feats", "cpu"), dim=1)
    nb = torch.as_tensor(np.asarray(neighbours)[:, :n], dtype=torch.int64)
    valid = (nb >= 0).unsqueeze(2).float()  # (m, n, 1)
    expanded = q + (g[nb.clamp(min=0)] * valid).sum(1)
    return F.normalize(expanded, dim=1)
