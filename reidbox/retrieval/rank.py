"""Per-query ranked gallery lists (top-k): one function for the API, the saved CSV and the
rank-list images, with the evaluation's junk rule and tie rule, so that a list's first entry is
what the metrics count as rank 1."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from .distance import as_features
from .exact import FeatureExact
from .index import build_index
from .labels import NONFINITE, Labels
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


@dataclass(frozen=True)
class RankSettings:
    """How gallery entries are ordered for a query: the distance ``metric``, the
    ``protocol`` whose junk rule leaves entries out (when labels are given), the ``backend``
    (:func:`build_index`), k-reciprocal re-ranking (``rerank``: None or dict(k1, k2,
    lambda_value)) and the query rows per distance block (``chunk_size``, default 1024; it
    never changes the lists). ``EvalSettings.ranking()`` gives the evaluation's."""

    metric: str = "euclidean"
    protocol: str = "market1501"
    backend: str = "auto"
    rerank: dict | None = None
    chunk_size: int | None = None


def rank_lists(
    q_feats,
    g_feats,
    topk: int = 10,
    settings: RankSettings | None = None,
    labels: Labels | None = None,
    device: torch.device | str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``topk`` gallery indices and distances of every query, ranked as ``settings`` say.

    Returns (indices (m, k) int64, distances (m, k) float32), nearest first; ties go to the lower
    gallery index on every backend and chunk size (near-ties are re-scored in float64, as in
    ``reidbox.evaluation.evaluate``). With ``labels``, the entries the protocol ignores are
    left out, as the metrics leave them out; rows with fewer than k entries end in index -1 /
    distance inf. With ``settings.rerank`` the lists follow the re-ranked distances the
    evaluation uses. Memory: one (chunk_size, n) block at a time.
    """
    settings = settings or RankSettings()
    if int(topk) < 1:
        raise InputError(f"topk must be >= 1, got {topk}")
    m, n = len(q_feats), len(g_feats)
    k = min(int(topk), n)
    checked = labels.checked(m, n) if labels is not None else None
    blocks, exact = distance_blocks(
        q_feats,
        g_feats,
        settings.metric,
        settings.backend,
        int(settings.chunk_size or 1024),
        device,
        settings.rerank,
    )
    out_i = np.full((m, k), -1, np.int64)
    out_d = np.full((m, k), np.inf, np.float32)
    for sl, D in blocks:
        D = _finite_block(D)
        if checked is not None:
            D = _mask_junk(D, settings.protocol, checked, sl)
        rows, cols, values = _top_candidates(D, k, exact.at(sl) if exact is not None else None)
        _place_in_order(out_i, out_d, sl.start, rows, cols, values)
    return out_i, out_d


def _finite_block(D) -> torch.Tensor:
    D = torch.as_tensor(D)
    if not bool(torch.isfinite(D).all()):
        raise InputError(NONFINITE)
    return D


def _mask_junk(D: torch.Tensor, protocol: str, labels, rows: slice) -> torch.Tensor:
    """``D`` with the entries ``protocol`` leaves out of the queries ``rows``' lists at inf."""
    qp, gp, qc, gc = labels
    junk = junk_mask(protocol, qp[rows], qc[rows], gp, gc)
    return D.masked_fill(torch.from_numpy(junk).to(D.device), float("inf"))


def _top_candidates(
    D: torch.Tensor, k: int, exact: FeatureExact | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, gallery index, float64 value) of every finite entry that may be among its row's
    first ``k``: up to the k-th smallest value, widened by the near-tie window where exact
    values come from the features, so re-scoring can only reorder them."""
    kth = torch.topk(D, k, dim=1, largest=False).values[:, -1:]
    high = exact.edges(kth, slice(0, len(D)))[1] if exact is not None else kth
    r, j = ((D <= high) & torch.isfinite(D)).nonzero(as_tuple=True)
    r, j = r.cpu().numpy(), j.cpu().numpy()
    if exact is not None:
        return r, j, exact.values(r, j)
    return r, j, D[torch.from_numpy(r), torch.from_numpy(j)].double().cpu().numpy()


def _place_in_order(
    out_i: np.ndarray,
    out_d: np.ndarray,
    start: int,
    r: np.ndarray,
    j: np.ndarray,
    e: np.ndarray,
) -> None:
    """Write each row's candidates into rows ``start + r`` of the outputs, by (value, gallery
    index), keeping the first ``out_i.shape[1]``."""
    o = np.lexsort((j, e, r))
    r, j, e = r[o], j[o], e[o]
    pos = np.arange(len(r)) - np.searchsorted(r, r)
    keep = pos < out_i.shape[1]
    out_i[start + r[keep], pos[keep]] = j[keep]
    out_d[start + r[keep], pos[keep]] = e[keep]
