"""Approximate nearest-neighbour search with FAISS: IVF-Flat, IVF-PQ and HNSW, a choice beside
the exact indexes (which stay the default everywhere).

Each kind trades recall for speed or memory; docs/benchmarks.md measures recall@1/@10 against
exact search, build time, query latency and memory per vector. Distances come back in the
metric's own units (Euclidean: the square root of FAISS's squared L2; cosine: 1 - inner product
of unit rows), so results read like the exact index's. FAISS is imported only here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from .distance import as_features, check_metric, prepare

APPROX_KINDS = ("ivf_flat", "ivf_pq", "hnsw")


def _faiss():
    try:
        import faiss
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "approximate search needs the faiss package: pip install faiss-cpu (or faiss-gpu)"
        ) from None
    return faiss


@dataclass
class ApproxParams:
    """Settings of one approximate index; 0 means "derived from the gallery size".

    nlist: IVF cells (default 4 sqrt(n), at most n / 39 so k-means has 39 points per cell);
    nprobe: cells searched per query (default nlist / 8, at least 16: the measured point where
    recall@10 passes 0.95 on clustered features); pq_m: PQ sub-vectors of 8 bits (default
    d / 8: one byte per 8 dimensions); pq_bits: bits per sub-vector code (default 8, fewer
    for galleries under 256 x 39 vectors, so each codebook entry has 39 training points);
    refine: IVF-PQ re-scores ``refine`` x k candidates with
    the full vectors, kept beside the codes (0: PQ distances only, d / 8 bytes per vector);
    hnsw_m: graph degree; ef_search / ef_construction: HNSW beam widths.
    """

    nlist: int = 0
    nprobe: int = 0
    pq_m: int = 0
    pq_bits: int = 0
    refine: int = 4
    hnsw_m: int = 32
    ef_search: int = 128
    ef_construction: int = 80

    def resolved(self, n: int, d: int) -> ApproxParams:
        """Concrete values for ``n`` vectors of dimension ``d``."""
        nlist = self.nlist or max(1, min(int(4 * math.sqrt(n)), n // 39))
        nprobe = self.nprobe or min(nlist, max(16, nlist // 8))
        pq_m = self.pq_m or next(m for m in (d // 8, d // 4, d // 2, d, 1) if m and d % m == 0)
        pq_bits = self.pq_bits or max(1, min(8, (n // 39).bit_length() - 1))
        return ApproxParams(
            nlist,
            nprobe,
            pq_m,
            pq_bits,
            self.refine,
            self.hnsw_m,
            self.ef_search,
            self.ef_construction,
        )


class ApproxIndex:
    """One FAISS approximate index over (n, D) gallery features under ``metric``."""

    def __init__(self, kind: str, metric: str = "euclidean", params: ApproxParams | None = None):
        if kind not in APPROX_KINDS:
            raise ValueError(
                f"unknown approximate index {kind!r}; available: {', '.join(APPROX_KINDS)} "
                "(or exact search, the default)"
            )
        self.kind, self.metric = kind, check_metric(metric)
        self.params = params or ApproxParams()
        self.index = None
        self.faiss = _faiss()

    def _prep(self, x, name: str) -> np.ndarray:
        t, _ = prepare(as_features(x, name, "cpu"), self.metric)
        return np.ascontiguousarray(t.numpy())

    @property
    def ntotal(self) -> int:
        return 0 if self.index is None else int(self.index.ntotal)

    def build(self, g_feats) -> ApproxIndex:
        """Train (IVF k-means / PQ codebooks) and add the gallery; returns self."""
        faiss = self.faiss
        g = self._prep(g_feats, "g_feats")
        n, d = g.shape
        p = self.params = self.params.resolved(n, d)
        ip = self.metric == "cosine"
        mt = faiss.METRIC_INNER_PRODUCT if ip else faiss.METRIC_L2
        if self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, p.hnsw_m, mt)
            index.hnsw.efConstruction = p.ef_construction
        else:
            quant = faiss.IndexFlatIP(d) if ip else faiss.IndexFlatL2(d)
            if self.kind == "ivf_flat":
                index = faiss.IndexIVFFlat(quant, d, p.nlist, mt)
            else:
                index = faiss.IndexIVFPQ(quant, d, p.nlist, p.pq_m, p.pq_bits, mt)
                index.pq.cp.min_points_per_centroid = 1  # small galleries: no stderr warning
            index.cp.min_points_per_centroid = 1
            index.train(g)
            if self.kind == "ivf_pq" and p.refine:
                index = faiss.IndexRefineFlat(index)
        index.add(g)
        self.index = index
        self._set_search_params()
        return self

    def _set_search_params(self) -> None:
        p, faiss = self.params, self.faiss
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = p.ef_search
            return
        faiss.extract_index_ivf(self.index).nprobe = p.nprobe
        if isinstance(self.index, faiss.IndexRefine):
            self.index.k_factor = float(p.refine)

    def search(self, q_feats, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(c, k) distances and gallery indices, nearest first; -1 / inf where the index found
        fewer than k (an IVF probe of few cells)."""
        if self.index is None:
            raise RuntimeError("approximate index is empty; call build(g_feats) first")
        q = self._prep(q_feats, "q_feats")
        if q.shape[1] != self.index.d:
            raise ValueError(f"query dim {q.shape[1]} != gallery dim {self.index.d}")
        k = min(int(k), self.ntotal)
        if self.kind == "hnsw":  # HNSW returns at most efSearch results
            self.index.hnsw.efSearch = max(self.params.ef_search, k)
        raw, idx = self.index.search(q, k)
        d = torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32))
        if self.metric == "cosine":
            d = d.neg_().add_(1.0)
        else:
            d.clamp_(min=0.0)
            if self.metric == "euclidean":
                d.sqrt_()
        missing = torch.from_numpy(idx < 0)
        return d.masked_fill_(missing, float("inf")), torch.from_numpy(idx).long()

    def memory_bytes(self) -> int:
        """Bytes of the serialized index (codes, lists, graph, codebooks)."""
        return int(self.faiss.serialize_index(self.index).nbytes)

    def save(self, path: str) -> None:
        self.faiss.write_index(self.index, path)

    @classmethod
    def load(
        cls, path: str, kind: str, metric: str, params: ApproxParams | None = None
    ) -> ApproxIndex:
        self = cls(kind, metric, params)
        self.index = self.faiss.read_index(path)
        if kind != "hnsw":  # the trained cells decide nlist (and so the default nprobe)
            nlist = int(self.faiss.extract_index_ivf(self.index).nlist)
            self.params = dataclasses.replace(self.params, nlist=nlist)
        self.params = self.params.resolved(self.ntotal, self.index.d)
        self._set_search_params()
        return self


def recall_at(approx: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean fraction of the exact top-k gallery indices that the approximate top-k contains."""
    a, e = np.asarray(approx)[:, :k], np.asarray(exact)[:, :k]
    hits = (a[:, :, None] == e[:, None, :]).any(1).sum(1)
    return float(hits.mean() / e.shape[1])
