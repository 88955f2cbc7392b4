"""Retrieval metrics (CMC, AP, mAP, INP, mINP) under named reference protocols, computed chunk by
chunk without sorting gallery rows.

Why no sort: every metric only needs, for each *good* gallery entry of a query, how many non-junk
entries precede it. With the query's good distances sorted as thresholds, one batched
``searchsorted`` of the row against them plus a histogram gives those counts in O(n log G) per
row instead of an O(n log n) sort. Rows where a non-good entry has exactly the distance of a good
one (ties) are redone exactly with a stable sort (lower gallery index first), so results equal
the stable-sort definition everywhere. Single-gallery-shot protocols (random sampling per
identity) sort their chunk rows.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from .protocols import AP_MODES, SGS_REPEATS, Protocol, get_protocol

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

    def rank(self, k: int) -> float:
        """CMC at rank ``k`` (1-based)."""
        if not 1 <= k <= len(self.cmc):
            raise ValueError(f"rank {k} outside 1..{len(self.cmc)} (raise max_rank)")
        return float(self.cmc[k - 1])

    def to_dict(self) -> dict:
        """JSON-friendly summary (per-query arrays left out)."""
        return {
            "protocol": self.protocol, "ap_mode": self.ap_mode, "mAP": self.mAP,
            "mINP": self.mINP, "num_valid": self.num_valid, "num_queries": self.num_queries,
            **{f"rank{k}": self.rank(k) for k in (1, 5, 10, 20) if k <= len(self.cmc)},
            "cmc": [float(x) for x in self.cmc],
        }


def results_table(results: dict[str, EvalResult]) -> str:
    """Markdown table (rank-1/5/10, mAP, mINP in percent) with one row per named result."""
    lines = ["| name | protocol | R-1 | R-5 | R-10 | mAP | mINP |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        ranks = [f"{100 * r.cmc[k - 1]:.2f}" if k <= len(r.cmc) else "-" for k in (1, 5, 10)]
        lines.append(f"| {name} | {r.protocol} | {' | '.join(ranks)} | {100 * r.mAP:.2f} | "
                     f"{100 * r.mINP:.2f} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# inputs

def _labels(x, name: str, n: int | None = None) -> np.ndarray:
    a = np.asarray(x.cpu() if isinstance(x, torch.Tensor) else x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.integer):
        if a.size and not np.all(np.equal(np.mod(a, 1), 0)):
            raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
        a = a.astype(np.int64)
    if n is not None and len(a) != n:
        raise ValueError(f"{name} has {len(a)} entries but the distance matrix needs {n}")
    return a.astype(np.int64, copy=False)


class _Gallery:
    """Gallery labels prepared once: for each pid the gallery indices holding it."""

    def __init__(self, g_pids: np.ndarray, g_camids: np.ndarray):
        self.pids, self.cams = g_pids, g_camids
        self.n = len(g_pids)
        self.by_pid = np.argsort(g_pids, kind="stable")
        self.uniq, self.start, self.count = np.unique(g_pids[self.by_pid], return_index=True,
                                                      return_counts=True)
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


def _chunk_stats(D: torch.Tensor, qp: np.ndarray, qc: np.ndarray, gal: _Gallery,
                 junk_minus1: bool) -> _Stats:
    """Counts for a (c, n) block of distances; see module docstring for the method."""
    c = D.shape[0]
    D = D.contiguous()
    midx_np, mmask_np = gal.matches(qp)
    junk_np = gal.cams[midx_np] == qc[:, None]
    good_np = mmask_np & ~junk_np
    G = good_np.sum(1)
    K = int(G.max(initial=0))
    if K == 0:
        z = np.zeros((c, 0), np.int64)
        return _Stats(G, z, z, z, z, z)
    dev = D.device
    midx = torch.from_numpy(midx_np).to(dev)
    mmask = torch.from_numpy(mmask_np).to(dev)
    good = torch.from_numpy(good_np).to(dev)
    inf = torch.tensor(float("inf"), dtype=D.dtype, device=dev)
    md = torch.where(mmask, D.gather(1, midx), inf)
    thr = torch.sort(torch.where(good, md, inf), dim=1).values[:, :K].contiguous()

    # One pass: thresholds and their float successors, so that a row entry's bucket tells
    # both "closer than" and "closer or equal" for every threshold (nothing lies between a float
    # and its successor).
    cut = torch.sort(torch.cat([thr, torch.nextafter(thr, inf)], 1), dim=1).values
    if D.dtype == torch.float32:
        hist = _hist_float32(D, cut, thr.gather(1, torch.from_numpy(np.maximum(G, 1) - 1)
                                                 .to(dev)[:, None])[:, 0], G)
    else:
        b = torch.searchsorted(cut, D, right=True)  # (c, n): number of cut values <= d
        hist = torch.zeros(c, 2 * K + 1, dtype=torch.int64, device=dev)
        hist.scatter_add_(1, b, torch.ones(1, dtype=torch.int64, device=dev).expand_as(b))
        del b
    cum = hist.cumsum(1)
    at_lt = torch.searchsorted(cut, thr, right=False)  # cut values < t_k
    at_le = torch.searchsorted(cut, thr, right=True)  # cut values <= t_k (t_k+ excluded)
    all_lt, all_le = cum.gather(1, at_lt), cum.gather(1, at_le)
    pos_lt = torch.searchsorted(thr, thr, right=False)
    pos_le = torch.searchsorted(thr, thr, right=True)
    # a row has a tie when something other than a good sits exactly at a good's distance
    kmask = torch.arange(K, device=dev)[None, :] < torch.from_numpy(G).to(dev)[:, None]
    tied = (((all_le - all_lt) > (pos_le - pos_lt)) & kmask).any(1)
    match_lt = ((md[:, :, None] < thr[:, None, :]) & mmask[:, :, None]).sum(1)
    neg_lt = all_lt - match_lt
    if junk_minus1 and len(gal.minus1):
        j = torch.from_numpy(gal.minus1).to(dev)
        dj = D[:, j]
        neg_lt = neg_lt - _count_below(thr, dj.contiguous())
    neg_lt = neg_lt.cpu().numpy()
    neg_le, neg_st = neg_lt.copy(), neg_lt.copy()
    pos_lt, pos_le = pos_lt.cpu().numpy(), pos_le.cpu().numpy()
    tie_rows = np.flatnonzero(tied.cpu().numpy())
    if len(tie_rows):
        Dn = D[torch.from_numpy(tie_rows).to(dev)].cpu().numpy()
        for r, i in enumerate(tie_rows):
            _exact_row(Dn[r], qp[i], qc[i], gal, junk_minus1, K, i, neg_lt, neg_le, neg_st)
    return _Stats(G, neg_lt, neg_le, neg_st, pos_lt, pos_le)


def _f32_key(x: torch.Tensor) -> torch.Tensor:
    """Order-preserving int64 key of float32 values (equal floats, +0/-0 included, share a key)."""
    b = x.contiguous().view(torch.int32).to(torch.int64)
    return torch.where(b >= 0, b, -(2**31) - b) + 2**31


def _hist_float32(D: torch.Tensor, cut: torch.Tensor, t_max: torch.Tensor,
                  G: np.ndarray) -> torch.Tensor:
    """(c, 2K+1) histogram of each row over its sorted ``cut`` values, counting only entries
    that can precede a good (d <= the row's largest good distance); the rest only fill the last
    buckets, which no count reads. Typically a few percent of a row, so this is mostly one
    compare pass. Rows are made disjoint by packing (row, float key) into one int64, which lets
    one 1-D search serve all rows."""
    c, w = cut.shape
    dev = D.device
    has = torch.from_numpy(G > 0).to(dev)
    lim = torch.where(has, t_max, torch.tensor(float("-inf"), device=dev))
    rows, cols = torch.nonzero(D <= lim[:, None], as_tuple=True)
    vals = D[rows, cols]
    base = torch.arange(c, device=dev, dtype=torch.int64)[:, None] << 32
    cut_keys = (base + _f32_key(cut)).reshape(-1)
    keys = (rows << 32) + _f32_key(vals)
    local = torch.searchsorted(cut_keys, keys, right=True) - rows * w
    hist = torch.bincount(rows * (w + 1) + local, minlength=c * (w + 1))
    return hist.reshape(c, w + 1)


def _count_below(thr: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """(c, K) number of entries of each row of ``d`` strictly below each sorted threshold."""
    b = torch.searchsorted(thr, d, right=True)
    h = torch.zeros(thr.shape[0], thr.shape[1] + 1, dtype=torch.int64, device=thr.device)
    h.scatter_add_(1, b, torch.ones(1, dtype=torch.int64, device=thr.device).expand_as(b))
    return h.cumsum(1)[:, :thr.shape[1]]


def _exact_row(d: np.ndarray, qp: int, qc: int, gal: _Gallery, junk_minus1: bool, K: int, i: int,
               neg_lt: np.ndarray, neg_le: np.ndarray, neg_st: np.ndarray) -> None:
    """Counts for one row with ties, by the stable (distance, gallery index) order."""
    match = gal.pids == qp
    good_idx = np.flatnonzero(match & (gal.cams != qc))
    good_idx = good_idx[np.lexsort((good_idx, d[good_idx]))]
    neg = ~match
    if junk_minus1:
        neg &= gal.pids != -1
    neg_idx = np.flatnonzero(neg)
    dn = d[neg_idx]
    sdn = np.sort(dn)
    thr = d[good_idx]
    G = len(good_idx)
    neg_lt[i, :G] = np.searchsorted(sdn, thr, side="left")
    neg_le[i, :G] = np.searchsorted(sdn, thr, side="right")
    for k in range(G):
        neg_st[i, k] = neg_lt[i, k] + np.count_nonzero((dn == thr[k]) & (neg_idx < good_idx[k]))


def _sgs_chunk(D: np.ndarray, qp: np.ndarray, qc: np.ndarray, gal: _Gallery, other_cam: bool,
               rng: np.random.RandomState, hist: np.ndarray) -> None:
    """Single-gallery-shot CMC for a chunk, adding 1/repeats at each drawn rank to ``hist``.

    Draw order replays the references (per valid query, per repeat, per identity in order of first
    appearance in the ranked candidate list, one uniform draw each) so that a seeded
    ``RandomState`` reproduces their numbers bit for bit.
    """
    order = np.argsort(D, axis=1, kind="stable")
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
        dr = draws[at:at + SGS_REPEATS * u].reshape(SGS_REPEATS, u)
        at += SGS_REPEATS * u
        pos = grouped[offsets[None, :] + dr]  # (repeats, identities): drawn list positions
        rank0 = (pos < pos[:, q_group:q_group + 1]).sum(1)
        rank0 = rank0[rank0 < len(hist)]
        np.add.at(hist, rank0, 1.0 / SGS_REPEATS)


# ------------------------------------------------------------------------------------------------
# accumulation

class Accumulator:
    """Collects per-query statistics chunk by chunk; :meth:`result` gives the :class:`EvalResult`.

    Feed query chunks in order (``add``): the single-gallery-shot draws depend on query order.
    """

    def __init__(self, g_pids, g_camids, protocol: str = "market1501", max_rank: int = 50,
                 seed: int | None = None, ap_mode: str | None = None):
        self.proto: Protocol = get_protocol(protocol)
        self.ap_mode = ap_mode or self.proto.ap_mode
        if self.ap_mode not in AP_MODES:
            raise ValueError(f"unknown ap_mode {ap_mode!r}; available: {', '.join(AP_MODES)}")
        if int(max_rank) < 1:
            raise ValueError(f"max_rank must be >= 1, got {max_rank}")
        self.max_rank = int(max_rank)
        gp = _labels(g_pids, "g_pids")
        self.gal = _Gallery(gp, _labels(g_camids, "g_camids", len(gp)))
        self.hist = np.zeros(self.max_rank)
        self.rng = np.random.RandomState(0 if seed is None else seed)
        self.ap: list[np.ndarray] = []
        self.inp: list[np.ndarray] = []

    def add(self, D, q_pids, q_camids, check_finite: bool = True) -> None:
        """Add a (c, n) block of distances (numpy or torch, any device) for c queries.

        check_finite=False skips the NaN/inf scan (callers that built D from checked features).
        """
        D = torch.as_tensor(D)
        if D.ndim != 2 or D.shape[1] != self.gal.n:
            raise ValueError(f"distance block must be (num_query, {self.gal.n}), got "
                             f"{tuple(D.shape)}")
        if not D.is_floating_point():
            D = D.double()
        qp = _labels(q_pids, "q_pids", D.shape[0])
        qc = _labels(q_camids, "q_camids", D.shape[0])
        if self.proto.junk_minus1 and (qp == -1).any():
            raise ValueError(f"protocol {self.proto.name!r} treats pid -1 as junk, so queries "
                             "must not have pid -1; drop those queries")
        if check_finite and not bool(torch.isfinite(D).all()):
            raise ValueError("distance matrix contains NaN or inf; check the features")
        if self.proto.same_camera_matches:  # a camera no gallery entry has: nothing is junk
            qc = np.full_like(qc, int(self.gal.cams.min(initial=0)) - 1)
        s = _chunk_stats(D, qp, qc, self.gal, self.proto.junk_minus1)
        self._add_stats(s)
        if self.proto.cmc.startswith("sgs"):
            _sgs_chunk(D.cpu().numpy(), qp, qc, self.gal, self.proto.cmc == "sgs_othercam",
                       self.rng, self.hist)

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
            raise ValueError(f"no query has a valid match in the gallery ({nq} queries) under "
                             f"protocol {self.proto.name!r}; check pids/camids")
        p = self.proto
        if p.warn_invalid and nv < nq:
            warnings.warn(f"{nq - nv} of {nq} queries have no valid match: the official "
                          f"{p.name} code would report mAP = NaN; reporting the mean over the "
                          f"{nv} valid queries (per-query AP is NaN for the others)", stacklevel=3)
        mAP = float(np.nansum(ap) / (nq if p.mean_over == "all" else nv))
        cmc = np.cumsum(self.hist) / (nq if p.cmc_over == "all" else nv)
        return EvalResult(cmc=cmc, mAP=mAP, mINP=float(np.nanmean(inp)), ap=ap, num_valid=nv,
                          protocol=p.name, ap_mode=self.ap_mode, inp=inp, num_queries=nq)


def _row_chunks(n_rows: int, n_cols: int, chunk_size: int | None) -> Iterable[slice]:
    step = chunk_size or max(1, _DISTMAT_CHUNK_ELEMS // max(n_cols, 1))
    for s in range(0, n_rows, step):
        yield slice(s, min(s + step, n_rows))


def evaluate_distmat(distmat, q_pids, g_pids, q_camids, g_camids, protocol: str = "market1501",
                     max_rank: int = 50, seed: int | None = None, ap_mode: str | None = None,
                     chunk_size: int | None = None) -> EvalResult:
    """Evaluate a (num_query, num_gallery) distance matrix (smaller = more similar).

    protocol: one of ``reidbox.evaluation.PROTOCOLS``; ap_mode overrides its AP formula
    ("step", "trapezoid", "sklearn", "sklearn_pre019"); seed drives the single-gallery-shot draws
    (None = 0). Ties are broken by lower gallery index, except where sklearn-style AP groups them.
    """
    D = torch.as_tensor(distmat)
    if D.ndim != 2:
        raise ValueError(f"distmat must be 2-D (num_query, num_gallery), got {tuple(D.shape)}")
    qp = _labels(q_pids, "q_pids", D.shape[0])
    qc = _labels(q_camids, "q_camids", D.shape[0])
    _labels(g_pids, "g_pids", D.shape[1])
    acc = Accumulator(g_pids, g_camids, protocol, max_rank, seed, ap_mode)
    for sl in _row_chunks(D.shape[0], D.shape[1], chunk_size):
        acc.add(D[sl], qp[sl], qc[sl])
    return acc.result()
