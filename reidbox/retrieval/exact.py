"""Exact values of near-tied distances: the feature path computes float32 distance blocks whose
last bits depend on the backend (torch / FAISS, CPU / GPU) and the block shape. Distances within
``NEAR_TIE_TOL`` of one another are compared by their float64 values recomputed from the
features (ties: lower gallery index), so evaluation and rank lists do not depend on the path."""

from __future__ import annotations

import numpy as np
import torch

from .distance import check_metric

#: Near-tie window of the feature path, relative to the distance scale (|q|^2 + max |g|^2 for
#: (squared) Euclidean, 2 for cosine): 2^-18 = 3.8e-6, 6x the largest float32 distance error
#: measured for the torch and FAISS blocks at any chunk size (6.3e-7, d = 2048), i.e. 3x the
#: largest disagreement of two paths. Distances this close to a true match's are compared by
#: their float64 values.
NEAR_TIE_TOL = 2.0**-18


class FeatureExact:
    """Exact (float64) distances of query/gallery pairs from the raw float32 features, and the
    near-tie windows around float32 distances; one per evaluation, bound to a chunk by ``at``."""

    def __init__(self, q: torch.Tensor, g: torch.Tensor, metric: str):
        self.q, self.g, self.metric = q, g, check_metric(metric)
        self.g_sq_max = float(g.pow(2).sum(1).max()) if len(g) else 0.0  # scale: approximate
        self.start = 0

    def at(self, rows: slice) -> FeatureExact:
        """The same, for the query chunk starting at ``rows.start``."""
        other = object.__new__(FeatureExact)
        other.__dict__.update(self.__dict__, start=rows.start)
        return other

    def edges(self, t: torch.Tensor, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        """(low, high): every distance whose float32 value may be on either side of ``t`` in
        exact arithmetic lies in [low, high] (float32 error < window / 6, measured)."""
        t64 = t.double()
        if self.metric == "cosine":
            w = torch.full((len(t64), 1), 2 * NEAR_TIE_TOL, dtype=torch.float64, device=t.device)
        else:
            q = self.q[self.start + rows.start : self.start + rows.stop].to(t.device).double()
            w = (NEAR_TIE_TOL * (q.pow(2).sum(1) + self.g_sq_max))[:, None]
        if self.metric == "euclidean":
            s = t64 * t64
            low, high = (s - w).clamp_(min=0).sqrt_(), (s + w).sqrt_()
        else:
            low, high = t64 - w, t64 + w
        return low.to(t.dtype), high.to(t.dtype)

    def values(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """float64 distances of (chunk row, gallery index) pairs, from the raw features; in
        batches of at most 2M float64 numbers per temporary (16 MB)."""
        out = np.empty(len(rows))
        batch = max(1, (1 << 21) // max(self.g.shape[1], 1))
        dev = self.g.device
        for s in range(0, len(rows), batch):
            qi = torch.from_numpy(np.asarray(rows[s : s + batch]) + self.start).to(self.q.device)
            gj = torch.from_numpy(np.asarray(cols[s : s + batch])).to(dev)
            a, b = self.q[qi].to(dev).double(), self.g[gj].double()
            if self.metric == "cosine":
                na = a.pow(2).sum(1).sqrt_().clamp_(min=1e-12)
                nb = b.pow(2).sum(1).sqrt_().clamp_(min=1e-12)
                v = 1.0 - (a * b).sum(1) / (na * nb)
            else:
                v = (a - b).pow_(2).sum(1)
                if self.metric == "euclidean":
                    v = v.sqrt_()
            out[s : s + len(v)] = v.cpu().numpy()
        return out
