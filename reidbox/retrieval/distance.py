"""Distance blocks from features (torch, any device), computed in place to bound memory."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from ..errors import InputError

METRICS = ("euclidean", "sqeuclidean", "cosine")


def check_metric(metric: str) -> str:
    """Return ``metric`` or raise an error listing the supported ones."""
    if metric not in METRICS:
        raise InputError(
            f"unknown metric {metric!r}; available: {', '.join(METRICS)} (TEST.METRIC)"
        )
    return metric


def as_features(x, name: str, device: torch.device | str | None = None) -> torch.Tensor:
    """(N, D) float32 tensor on ``device`` (features in float16/64 are cast: ranking needs one
    precision throughout)."""
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    if t.ndim != 2:
        raise InputError(f"{name} must be 2-D (num_items, dim), got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise InputError(f"{name} must be floating point, got {t.dtype}")
    t = t.to(device=device, dtype=torch.float32) if device is not None else t.float()
    if not bool(torch.isfinite(t).all()):
        raise InputError(f"{name} contains NaN or inf")
    return t


def prepare(x: torch.Tensor, metric: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Features as the metric needs them (unit norm for cosine) and their squared norms (L2)."""
    check_metric(metric)
    sq = x.pow(2).sum(1)
    if not bool(torch.isfinite(sq).all()):
        raise InputError(
            "features too large for float32 distances: a squared norm overflows "
            f"(max |x| = {float(x.abs().max()):.3g}, limit ~1.8e19); L2-normalise "
            "or rescale them (TEST.NORM_FEAT True)"
        )
    if metric == "cosine":
        return F.normalize(x, dim=1), None
    return x, sq


def distance_block(
    q: torch.Tensor,
    q_sq: torch.Tensor | None,
    g: torch.Tensor,
    g_sq: torch.Tensor | None,
    metric: str,
) -> torch.Tensor:
    """(c, n) distances between prepared query rows ``q`` (c, D) and gallery ``g`` (n, D).

    euclidean: sqrt(max(|q|^2 + |g|^2 - 2 q.g, 0)); sqeuclidean: without the sqrt;
    cosine: 1 - q.g for unit-norm rows. One GEMM plus in-place element-wise work.
    """
    if metric == "cosine":
        return torch.addmm(torch.ones(1, 1, dtype=q.dtype, device=q.device), q, g.T, alpha=-1.0)
    d = torch.addmm(q_sq[:, None] + g_sq[None, :], q, g.T, alpha=-2.0).clamp_(min=0.0)
    return d.sqrt_() if metric == "euclidean" else d


def pairwise_distance(q_feats, g_feats, metric: str = "euclidean") -> torch.Tensor:
    """Full (m, n) distance matrix; for small problems and tests (the engine never builds it)."""
    q, q_sq = prepare(as_features(q_feats, "q_feats"), metric)
    g, g_sq = prepare(as_features(g_feats, "g_feats"), metric)
    return distance_block(q, q_sq, g, g_sq, metric)
