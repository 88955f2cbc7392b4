"""Retrieval metrics (CMC, AP, mAP, INP, mINP) under named reference protocols, computed chunk by
chunk without sorting gallery rows.

Why no sort: every metric only needs, for each *good* gallery entry of a query, how many non-junk
entries precede it. Per query row, the goods' distances (in exact order: value, then lower
gallery index) define windows ``[low_k, high_k]`` around them. A uniform grid of about n/2 bins
over the row's window range puts every entry in a bin with a few correctly rounded elementwise
ops; one histogram then counts, for each good, the entries certainly before its window. Entries
in bins touching a window (a few per good) are looked at one by one: by their value outside the
window, by their *exact* value inside it (ties: lower gallery index first). The work per entry is
the same whether the goods sit at rank 1 or at rank 19,000, so the cost does not depend on how
good the features are. The steps are named functions below :func:`_chunk_stats`;
:func:`reference_stats` computes the same counts by sorting every row, the definition they are
tested against (``tests/evaluation/test_metrics.py``).

Exact values: for a given distance matrix the window is the point itself and the exact value is
the entry (``BlockValues``). The feature path (``streaming.evaluate``) computes float32 distance
blocks, whose last bits depend on the backend and the block shape; its windows are
``NEAR_TIE_TOL`` wide and the entries inside are re-scored in float64 from the features, so every
backend and chunk size gives the same numbers. Single-gallery-shot protocols (random sampling per
identity) sort their chunk rows, with near-ties put in the same exact order.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..retrieval.labels import NONFINITE, as_labels
from ..utils.tables import markdown_table
from ..retrieval.protocols import AP_MODES, SGS_REPEATS, Protocol, get_protocol
from ..errors import InputError

#: Rows per chunk when :func:`evaluate_distmat` walks a full matrix (bounds temporaries).
_DISTMAT_CHUNK_ELEMS = 1 << 23


@dataclass
class EvalResult:
    """Metrics of one evaluation.

    cmc: (max_rank,) fractions; mAP, mINP: floats in [0, 1]; ap, inp: (num_queries,) per query,
    NaN where the query has no valid match; num_valid: queries with at least one valid match.
    """

    cmc: np.ndarray
    mAP: float
    mINP: float
    ap: np.ndarray
    num_valid: int
    protocol: str = "market1501"
    ap_mode: str = "step"
    inp: np.ndarray = field(default_factory=lambda: np.zeros(0))
    num_queries: int = 0

    num_gallery: int = 0
    #: verification metrics ("TPR@FPR=1e-04", ..., "ROC_AUC") when TEST.ROC.ENABLED
    verification: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        # one line: the per-query arrays (ap, inp) stay out of print(result); read them directly
        return (
            f"EvalResult({self.protocol}: mAP {100 * self.mAP:.2f}%, rank-1 "
            f"{100 * float(self.cmc[0]) if len(self.cmc) else float('nan'):.2f}%, mINP "
            f"{100 * self.mINP:.2f}%, {self.num_queries} queries ({self.num_valid} with a "
            f"match), {self.num_gallery} gallery)"
        )

    def rank(self, k: int) -> float:
        """CMC at rank ``k`` (1-based)."""
        if not 1 <= k <= len(self.cmc):
            raise InputError(f"rank {k} outside 1..{len(self.cmc)} (raise max_rank)")
        return float(self.cmc[k - 1])

    def headline(self) -> dict:
        """mAP, rank-1/5/10 and mINP as fractions (a rank beyond ``max_rank``: NaN)."""
        ranks = {
            f"rank{k}": float(self.cmc[k - 1]) if k <= len(self.cmc) else float("nan")
            for k in (1, 5, 10)
        }
        return {"mAP": float(self.mAP), **ranks, "mINP": float(self.mINP)}

    def to_dict(self) -> dict:
        """JSON-friendly summary (per-query arrays left out)."""
        return {
            "protocol": self.protocol,
            "ap_mode": self.ap_mode,
            "mAP": self.mAP,
            "mINP": self.mINP,
            "num_valid": self.num_valid,
            "num_queries": self.num_queries,
            "num_gallery": self.num_gallery,
            **{f"rank{k}": self.rank(k) for k in (1, 5, 10, 20) if k <= len(self.cmc)},
            "cmc": [float(x) for x in self.cmc],
        }


def results_table(results: dict[str, EvalResult]) -> str:
    """Markdown table (rank-1/5/10, mAP, mINP in percent) with one row per named result."""
    rows = [
        [
            name,
            r.protocol,
            *(f"{100 * r.cmc[k - 1]:.2f}" if k <= len(r.cmc) else "-" for k in (1, 5, 10)),
            f"{100 * r.mAP:.2f}",
            f"{100 * r.mINP:.2f}",
        ]
        for name, r in results.items()
    ]
    return markdown_table(
        ["name", "protocol", "R-1", "R-5", "R-10", "mAP", "mINP"],
        rows,
        right=[False, False, True, True, True, True, True],
    )


# ------------------------------------------------------------------------------------------------
# inputs


class _Codes:
    """Integer codes for labels: integers pass through; string labels (as torchreid's Python
    path accepts them) get codes from the gallery's sorted labels, and query labels absent from
    the gallery get codes no gallery entry has."""

    def __init__(self, g: np.ndarray, name: str):
        self.name = name
        self.strings = g.dtype.kind == "U"
        if self.strings:
            self.vocab = np.unique(g)

    def gallery(self, g: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.vocab, g).astype(np.int64) if self.strings else g

    def query(self, q: np.ndarray, qname: str) -> np.ndarray:
        if (q.dtype.kind == "U") != self.strings:
            raise InputError(
                f"{qname} and {self.name} must both hold integers or both strings, "
                f"got {q.dtype} and {'strings' if self.strings else 'integers'}"
            )
        if not self.strings:
            return q
        pos = np.minimum(np.searchsorted(self.vocab, q), max(len(self.vocab) - 1, 0))
        known = self.vocab[pos] == q if len(self.vocab) else np.zeros(len(q), bool)
        _, unknown = np.unique(q, return_inverse=True)
        return np.where(known, pos, len(self.vocab) + unknown).astype(np.int64)


class _Gallery:
    """Gallery labels prepared once: for each pid the gallery indices holding it."""

    def __init__(self, g_pids: np.ndarray, g_camids: np.ndarray):
        self.pids, self.cams = g_pids, g_camids
        self.n = len(g_pids)
        self.by_pid = np.argsort(g_pids, kind="stable")
        self.uniq, self.start, self.count = np.unique(
            g_pids[self.by_pid], return_index=True, return_counts=True
        )
        self.minus1 = np.flatnonzero(g_pids == -1)

    def matches(self, q_pids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(c, M) gallery indices with the query's pid (increasing), and their validity mask."""
        pos = np.searchsorted(self.uniq, q_pids)
        pos = np.minimum(pos, len(self.uniq) - 1)
        found = self.uniq[pos] == q_pids
        cnt = np.where(found, self.count[pos], 0)
        m = max(int(cnt.max(initial=0)), 1)
        col = np.arange(m)
        mask = col[None, :] < cnt[:, None]
        idx = self.by_pid[np.minimum(self.start[pos][:, None] + col[None, :], self.n - 1)]
        return np.where(mask, idx, 0), mask


@dataclass
class _Stats:
    """Per query of a chunk: G goods and, per good k (sorted by distance), counts of non-junk
    negatives before it (strictly closer: lt, closer or equal: le, stable order: st) and of goods
    strictly closer / closer or equal. Arrays (c, K), valid where column < G."""

    G: np.ndarray
    neg_lt: np.ndarray
    neg_le: np.ndarray
    neg_st: np.ndarray
    pos_lt: np.ndarray
    pos_le: np.ndarray


def as_block(D) -> torch.Tensor:
    """A distance block as a torch float tensor: numpy views of any stride (``D[:, ::-1]``) are
    copied, integers become float64, float16/bfloat16 become float32 (exactly)."""
    if not isinstance(D, torch.Tensor):
        D = torch.from_numpy(np.ascontiguousarray(np.asarray(D)))
    if not D.is_floating_point():
        D = D.double()
    elif D.dtype in (torch.float16, torch.bfloat16):
        D = D.float()
    return D


class BlockValues:
    """Exact values of a distance block given as such (``evaluate_distmat``): the block's own
    entries, no window. Ties are exact equality; order among them is the gallery index."""

    def __init__(self, D: torch.Tensor):
        self.D = D

    def edges(self, t: torch.Tensor, rows: slice) -> tuple[torch.Tensor, torch.Tensor]:
        """(low, high) of the near-tie window around distances ``t`` (c, K) of chunk ``rows``."""
        return t, t

    def values(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """float64 exact distances of (chunk row, gallery index) pairs."""
        if not len(rows):
            return np.zeros(0)
        r = torch.from_numpy(rows).to(self.D.device)
        c = torch.from_numpy(cols).to(self.D.device)
        return self.D[r, c].double().cpu().numpy()


def _bins(
    x: torch.Tensor,
    a: torch.Tensor,
    scale: torch.Tensor,
    B: int,
    out: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Bin index 0..B+1 of ``x`` (rows x cols) on each row's uniform grid starting at ``a``
    (bin 0: below the grid, B+1: above). Every step is a correctly rounded, monotone
    elementwise op, so a value gets the same bin in any tensor and a smaller bin means a smaller
    value. ``out``: (float, int64) buffers of x's size, to avoid allocations."""
    if out is None:
        y = x - a
        return y.mul_(scale).clamp_(0.0, float(B + 1)).to(torch.int64)
    y = torch.sub(x, a, out=out[0])
    y.mul_(scale).clamp_(0.0, float(B + 1))
    return out[1].copy_(y)


def _all_finite(D: torch.Tensor) -> bool:
    """Whether every entry is finite: one read-only pass (the sum), the full check only when
    the sum is not finite."""
    return bool(torch.isfinite(D.sum())) or bool(torch.isfinite(D).all())


#: Query-gallery entries binned at once (cache-sized slices of a block; CPU).
_SLICE_ELEMS = 1 << 19


def _chunk_stats(
    D: torch.Tensor,
    qp: np.ndarray,
    qc: np.ndarray,
    gal: _Gallery,
    junk_minus1: bool,
    exact=None,
    check_finite: bool = True,
) -> _Stats:
    """Counts for a (c, n) block of distances; see the module docstring for the method and
    :func:`reference_stats` for the definition the counts equal.

    ``exact``: where the exact value of an entry comes from (:class:`BlockValues` by default;
    the feature path re-scores near-ties in float64) and how wide the near-tie window is."""
    c, n = D.shape
    midx, mmask = gal.matches(qp)
    good = mmask & ~(gal.cams[midx] == qc[:, None])
    if check_finite and not _all_finite(D):
        raise InputError(NONFINITE)
    if not good.any():
        z = np.zeros((c, 0), np.int64)
        return _Stats(good.sum(1), z, z, z, z, z)
    exact = exact if exact is not None else BlockValues(D)
    goods = _sorted_goods(D, midx, good, exact)
    grid = _grid_around(goods, D)
    hist, flagged = _histogram(D, grid, _flagged_bins(goods, grid))
    neg_lt = _negatives_below(D, hist, grid, goods, (midx, mmask), gal, junk_minus1)
    pairs = _flagged_pairs(qp, gal, junk_minus1, flagged, goods, grid)
    counts = _count_flagged(D, neg_lt, pairs, goods, exact)
    return _in_exact_order(goods, counts, n)


@dataclass
class _Goods:
    """Each query row's good entries (its identity, not junk) in columns 0..count-1 of (c, K)
    arrays, by (block value, gallery index), with the near-tie window around each."""

    count: np.ndarray  # (c,) goods per row
    index: np.ndarray  # gallery index; -1 beyond count
    value: np.ndarray  # float64: the block value, the exact value where re-scored
    mask_np: np.ndarray  # column < count
    mask: torch.Tensor  # the same, on the block's device
    low: torch.Tensor  # window edges (inf beyond count)
    high: torch.Tensor
    needs_exact: np.ndarray  # in another good's window: ordered by exact value


def _sorted_goods(D: torch.Tensor, midx: np.ndarray, good: np.ndarray, exact) -> _Goods:
    c, dev = D.shape[0], D.device
    G = good.sum(1)
    K = int(G.max())
    gr, gcol = np.nonzero(good)
    gidx = midx[gr, gcol]
    tv = D[torch.from_numpy(gr).to(dev), torch.from_numpy(gidx).to(dev)].cpu().numpy()
    o = np.lexsort((gidx, tv, gr))
    gr, gidx, tv = gr[o], gidx[o], tv[o]
    col = np.arange(len(gr)) - np.concatenate([[0], np.cumsum(G)[:-1]])[gr]
    index = np.full((c, K), -1, np.int64)
    index[gr, col] = gidx
    value = np.full((c, K), np.inf)
    value[gr, col] = tv
    mask_np = np.arange(K)[None, :] < G[:, None]
    mask = torch.from_numpy(mask_np).to(dev)
    t = torch.full((c, K), float("inf"), dtype=D.dtype, device=dev)
    t[torch.from_numpy(gr).to(dev), torch.from_numpy(col).to(dev)] = torch.from_numpy(tv).to(
        device=dev, dtype=D.dtype
    )
    inf = torch.tensor(float("inf"), dtype=D.dtype, device=dev)
    low, high = exact.edges(t, slice(0, c))
    low = torch.where(mask, low, inf)
    high = torch.where(mask, high, inf)
    needs_exact = np.zeros((c, K), bool)
    if K > 1:
        near = ((t[:, 1:] <= high[:, :-1]) & mask[:, 1:]).cpu().numpy()
        needs_exact[:, 1:] |= near
        needs_exact[:, :-1] |= near
    return _Goods(G, index, value, mask_np, mask, low, high, needs_exact)


@dataclass
class _Grid:
    """One uniform grid of ``B`` bins per row (bin 0: below, B + 1: above), and the bins of
    every good's window edges."""

    start: torch.Tensor  # (c, 1) value where bin 1 starts
    scale: torch.Tensor  # (c, 1) bins per unit of distance
    B: int
    low: torch.Tensor  # (c, K) bin of each window's low edge
    high: torch.Tensor  # (c, K) and of its high edge

    @property
    def width(self) -> int:
        """Bins per row, the two outside ones included."""
        return self.B + 2

    def bins(self, x: torch.Tensor, rows: slice = slice(None), out=None) -> torch.Tensor:
        return _bins(x, self.start[rows], self.scale[rows], self.B, out)


def _grid_around(goods: _Goods, D: torch.Tensor) -> _Grid:
    """Each row's grid over [first window start, last window end], 5 margin bins each side."""
    dev, dtype = D.device, D.dtype
    B = max(16, D.shape[1] // 4)
    inf = torch.tensor(float("inf"), dtype=dtype, device=dev)
    has = torch.from_numpy(goods.count > 0).to(dev)
    lo = torch.where(has, goods.low.min(1).values, torch.zeros((), dtype=dtype, device=dev))
    hi = torch.where(has, torch.where(goods.mask, goods.high, -inf).max(1).values, lo)
    span = (hi - lo).clamp(min=0)
    floor = (lo.abs() + hi.abs()) * 2.0**-20 + torch.finfo(dtype).tiny * 2.0**30
    width = torch.maximum(span / (B - 10), floor)
    start = (lo - 5 * width)[:, None]
    scale = (1.0 / width)[:, None]
    b_low = _bins(goods.low.clone(), start, scale, B)
    b_high = _bins(goods.high.clone(), start, scale, B)
    return _Grid(start, scale, B, b_low, b_high)


def _flagged_bins(goods: _Goods, grid: _Grid) -> torch.Tensor:
    """(c, width) True in the bins of every window with a 1-bin margin: the entries there are
    looked at one by one."""
    c, K = goods.mask.shape
    W, dev = grid.width, goods.mask.device
    diff = torch.zeros(c, W + 1, dtype=torch.int32, device=dev)
    one = torch.ones(1, dtype=torch.int32, device=dev).expand(c, K)
    diff.scatter_add_(1, torch.where(goods.mask, grid.low - 1, W), one)
    diff.scatter_add_(1, torch.where(goods.mask, grid.high + 2, W), -one)
    return diff.cumsum(1, dtype=torch.int32)[:, :W] > 0


def _histogram(D: torch.Tensor, grid: _Grid, flag: torch.Tensor):
    """Entries per bin (c, width), and (row, gallery index, bin) of every entry in a flagged
    bin; the block is binned a cache-sized slice of rows at a time."""
    c, n = D.shape
    dev = D.device
    hist = torch.zeros(c, grid.width, dtype=torch.int32, device=dev)
    rows_per = c if dev.type != "cpu" else max(1, _SLICE_ELEMS // max(n, 1))
    bufs = (
        torch.empty(min(rows_per, c), n, dtype=D.dtype, device=dev),
        torch.empty(min(rows_per, c), n, dtype=torch.int64, device=dev),
        torch.empty(min(rows_per, c), n, dtype=torch.bool, device=dev),
    )
    ones = torch.ones(1, dtype=torch.int32, device=dev)
    fr, fj, fb = [], [], []
    for s in range(0, c, rows_per):
        e = min(s + rows_per, c)
        y, ib, fl = (x[: e - s] for x in bufs)
        b = grid.bins(D[s:e], slice(s, e), (y, ib))
        hist[s:e].scatter_add_(1, b, ones.expand_as(b))
        r, j = torch.gather(flag[s:e], 1, b, out=fl).nonzero(as_tuple=True)
        fr.append(r + s)
        fj.append(j)
        fb.append(b[r, j])
    return hist, (torch.cat(fr), torch.cat(fj), torch.cat(fb))


def _negatives_below(D, hist, grid: _Grid, goods: _Goods, matches, gal, junk_minus1: bool):
    """(c, K) int64: per good, the negatives in bins wholly below its flagged range (matches
    and -1 junk taken out of the histogram first: they are not negatives)."""
    dev = D.device
    midx, mmask = matches
    mb = grid.bins(D.gather(1, torch.from_numpy(midx).to(dev)))
    hist.scatter_add_(1, mb, -torch.from_numpy(mmask).to(dev).to(torch.int32))
    if junk_minus1 and len(gal.minus1):
        jb = grid.bins(D[:, torch.from_numpy(gal.minus1).to(dev)])
        hist.scatter_add_(1, jb, torch.full((1,), -1, dtype=torch.int32, device=dev).expand_as(jb))
    cum = hist.cumsum(1, dtype=torch.int32)
    return cum.gather(1, grid.low - 2).masked_fill_(~goods.mask, 0).to(torch.int64)


def _flagged_pairs(qp, gal: _Gallery, junk_minus1: bool, flagged, goods: _Goods, grid: _Grid):
    """(row, good column, gallery index) of every flagged negative and good whose flagged
    range holds it, found by a sorted search over the goods' window starts."""
    fr, fj, fb = flagged
    dev = fr.device
    c, K = goods.mask.shape
    W = grid.width
    gp = torch.from_numpy(gal.pids).to(dev)
    negative = gp[fj] != torch.from_numpy(qp).to(dev)[fr]
    if junk_minus1:
        negative &= gp[fj] != -1
    fr, fj, fb = fr[negative], fj[negative], fb[negative]
    rowkey = torch.arange(c, device=dev)[:, None] * (W + 1)
    tkey = torch.where(goods.mask, grid.low + rowkey, rowkey + W).view(-1)
    tkey, korder = torch.sort(tkey)
    maxwin = int((grid.high - grid.low).masked_fill(~goods.mask, 0).max())
    lo_key = rowkey[fr, 0] + (fb - 1 - maxwin).clamp(min=0)
    first = torch.searchsorted(tkey, lo_key)
    cnt = torch.searchsorted(tkey, rowkey[fr, 0] + fb + 1, right=True) - first
    pi = torch.repeat_interleave(torch.arange(len(fr), device=dev), cnt)
    off = torch.cumsum(cnt, 0) - cnt
    slot = korder[first[pi] + torch.arange(len(pi), device=dev) - off[pi]]
    prow, pk = fr[pi], slot % K
    keep = fb[pi] <= grid.high[prow, pk] + 1
    pi, prow, pk = pi[keep], prow[keep], pk[keep]
    return prow, pk, fj[pi]


def _count_flagged(D, neg_lt: torch.Tensor, pairs, goods: _Goods, exact):
    """(neg_lt, neg_le, neg_st) numpy (c, K): ``neg_lt`` (the negatives below each good's
    flagged range) plus the flagged negatives before its window; inside the window, the
    negatives compared with the good by exact value (ties: lower gallery index first).
    Re-scores the goods that need exact values (``goods.value``)."""
    prow, pk, pj = pairs
    c, K = goods.mask.shape
    n = D.shape[1]
    dv = D[prow, pj]
    before = dv < goods.low[prow, pk]
    inwin = ~before & (dv <= goods.high[prow, pk])
    flat = prow * K + pk
    neg_lt.view(-1).index_add_(0, flat[before], torch.ones_like(flat[before]))
    neg_lt = neg_lt.cpu().numpy()
    neg_le, neg_st = neg_lt.copy(), neg_lt.copy()
    wi = inwin.nonzero(as_tuple=True)[0]
    wrow, wk, wj = prow[wi].cpu().numpy(), pk[wi].cpu().numpy(), pj[wi].cpu().numpy()
    goods.needs_exact[wrow, wk] = True
    nr, nk = np.nonzero(goods.needs_exact)
    goods.value[nr, nk] = exact.values(nr, goods.index[nr, nk])
    if len(wi):
        uq, inv = np.unique(wrow * n + wj, return_inverse=True)
        ej = exact.values(uq // n, uq % n)[inv]
        ek = goods.value[wrow, wk]
        at = wrow * K + wk
        for acc, m in (
            (neg_lt, ej < ek),
            (neg_le, ej <= ek),
            (neg_st, (ej < ek) | ((ej == ek) & (wj < goods.index[wrow, wk]))),
        ):
            acc += np.bincount(at[m], minlength=c * K).reshape(c, K)
    return neg_lt, neg_le, neg_st


def _in_exact_order(goods: _Goods, counts, n: int) -> _Stats:
    """The statistics with each row's goods in exact order (value, then gallery index), and
    the goods strictly before / not after each one."""
    order = np.lexsort((np.where(goods.mask_np, goods.index, n), goods.value), axis=1)
    neg_lt, neg_le, neg_st, value = (
        np.take_along_axis(x, order, 1) for x in (*counts, goods.value)
    )
    ekv = np.where(goods.mask_np, value, np.nan)
    pos_lt = (ekv[:, None, :] < ekv[:, :, None]).sum(2)
    pos_le = (ekv[:, None, :] <= ekv[:, :, None]).sum(2)
    return _Stats(goods.count, neg_lt, neg_le, neg_st, pos_lt, pos_le)


def reference_stats(
    D: torch.Tensor, qp: np.ndarray, qc: np.ndarray, gal: _Gallery, junk_minus1: bool, exact=None
) -> _Stats:
    """The definition :func:`_chunk_stats` computes, by brute force: the oracle its tests
    compare against (O(c * n log n) time, (c, n) memory; not for real galleries).

    Every entry of a row gets its exact value (``exact``, default the block's own entries);
    goods (the query's identity, not same camera) are ordered by (value, gallery index);
    negatives are the other identities (without -1 under ``junk_minus1``). Per good:
    negatives strictly closer (``neg_lt``), closer or equal (``neg_le``), before it in the
    stable order (``neg_st``), and goods strictly closer / closer or equal (``pos_lt``,
    ``pos_le``, itself included)."""
    exact = exact if exact is not None else BlockValues(D)
    c, n = D.shape
    rows = []
    for i in range(c):
        e = exact.values(np.full(n, i), np.arange(n))
        same = gal.pids == qp[i]
        good = np.flatnonzero(same & (gal.cams != qc[i]))
        good = good[np.lexsort((good, e[good]))]
        neg = ~same & ((gal.pids != -1) if junk_minus1 else True)
        ne, nj = e[neg], np.flatnonzero(neg)
        ge = e[good]
        rows.append(
            [
                [(ne < v).sum() for v in ge],
                [(ne <= v).sum() for v in ge],
                [((ne < v) | ((ne == v) & (nj < j))).sum() for v, j in zip(ge, good)],
                [(ge < v).sum() for v in ge],
                [(ge <= v).sum() for v in ge],
            ]
        )
    G = np.array([len(r[0]) for r in rows], np.int64)
    K = int(G.max(initial=0))
    out = np.zeros((5, c, K), np.int64)
    for i, r in enumerate(rows):
        out[:, i, : G[i]] = np.array(r, np.int64).reshape(5, G[i])
    return _Stats(G, *out)


def _exact_order(D: torch.Tensor, exact) -> np.ndarray:
    """Each row's gallery indices by (exact value, index): a stable sort of the block, with
    runs of near-tied entries (each within the next one's window) re-sorted by exact value."""
    Dn = D.cpu().numpy()
    order = np.argsort(Dn, axis=1, kind="stable")
    if exact is None or isinstance(exact, BlockValues):
        return order
    v = torch.from_numpy(np.take_along_axis(Dn, order, 1)).to(D.device)
    _, high = exact.edges(v, slice(0, len(Dn)))
    near = (v[:, 1:] <= high[:, :-1]).cpu().numpy()
    for i in np.flatnonzero(near.any(1)):
        rid = np.concatenate([[0], np.cumsum(~near[i])])
        size = np.bincount(rid)
        inrun = size[rid] > 1
        e = np.zeros(len(rid))
        e[inrun] = exact.values(np.full(int(inrun.sum()), i), order[i][inrun])
        order[i] = order[i][np.lexsort((order[i], e, rid))]
    return order


def _sgs_chunk(
    D: torch.Tensor,
    qp: np.ndarray,
    qc: np.ndarray,
    gal: _Gallery,
    other_cam: bool,
    rng: np.random.RandomState,
    hist: np.ndarray,
    exact=None,
) -> None:
    """Single-gallery-shot CMC for a chunk, adding 1/repeats at each drawn rank to ``hist``.

    Draw order replays the references (per valid query, per repeat, per identity in order of first
    appearance in the ranked candidate list, one uniform draw each) so that a seeded
    ``RandomState`` reproduces their numbers bit for bit.
    """
    order = _exact_order(D, exact)
    plans = []
    for i in range(D.shape[0]):
        o = order[i]
        same_cam = gal.cams[o] == qc[i]
        match = gal.pids[o] == qp[i]
        keep = ~same_cam if other_cam else ~(match & same_cam)
        if not (match & ~same_cam).any():
            continue
        cand_pids = gal.pids[o[keep]]
        uniq, first, inv = np.unique(cand_pids, return_index=True, return_inverse=True)
        fa_order = np.argsort(first)
        fa_of = np.empty(len(uniq), np.int64)
        fa_of[fa_order] = np.arange(len(uniq))
        group = fa_of[inv]
        counts = np.bincount(group, minlength=len(uniq))
        grouped = np.argsort(group, kind="stable")
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        q_group = fa_of[np.searchsorted(uniq, qp[i])]
        plans.append((counts, grouped, offsets, q_group))
    if not plans:
        return
    highs = np.concatenate([np.tile(p[0], SGS_REPEATS) for p in plans])
    draws = rng.randint(0, highs)
    at = 0
    for counts, grouped, offsets, q_group in plans:
        u = len(counts)
        dr = draws[at : at + SGS_REPEATS * u].reshape(SGS_REPEATS, u)
        at += SGS_REPEATS * u
        pos = grouped[offsets[None, :] + dr]  # (repeats, identities): drawn list positions
        rank0 = (pos < pos[:, q_group : q_group + 1]).sum(1)
        rank0 = rank0[rank0 < len(hist)]
        np.add.at(hist, rank0, 1.0 / SGS_REPEATS)


# ------------------------------------------------------------------------------------------------
# accumulation


class Accumulator:
    """Collects per-query statistics chunk by chunk; :meth:`result` gives the :class:`EvalResult`.

    Feed query chunks in order (``add``): the single-gallery-shot draws depend on query order.
    """

    def __init__(
        self,
        g_pids,
        g_camids,
        protocol: str = "market1501",
        max_rank: int = 50,
        seed: int | None = None,
        ap_mode: str | None = None,
    ):
        self.proto: Protocol = get_protocol(protocol)
        self.ap_mode = ap_mode or self.proto.ap_mode
        if self.ap_mode not in AP_MODES:
            raise InputError(f"unknown ap_mode {ap_mode!r}; available: {', '.join(AP_MODES)}")
        if int(max_rank) < 1:
            raise InputError(f"max_rank must be >= 1, got {max_rank}")
        self.max_rank = int(max_rank)
        gp, gc = as_labels(g_pids, "g_pids"), as_labels(g_camids, "g_camids")
        if len(gp) == 0:
            raise InputError(
                "the gallery is empty (0 gallery ids): there is nothing to rank the queries "
                "against; pass the gallery's features and labels"
            )
        if len(gc) != len(gp):
            raise InputError(f"g_camids has {len(gc)} entries but g_pids has {len(gp)}")
        self.pid_codes, self.cam_codes = _Codes(gp, "g_pids"), _Codes(gc, "g_camids")
        self.gal = _Gallery(self.pid_codes.gallery(gp), self.cam_codes.gallery(gc))
        self.hist = np.zeros(self.max_rank)
        self.rng = np.random.RandomState(0 if seed is None else seed)
        self.ap: list[np.ndarray] = []
        self.inp: list[np.ndarray] = []

    def add(self, D, q_pids, q_camids, check_finite: bool = True, exact=None) -> None:
        """Add a (c, n) block of distances (numpy or torch, any device, any float dtype) for c
        queries. ``exact`` (feature path) says where near-ties get their exact values.

        check_finite=False skips the NaN/inf scan (only for blocks already checked).
        """
        D = as_block(D)
        if D.ndim != 2 or D.shape[1] != self.gal.n:
            raise InputError(
                f"distance block must be (num_query, {self.gal.n}), got {tuple(D.shape)}"
            )
        qp = self.pid_codes.query(as_labels(q_pids, "q_pids", D.shape[0]), "q_pids")
        qc = self.cam_codes.query(as_labels(q_camids, "q_camids", D.shape[0]), "q_camids")
        if self.proto.junk_minus1 and (qp == -1).any() and not self.pid_codes.strings:
            raise InputError(
                f"protocol {self.proto.name!r} treats pid -1 as junk, so queries "
                "must not have pid -1; drop those queries"
            )
        if self.proto.same_camera_matches:  # a camera no gallery entry has: nothing is junk
            qc = np.full_like(qc, int(self.gal.cams.min(initial=0)) - 1)
        s = _chunk_stats(D, qp, qc, self.gal, self.proto.junk_minus1, exact, check_finite)
        self._add_stats(s)
        if self.proto.cmc.startswith("sgs"):
            _sgs_chunk(
                D, qp, qc, self.gal, self.proto.cmc == "sgs_othercam", self.rng, self.hist, exact
            )

    def _add_stats(self, s: _Stats) -> None:
        c, K = s.neg_lt.shape
        G = s.G
        valid = G > 0
        k1 = np.arange(1, K + 1)[None, :]
        mask = k1 <= G[:, None]
        Gd = np.maximum(G, 1)[:, None].astype(np.float64)
        R = k1 + s.neg_st  # stable 1-based junk-free ranks of the goods
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.ap_mode == "step":
                terms = k1 / R
            elif self.ap_mode == "trapezoid":
                terms = (k1 / R + np.where(R > 1, (k1 - 1) / np.maximum(R - 1, 1), 1.0)) / 2
            else:
                le = s.pos_le + s.neg_le
                prec = s.pos_le / np.maximum(le, 1)
                if self.ap_mode == "sklearn":
                    terms = prec
                else:
                    lt = s.pos_lt + s.neg_lt
                    terms = (np.where(lt > 0, s.pos_lt / np.maximum(lt, 1), 1.0) + prec) / 2
        # sequential sum: the result must not depend on the padded width (chunking)
        total = np.cumsum(np.where(mask, terms, 0.0), axis=1)[:, -1] if K else np.zeros(c)
        ap = np.where(valid, total / Gd[:, 0], np.nan)
        last = np.take_along_axis(R, np.maximum(G - 1, 0)[:, None], 1)[:, 0] if K else G
        inp = np.where(valid, G / np.maximum(last, 1), np.nan)
        self.ap.append(ap)
        self.inp.append(inp)
        if K == 0:
            return
        if self.proto.cmc == "first":
            r0 = R[valid, 0] - 1
            np.add.at(self.hist, r0[r0 < self.max_rank], 1.0)
        elif self.proto.cmc == "allshots":
            pos = (R - k1)[mask]
            w = np.broadcast_to(1.0 / Gd, mask.shape)[mask]
            keep = pos < self.max_rank
            np.add.at(self.hist, pos[keep], w[keep])

    def result(self) -> EvalResult:
        ap = np.concatenate(self.ap) if self.ap else np.zeros(0)
        inp = np.concatenate(self.inp) if self.inp else np.zeros(0)
        valid = ~np.isnan(ap)
        nv, nq = int(valid.sum()), len(ap)
        if nv == 0:
            raise InputError(
                f"no query has a valid match in the gallery ({nq} queries) under "
                f"protocol {self.proto.name!r}; check pids/camids"
            )
        p = self.proto
        if p.warn_invalid and nv < nq:
            warnings.warn(
                f"{nq - nv} of {nq} queries have no valid match: the official "
                f"{p.name} code would report mAP = NaN; reporting the mean over the "
                f"{nv} valid queries (per-query AP is NaN for the others)",
                stacklevel=3,
            )
        mAP = float(np.nansum(ap) / (nq if p.mean_over == "all" else nv))
        cmc = np.cumsum(self.hist) / (nq if p.cmc_over == "all" else nv)
        return EvalResult(
            cmc=cmc,
            mAP=mAP,
            mINP=float(np.nanmean(inp)),
            ap=ap,
            num_valid=nv,
            protocol=p.name,
            ap_mode=self.ap_mode,
            inp=inp,
            num_queries=nq,
            num_gallery=self.gal.n,
        )


def _row_chunks(n_rows: int, n_cols: int, chunk_size: int | None) -> Iterable[slice]:
    step = chunk_size or max(1, _DISTMAT_CHUNK_ELEMS // max(n_cols, 1))
    for s in range(0, n_rows, step):
        yield slice(s, min(s + step, n_rows))


def evaluate_distmat(
    distmat,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    protocol: str = "market1501",
    max_rank: int = 50,
    seed: int | None = None,
    ap_mode: str | None = None,
    chunk_size: int | None = None,
) -> EvalResult:
    """Evaluate a (num_query, num_gallery) distance matrix (smaller = more similar).

    protocol: one of ``reidbox.evaluation.PROTOCOLS``; ap_mode overrides its AP formula
    ("step", "trapezoid", "sklearn", "sklearn_pre019"); seed drives the single-gallery-shot draws
    (None = 0). Ties are broken by lower gallery index, except where sklearn-style AP groups them.
    """
    D = as_block(distmat)
    if D.ndim != 2:
        raise InputError(f"distmat must be 2-D (num_query, num_gallery), got {tuple(D.shape)}")
    qp = as_labels(q_pids, "q_pids", D.shape[0])
    qc = as_labels(q_camids, "q_camids", D.shape[0])
    as_labels(g_pids, "g_pids", D.shape[1])
    as_labels(g_camids, "g_camids", D.shape[1])
    acc = Accumulator(g_pids, g_camids, protocol, max_rank, seed, ap_mode)
    for sl in _row_chunks(D.shape[0], D.shape[1], chunk_size):
        acc.add(D[sl], qp[sl], qc[sl])
    return acc.result()
