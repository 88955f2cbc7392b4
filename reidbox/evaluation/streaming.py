"""Evaluation from features, query chunk by query chunk: never the full query x gallery matrix
nor its sort (peak memory: features + one (chunk, n) block and its per-entry temporaries)."""

from __future__ import annotations

import torch

from ..retrieval.index import BACKENDS, FaissIndex, TorchIndex, faiss_available
from ..retrieval.rerank import rerank_feature_blocks
from .metrics import Accumulator, EvalResult, _labels

#: Distance entries per block when chunk_size is not given (~64 MB of float32 distances).
_BLOCK_ELEMS = 1 << 24


def default_chunk_size(num_gallery: int) -> int:
    """Query rows per block so that one block holds about 16M distances."""
    return max(1, _BLOCK_ELEMS // max(num_gallery, 1))


def evaluate(q_feats, g_feats, q_pids, g_pids, q_camids, g_camids, protocol: str = "market1501",
             metric: str = "euclidean", backend: str = "auto", chunk_size: int | None = None,
             max_rank: int = 50, seed: int | None = None, ap_mode: str | None = None,
             rerank: dict | None = None, device: torch.device | str | None = None) -> EvalResult:
    """Exact metrics of (m, D) query and (n, D) gallery features.

    Gives the numbers :func:`evaluate_distmat` gives on the full distance matrix of the same
    metric. backend: "torch" (exact GEMM blocks on ``device``, default CPU or the features'
    device), "faiss" (FAISS pairwise distances, GPU when available); "auto" = FAISS when it is
    installed and the features are on the CPU (measured as fast or faster, see
    docs/benchmarks.md), else torch. Both compute every distance of a query row, in float32, so
    their numbers can differ in the last float bits of near-tied distances. rerank: None or
    dict(k1=20, k2=6, lambda_value=0.3) for k-reciprocal re-ranking (sparse feature path).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
    m, n = len(q_feats), len(g_feats)
    qp, qc = _labels(q_pids, "q_pids", m), _labels(q_camids, "q_camids", m)
    _labels(g_pids, "g_pids", n)
    acc = Accumulator(g_pids, g_camids, protocol, max_rank, seed, ap_mode)
    chunk = int(chunk_size) if chunk_size else default_chunk_size(n)
    if chunk < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if rerank is not None:
        allowed = {"k1", "k2", "lambda_value"}
        if not isinstance(rerank, dict) or set(rerank) - allowed:
            raise ValueError(f"rerank must be None or a dict with keys {sorted(allowed)}, "
                             f"got {rerank!r}")
        blocks = rerank_feature_blocks(q_feats, g_feats, metric=metric, chunk_size=chunk,
                                       **rerank)
    else:
        on_gpu = any(isinstance(x, torch.Tensor) and x.is_cuda for x in (q_feats, g_feats))
        if backend == "faiss" or (backend == "auto" and device is None and not on_gpu
                                  and faiss_available()):
            index = FaissIndex(metric).add(g_feats)
        else:
            dev = device
            if dev is None and isinstance(q_feats, torch.Tensor) and q_feats.is_cuda:
                dev = q_feats.device
            index = TorchIndex(metric, dev).add(g_feats)
        blocks = index.blocks(q_feats, chunk)
    for sl, block in blocks:
        acc.add(block, qp[sl], qc[sl], check_finite=rerank is not None)
    return acc.result()


def evaluate_kwargs(cfg) -> dict:
    """Keyword arguments for :func:`evaluate` from a config's TEST node (protocol, metric,
    backend, chunking, seed, AP override, re-ranking), so callers need not map keys by hand."""
    t = cfg.TEST
    kw = dict(protocol=t.PROTOCOL, metric=t.METRIC, backend=t.BACKEND,
              chunk_size=t.CHUNK_SIZE or None, max_rank=t.MAX_RANK, seed=t.SEED,
              ap_mode=t.AP_MODE or None)
    if t.RERANK.ENABLED:
        kw["rerank"] = dict(k1=t.RERANK.K1, k2=t.RERANK.K2, lambda_value=t.RERANK.LAMBDA)
    return kw
