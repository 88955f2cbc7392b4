"""Gallery indexes: an exact torch backend (CPU/GPU) and a FAISS backend (imported when used).

Both give top-k search (ascending distance, ties by lower gallery index, also where the k-th
place cuts through a tie)
and full distance blocks, which the exact evaluation streams through.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

import numpy as np
import torch

from .distance import as_features, check_metric, distance_block, prepare
from ..errors import InputError, MissingDependencyError, NotReadyError

BACKENDS = ("auto", "torch", "faiss")


def tie_sorted(vals: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reorder each row by (distance, index): stable sort by index, then stable by distance."""
    o = torch.sort(idx, dim=1, stable=True).indices
    vals, idx = vals.gather(1, o), idx.gather(1, o)
    o = torch.sort(vals, dim=1, stable=True).indices
    return vals.gather(1, o), idx.gather(1, o)


def smallest(d: torch.Tensor, k: int) -> torch.Tensor:
    """(c, k) column indices of the k smallest entries of each row of ``d`` (c, n), ties taken
    by lower column, in ascending (value, column) order: the neighbour order of a stable
    argsort, which the reference (and :func:`rerank`) cut. ``topk`` alone keeps an arbitrary
    subset of the entries tied with the k-th value."""
    k = min(k, d.shape[1])
    if k == 0:
        return torch.empty(len(d), 0, dtype=torch.int64, device=d.device)
    kth = torch.topk(d, k, dim=1, largest=False, sorted=True).values[:, -1:]  # (c, 1)
    keep = d <= kth
    over = (keep.sum(1) > k).nonzero()[:, 0]  # rows with more ties at the k-th value than room
    if len(over):
        sub = d[over]
        tied = sub == kth[over]
        need = k - (sub < kth[over]).sum(1, keepdim=True)
        keep[over] = (sub < kth[over]) | (tied & (tied.cumsum(1, dtype=torch.int32) <= need))
    cols = keep.nonzero()[:, 1].view(len(d), k)  # ascending columns per row
    order = torch.sort(d.gather(1, cols), dim=1, stable=True).indices
    return cols.gather(1, order)


class Index(ABC):
    """Nearest-neighbour index over gallery features under one metric."""

    metric: str

    @property
    @abstractmethod
    def ntotal(self) -> int:
        """Number of gallery items."""

    @abstractmethod
    def add(self, g_feats) -> Index:
        """Set the (n, D) gallery features; returns self."""

    @abstractmethod
    def distances(self, q_feats) -> torch.Tensor:
        """(c, n) distances from query rows (c, D) to every gallery item."""

    @abstractmethod
    def search(self, q_feats, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(c, k) ascending distances and gallery indices of the k nearest items."""

    def blocks(self, q_feats, chunk_size: int) -> Iterator[tuple[slice, torch.Tensor]]:
        """Distance blocks over query chunks: (rows, (rows, n) distances)."""
        for s in range(0, len(q_feats), chunk_size):
            sl = slice(s, min(s + chunk_size, len(q_feats)))
            yield sl, self.distances(q_feats[sl])


class TorchIndex(Index):
    """Exact brute force with torch matmuls on ``device`` (no extra dependency)."""

    def __init__(self, metric: str = "euclidean", device: torch.device | str | None = None):
        self.metric = check_metric(metric)
        self.device = torch.device(device) if device is not None else None
        self.g: torch.Tensor | None = None
        self.g_sq: torch.Tensor | None = None

    @property
    def ntotal(self) -> int:
        return 0 if self.g is None else len(self.g)

    def add(self, g_feats) -> TorchIndex:
        g = as_features(g_feats, "g_feats", self.device)
        self.device = g.device
        self.g, self.g_sq = prepare(g, self.metric)
        return self

    def _query(self, q_feats) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.g is None:
            raise NotReadyError("index is empty; call add(g_feats) first")
        q = as_features(q_feats, "q_feats", self.device)
        if q.shape[1] != self.g.shape[1]:
            raise InputError(f"query dim {q.shape[1]} != gallery dim {self.g.shape[1]}")
        return prepare(q, self.metric)

    def distances(self, q_feats) -> torch.Tensor:
        q, q_sq = self._query(q_feats)
        return distance_block(q, q_sq, self.g, self.g_sq, self.metric)

    def search(self, q_feats, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.distances(q_feats)
        idx = smallest(d, int(k))
        return d.gather(1, idx), idx


class FaissIndex(Index):
    """FAISS flat (exact) index: ``IndexFlatL2`` / ``IndexFlatIP``; GPU and sharded over all GPUs
    when the installed FAISS has GPU support and ``use_gpu`` allows it."""

    def __init__(self, metric: str = "euclidean", use_gpu: bool | None = None):
        try:
            import faiss
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise MissingDependencyError(
                "backend='faiss' needs the faiss package (pip install faiss-cpu, "
                "or faiss-gpu); backend='torch' needs nothing extra"
            ) from e
        self.faiss = faiss
        self.metric = check_metric(metric)
        ngpu = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        self.use_gpu = ngpu > 0 if use_gpu is None else bool(use_gpu)
        if self.use_gpu and ngpu == 0:
            raise NotReadyError("use_gpu=True but this FAISS build sees no GPU")
        self.index = None
        self.g: np.ndarray | None = None
        self._res = faiss.StandardGpuResources() if self.use_gpu else None

    @property
    def ntotal(self) -> int:
        return 0 if self.g is None else len(self.g)

    def _prep(self, x, name: str) -> np.ndarray:
        t, _ = prepare(as_features(x, name, "cpu"), self.metric)
        if self.g is not None and name == "q_feats" and t.shape[1] != self.g.shape[1]:
            raise InputError(f"query dim {t.shape[1]} != gallery dim {self.g.shape[1]}")
        return np.ascontiguousarray(t.numpy())

    def add(self, g_feats) -> FaissIndex:
        self.g = self._prep(g_feats, "g_feats")
        self.index = None  # built on the first search: distance blocks need only the vectors
        return self

    def _built(self):
        if self.g is None:
            raise NotReadyError("index is empty; call add(g_feats) first")
        if self.index is None:
            faiss = self.faiss
            d = self.g.shape[1]
            index = faiss.IndexFlatIP(d) if self.metric == "cosine" else faiss.IndexFlatL2(d)
            if self.use_gpu:
                co = faiss.GpuMultipleClonerOptions()
                co.shard = True
                index = faiss.index_cpu_to_all_gpus(index, co=co)
            index.add(self.g)
            self.index = index
        return self.index

    def _to_dist(self, raw: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(raw)
        if self.metric == "cosine":
            return t.neg_().add_(1.0)
        t.clamp_(min=0.0)
        return t.sqrt_() if self.metric == "euclidean" else t

    def distances(self, q_feats) -> torch.Tensor:
        if self.g is None:
            raise NotReadyError("index is empty; call add(g_feats) first")
        q = self._prep(q_feats, "q_feats")
        mt = self.faiss.METRIC_INNER_PRODUCT if self.metric == "cosine" else self.faiss.METRIC_L2
        if self.use_gpu:
            raw = self.faiss.pairwise_distance_gpu(self._res, q, self.g, metric=mt)
        else:
            raw = self.faiss.pairwise_distances(q, self.g, metric=mt)
        return self._to_dist(np.ascontiguousarray(raw, dtype=np.float32))

    def search(self, q_feats, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = self._built()
        k = min(int(k), self.ntotal)
        q = self._prep(q_feats, "q_feats")
        wide = min(k + 1, self.ntotal)
        while True:  # widen until every entry tied with the k-th is in: FAISS cuts ties anyhow
            raw, idx = index.search(q, wide)
            if wide == self.ntotal or bool((raw[:, k - 1] < raw[:, wide - 1]).all()):
                break
            wide = min(2 * wide, self.ntotal)
        vals, idx = tie_sorted(self._to_dist(raw), torch.from_numpy(idx).long())
        return vals[:, :k].contiguous(), idx[:, :k].contiguous()


def faiss_available() -> bool:
    """Whether ``import faiss`` works (checked without keeping the module)."""
    import importlib.util

    return importlib.util.find_spec("faiss") is not None


def build_index(
    g_feats,
    metric: str = "euclidean",
    backend: str = "auto",
    device: torch.device | str | None = None,
) -> Index:
    """Index over gallery features. backend "auto": FAISS when installed, else torch; features
    already on a GPU stay with the torch backend on that device."""
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
    on_gpu = isinstance(g_feats, torch.Tensor) and g_feats.is_cuda
    if backend == "faiss" or (
        backend == "auto" and faiss_available() and not on_gpu and device is None
    ):
        return FaissIndex(metric).add(g_feats)
    return TorchIndex(metric, device).add(g_feats)
