"""Retrieval metrics on a distance matrix (simple exact version; the full engine replaces it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class EvalResult:
    cmc: np.ndarray  # (max_rank,) fractions
    mAP: float
    mINP: float
    ap: np.ndarray  # (num_query,), NaN where a query has no valid match
    num_valid: int
    protocol: str = "market1501"


def evaluate_distmat(distmat, q_pids, g_pids, q_camids, g_camids, protocol: str = "market1501",
                     max_rank: int = 50, seed=None) -> EvalResult:
    """Market rule: gallery items of the query's identity seen by the query's camera are ignored.

    Step AP, mINP, averages over queries with at least one valid match. Ties broken stably.
    """
    if protocol != "market1501":
        raise KeyError(f"unknown protocol {protocol!r}; available: market1501")
    distmat = np.asarray(distmat)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    nq = distmat.shape[0]
    cmc = np.zeros(max_rank)
    ap = np.full(nq, np.nan)
    inp = np.full(nq, np.nan)
    for i in range(nq):
        order = np.argsort(distmat[i], kind="stable")
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i]))
        match = (g_pids[order] == q_pids[i])[keep]
        if not match.any():
            continue
        hits = np.flatnonzero(match)
        first = hits[0]
        if first < max_rank:
            cmc[first:] += 1
        ap[i] = np.mean(np.arange(1, len(hits) + 1) / (hits + 1))
        inp[i] = len(hits) / (hits[-1] + 1)
    valid = ~np.isnan(ap)
    n = int(valid.sum())
    if n == 0:
        raise ValueError("no query has a valid match in the gallery")
    return EvalResult(cmc / n, float(np.nanmean(ap)), float(np.nanmean(inp)), ap, n, protocol)


def evaluate(q_feats, g_feats, q_pids, g_pids, q_camids, g_camids, protocol: str = "market1501",
             metric: str = "euclidean", max_rank: int = 50, **_) -> EvalResult:
    """Distances from features, then :func:`evaluate_distmat`."""
    q, g = torch.as_tensor(q_feats).float(), torch.as_tensor(g_feats).float()
    if metric == "cosine":
        d = 1 - torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(g, dim=1).T
    elif metric in ("euclidean", "sqeuclidean"):
        d = torch.cdist(q, g)
        if metric == "sqeuclidean":
            d = d.pow(2)
    else:
        raise KeyError(f"unknown metric {metric!r}; available: cosine, euclidean, sqeuclidean")
    return evaluate_distmat(d.numpy(), q_pids, g_pids, q_camids, g_camids, protocol, max_rank)
