"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) with sparse storage.

``rerank`` takes the three distance matrices of the reference function
(zhunzhong07/person-re-ranking ``re_ranking``; same in torchreid and fast-reid) and returns the
same (num_query, num_gallery) float32 matrix. ``rerank_features`` starts from features instead:
a chunked kNN pass gives each item's ``k1 + 1`` nearest neighbours and its row maximum, the
k-reciprocal sets and weights are stored as sparse rows (about ``k1`` entries each, instead of
the reference's dense N x N), and the Jaccard distances are accumulated per query chunk.

Conventions kept from the reference: its inputs are *squared* element-wise, rows are normalised
by their maximum, the expansion neighbourhood is ``int(np.around(k1 / 2)) + 1`` (half to even),
and an expansion set is added when more than 2/3 of it lies in the query's reciprocal set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from .distance import as_features, check_metric
from ..errors import InputError
from .index import tie_sorted, smallest

PairDist = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _check_params(k1: int, k2: int, lambda_value: float, n_total: int) -> None:
    if not (1 <= k2 <= k1 + 1):
        raise InputError(f"need 1 <= k2 <= k1 + 1, got k1={k1}, k2={k2}")
    if k1 + 1 > n_total:
        raise InputError(
            f"k1 + 1 = {k1 + 1} exceeds the {n_total} query + gallery items; lower TEST.RERANK.K1"
        )
    if not 0.0 <= lambda_value <= 1.0:
        raise InputError(f"lambda_value must be in [0, 1], got {lambda_value}")


def _reciprocal(nb: np.ndarray, k: int, chunk: int = 4096) -> np.ndarray:
    """(N, k) mask: ``nb[i, j]`` (j < k) is k-reciprocal with i, i.e. i in its first k."""
    N = len(nb)
    nbk = torch.from_numpy(np.ascontiguousarray(nb[:, :k]))
    out = torch.empty(N, k, dtype=torch.bool)
    for s in range(0, N, chunk):
        f = nbk[s : s + chunk]
        rows = torch.arange(s, s + len(f))[:, None, None]
        out[s : s + len(f)] = (nbk[f] == rows).any(2)
    return out.numpy()


def _expanded_sets(nb: np.ndarray, k1: int, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns (sorted, unique per row) of every item's expanded k-reciprocal set."""
    N = len(nb)
    K1 = k1 + 1
    h = int(np.around(k1 / 2.0)) + 1
    rec1 = torch.from_numpy(_reciprocal(nb, K1))
    rech = torch.from_numpy(_reciprocal(nb, h))
    nbt = torch.from_numpy(np.ascontiguousarray(nb[:, :K1]))
    nbh = nbt[:, :h]
    keys = []
    for s in range(0, N, chunk):
        F = nbt[s : s + chunk]  # (c, K1) candidates
        Rm = rec1[s : s + chunk]  # (c, K1) reciprocal mask
        H = nbh[F]  # (c, K1, h) expansion candidates of every candidate
        Hm = rech[F] & Rm[:, :, None]
        member = ((H[..., None] == F[:, None, None, :]) & Rm[:, None, None, :]).any(-1)
        inter = (member & Hm).sum(-1).double()
        size = Hm.sum(-1).double()
        accept = Rm & (inter > 2.0 / 3.0 * size)
        rows = torch.arange(s, s + len(F), dtype=torch.int64)
        r1 = rows[:, None].expand_as(F)[Rm]
        c1 = F[Rm]
        take = Hm & accept[:, :, None]
        r2 = rows[:, None, None].expand_as(H)[take]
        c2 = H[take]
        keys.append((torch.cat([r1, r2]) * N + torch.cat([c1, c2])).numpy())
    key = np.unique(np.concatenate(keys))
    return key // N, key % N


def _core(
    nb: np.ndarray,
    pair_dist: PairDist,
    qg_blocks: Iterator[tuple[slice, np.ndarray]],
    n_query: int,
    k1: int,
    k2: int,
    lambda_value: float,
    q_chunk: int = 256,
) -> Iterator[tuple[slice, np.ndarray]]:
    """Shared algorithm; ``nb`` (N, >= k1+1) nearest-first neighbours, ``pair_dist(i, j)`` the
    normalised distance of pairs, ``qg_blocks`` yields normalised query-gallery blocks."""
    N = len(nb)
    rows, cols = _expanded_sets(nb, k1)
    w = np.exp(-pair_dist(rows, cols))
    sums = np.bincount(rows, weights=w, minlength=N)
    V = sp.csr_matrix((w / sums[rows], (rows, cols)), shape=(N, N))
    if k2 != 1:
        qe = sp.csr_matrix(
            (np.full(N * k2, 1.0 / k2), (np.repeat(np.arange(N), k2), nb[:, :k2].ravel())),
            shape=(N, N),
        )
        V = (qe @ V).tocsr()
    Vg = V[n_query:].tocsc()  # gallery rows, by column t
    n_gal = N - n_query
    for sl, d_qg in qg_blocks:
        for s in range(sl.start, sl.stop, q_chunk):
            e = min(s + q_chunk, sl.stop)
            Vq = V[s:e].tocoo()
            t = Vq.col
            start, cnt = Vg.indptr[t], Vg.indptr[t + 1] - Vg.indptr[t]
            total = int(cnt.sum())
            first = np.repeat(np.cumsum(cnt) - cnt, cnt)
            pos = np.repeat(start, cnt) + (np.arange(total) - first)
            qi = np.repeat(Vq.row, cnt)
            mins = np.minimum(np.repeat(Vq.data, cnt), Vg.data[pos])
            s_min = np.bincount(
                qi * n_gal + Vg.indices[pos], weights=mins, minlength=(e - s) * n_gal
            ).reshape(e - s, n_gal)
            jac = 1.0 - s_min / (2.0 - s_min)
            blk = d_qg[s - sl.start : e - sl.start]
            yield slice(s, e), ((1.0 - lambda_value) * jac + lambda_value * blk).astype(np.float32)


def rerank(
    q_g_dist, q_q_dist, g_g_dist, k1: int = 20, k2: int = 6, lambda_value: float = 0.3
) -> np.ndarray:
    """Reference-equal re-ranking of a (m, n) query-gallery distance matrix.

    Inputs are plain distances (m, n), (m, m), (n, n); as in the reference they are squared and
    row-normalised inside. Returns float32 (m, n). Holds the N x N input (N = m + n) but only
    sparse k-reciprocal weights; for large N use :func:`rerank_features`.
    """
    qg = np.asarray(q_g_dist, dtype=np.float64)
    qq = np.asarray(q_q_dist, dtype=np.float64)
    gg = np.asarray(g_g_dist, dtype=np.float64)
    m, n = qg.shape
    if qq.shape != (m, m) or gg.shape != (n, n):
        raise InputError(
            f"shapes do not fit: q_g {qg.shape}, q_q {qq.shape}, g_g {gg.shape}; "
            f"expected ({m}, {m}) and ({n}, {n})"
        )
    N = m + n
    _check_params(k1, k2, lambda_value, N)
    full = np.block([[qq, qg], [qg.T, gg]])
    d = np.power(full, 2).astype(np.float32)
    d = (d / d.max(axis=0)).T  # reference: column max, then transpose
    nb = np.argsort(d, axis=1, kind="stable")[:, : k1 + 1]
    out = np.empty((m, n), np.float32)
    blocks = [(slice(0, m), d[:m, m:].astype(np.float64))]
    for sl, blk in _core(
        nb, lambda i, j: d[i, j].astype(np.float64), iter(blocks), m, k1, k2, lambda_value
    ):
        out[sl] = blk
    return out


class _FeatureSpace:
    """Base distances of the feature path: ``(|x_i - x_j|^2) ** p / rowmax`` in float32 math;
    p = 1 reproduces :func:`rerank` fed Euclidean distances, p = 2 fed squared Euclidean or
    cosine (1 - cos) distances of the same features."""

    def __init__(self, x: torch.Tensor, power: int):
        self.x, self.sq, self.p = x, x.pow(2).sum(1), power
        self.rowmax: torch.Tensor | None = None

    def block(self, rows: slice, cols: slice | None = None) -> torch.Tensor:
        xc = self.x if cols is None else self.x[cols]
        sqc = self.sq if cols is None else self.sq[cols]
        d = self.x[rows] @ xc.T
        d.mul_(-2.0).add_(self.sq[rows, None]).add_(sqc[None, :]).clamp_(min=0.0)
        return d.pow_(self.p) if self.p != 1 else d

    def pairs(self, i: np.ndarray, j: np.ndarray, chunk: int = 16384) -> np.ndarray:
        out = np.empty(len(i))
        for s in range(0, len(i), chunk):
            ii = torch.from_numpy(i[s : s + chunk])
            jj = torch.from_numpy(j[s : s + chunk])
            dot = (self.x[ii] * self.x[jj]).sum(1)
            d = (self.sq[ii] + self.sq[jj] - 2.0 * dot).clamp_(min=0.0).pow_(self.p)
            out[s : s + chunk] = (d / self.rowmax[ii]).double().numpy()
        return out


def _merge(
    bv: torch.Tensor, bi: torch.Tensor, d: torch.Tensor, offset: int, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the k smallest (value, index) pairs per row of the current best lists and a new
    distance block ``d`` whose columns are items ``offset, offset + 1, ...``."""
    at = smallest(d, k)
    v, i = tie_sorted(torch.cat([bv, d.gather(1, at)], 1), torch.cat([bi, at + offset], 1))
    return v[:, :k], i[:, :k]


def _knn(space: _FeatureSpace, k: int, chunk: int) -> np.ndarray:
    """(N, k) nearest neighbours in (distance, index) order, as a stable argsort of each row
    ranks them (an item is not put first in its own list: a duplicate of lower index precedes
    it), and the row maxima of the N x N distances.

    Symmetric: block (I, J) with J >= I serves rows I directly and rows J through its
    transpose, so only half of the N x N products are computed; one block in memory."""
    N = len(space.x)
    best_v = torch.full((N, k), float("inf"))
    best_i = torch.full((N, k), N, dtype=torch.int64)  # placeholders sort after every item
    rowmax = torch.full((N,), float("-inf"))
    for s in range(0, N, chunk):
        e = min(s + chunk, N)
        d = space.block(slice(s, e), slice(s, N))  # (c, N - s)
        rowmax[s:e] = torch.maximum(rowmax[s:e], d.max(1).values)
        rowmax[s:] = torch.maximum(rowmax[s:], d.max(0).values)
        best_v[s:e], best_i[s:e] = _merge(best_v[s:e], best_i[s:e], d, s, k)
        if e < N:
            best_v[e:], best_i[e:] = _merge(best_v[e:], best_i[e:], d[:, e - s :].T, s, k)
    space.rowmax = rowmax
    return best_i.numpy()


def rerank_feature_blocks(
    q_feats,
    g_feats,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    metric: str = "euclidean",
    chunk_size: int = 1024,
) -> Iterator[tuple[slice, np.ndarray]]:
    """Re-ranked distances from features, yielded as (query rows, (rows, n) float32) blocks.

    Memory: features, (N, k1+1) neighbours, sparse weights (~k1 per row before k2 expansion)
    and one block; never N x N.
    """
    check_metric(metric)
    q = as_features(q_feats, "q_feats", "cpu")
    g = as_features(g_feats, "g_feats", "cpu")
    if q.shape[1] != g.shape[1]:
        raise InputError(f"query dim {q.shape[1]} != gallery dim {g.shape[1]}")
    x = torch.cat([q, g])
    if metric == "cosine":
        x = torch.nn.functional.normalize(x, dim=1)
    m, N = len(q), len(x)
    _check_params(k1, k2, lambda_value, N)
    space = _FeatureSpace(x, 1 if metric == "euclidean" else 2)
    nb = _knn(space, k1 + 1, chunk_size)

    def qg_blocks() -> Iterator[tuple[slice, np.ndarray]]:
        for s in range(0, m, chunk_size):
            sl = slice(s, min(s + chunk_size, m))
            d = space.block(sl, slice(m, N)) / space.rowmax[sl, None]
            yield sl, d.double().numpy()

    yield from _core(nb, space.pairs, qg_blocks(), m, k1, k2, lambda_value)


def rerank_features(q_feats, g_feats, **options: Any) -> np.ndarray:
    """Full (m, n) float32 re-ranked matrix from features; ``options`` (k1, k2, lambda_value,
    metric, chunk_size) as for :func:`rerank_feature_blocks`."""
    out = np.empty((len(q_feats), len(g_feats)), np.float32)
    for sl, blk in rerank_feature_blocks(q_feats, g_feats, **options):
        out[sl] = blk
    return out
