"""Per-query ranked gallery lists (top-k): one function for the API, the saved CSV and the
rank-list images, with the evaluation's junk rule and tie rule, so that a list's first entry is
what the metrics count as rank 1."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from .distance import as_features
from .exact import FeatureExact
from .index import build_index
from .labels import NONFINITE, as_labels
from .protocols import get_protocol
from ..errors import InputError


def junk_mask(
    protocol: str,
    q_pids: np.ndarray,
    q_camids: np.ndarray,
    g_pids: np.ndarray,
    g_camids: np.ndarray,
) -> np.ndarray:
    """(m, n) True where ``protocol`` leaves the gallery entry out of the query's ranked list:
    same identity and camera; also pid -1 (Market official); every same-camera entry for
    Open-ReID's cuhk03 CMC."""
    p = get_protocol(protocol)
    same_cam = q_camids[:, None] == g_camids[None, :]
    junk = (q_pids[:, None] == g_pids[None, :]) & same_cam
    if p.junk_minus1:
        junk |= (g_pids == -1)[None, :]
    if p.cmc == "sgs_othercam":
        junk |= same_cam
    return junk


def distance_blocks(
    q_feats,
    g_feats,
    metric: str,
    backend: str,
    chunk: int,
    device: torch.device | str | None = None,
    rerank: dict | None = None,
) -> tuple[Iterable, FeatureExact | None]:
    """``(slice, (c, n) distances)`` blocks of every query against the gallery, ``chunk``
    query rows at a time, and where exact (float64) values of near-ties come from (None for
    re-ranked distances, which are exact as they are). ``rerank``: None or dict(k1, k2,
    lambda_value) for k-reciprocal re-ranking; else the backend :func:`build_index` picks."""
    if rerank is None:
        index = build_index(g_feats, metric, backend, device)
        where = getattr(index, "device", None) or "cpu"
        exact = FeatureExact(
            as_features(q_feats, "q_feats", where), as_features(g_feats, "g_feats", where), metric
        )
        return index.blocks(q_feats, chunk), exact
    allowed = {"k1", "k2", "lambda_value"}
    if not isinstance(rerank, dict) or set(rerank) - allowed:
        raise InputError(
            f"rerank must be None or a dict with keys {sorted(allowed)}, got {rerank!r}"
        )
    from .rerank import rerank_feature_blocks

    return rerank_feature_blocks(q_feats, g_feats, metric=metric, chunk_size=chunk, **rerank), None


def rank_lists(
    q_feats,
    g_feats,
    topk: int = 10,
    metric: str = "euclidean",
    backend: str = "auto",
    chunk_size: int | None = None,
    device: torch.device | str | None = None,
    q_pids=None,
    g_pids=None,
    q_camids=None,
    g_camids=None,
    protocol: str = "market1501",
    rerank: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``topk`` gallery indices and distances of every query.

    Returns (indices (m, k) int64, distances (m, k) float32), nearest first; ties go to the lower
    gallery index on every backend and chunk size (near-ties are re-scored in float64, as in
    ``reidbox.evaluation.evaluate``). With labels (pids, camids), the entries ``protocol``
    ignores are left out, as the metrics leave them out; rows with fewer than k entries end in
    index -1 / distance inf. ``rerank``: dict(k1, k2, lambda_value) ranks by the re-ranked
    distances the evaluation uses. Memory: one (chunk_size, n) block at a time.
    """
    if int(topk) < 1:
        raise InputError(f"topk must be >= 1, got {topk}")
    m, n = len(q_feats), len(g_feats)
    k = min(int(topk), n)
    labelled = q_pids is not None and g_pids is not None
    if labelled:
        qp, gp = as_labels(q_pids, "q_pids", m), as_labels(g_pids, "g_pids", n)
        qc = as_labels(q_camids if q_camids is not None else np.zeros(m, np.int64), "q_camids", m)
        gc = as_labels(g_camids if g_camids is not None else np.ones(n, np.int64), "g_camids", n)
    chunk = int(chunk_size or 1024)
    blocks, exact = distance_blocks(q_feats, g_feats, metric, backend, chunk, device, rerank)
    out_i = np.full((m, k), -1, np.int64)
    out_d = np.full((m, k), np.inf, np.float32)
    for sl, D in blocks:
        D = torch.as_tensor(D)
        if not bool(torch.isfinite(D).all()):
            raise InputError(NONFINITE)
        if labelled:
            D = D.masked_fill(
                torch.from_numpy(junk_mask(protocol, qp[sl], qc[sl], gp, gc)).to(D.device),
                float("inf"),
            )
        kth = torch.topk(D, k, dim=1, largest=False).values[:, -1:]
        if exact is not None:
            high = exact.at(sl).edges(kth, slice(0, len(D)))[1]
        else:
            high = kth
        r, j = ((D <= high) & torch.isfinite(D)).nonzero(as_tuple=True)
        r, j = r.cpu().numpy(), j.cpu().numpy()
        e = (
            exact.at(sl).values(r, j)
            if exact is not None
            else D[torch.from_numpy(r), torch.from_numpy(j)].double().cpu().numpy()
        )
        o = np.lexsort((j, e, r))
        r, j, e = r[o], j[o], e[o]
        pos = np.arange(len(r)) - np.searchsorted(r, r)
        keep = pos < k
        out_i[sl.start + r[keep], pos[keep]] = j[keep]
        out_d[sl.start + r[keep], pos[keep]] = e[keep]
    return out_i, out_d
