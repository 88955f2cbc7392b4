"""Evaluation from features, query chunk by query chunk: never the full query x gallery matrix
nor its sort. Near-tied float32 distances are re-scored in float64 from the features, so the
numbers do not depend on the backend or the chunk size (see ``NEAR_TIE_TOL``)."""

from __future__ import annotations

import torch

from ..retrieval.exact import NEAR_TIE_TOL, FeatureExact  # noqa: F401 (re-exported)
from ..retrieval.index import BACKENDS
from ..retrieval.labels import as_labels
from ..retrieval.rank import distance_blocks
from .metrics import Accumulator, EvalResult
from .settings import EvalSettings
from ..errors import InputError

#: Distance entries per block on the CPU when chunk_size is not given (~64 MB of float32).
_BLOCK_ELEMS = 1 << 24
#: Bytes one block entry costs at the peak, with margin: about six float32 blocks (the
#: distances, the GEMM's or FAISS's temporary of the same size, the int32 histogram over n/4
#: bins, flag and mask tables, allocator slack), plus ~100 MB of fixed-size slices,
#: flagged-pair lists and re-scoring batches; measured in docs/benchmarks.md.
BYTES_PER_ENTRY = 24


def default_chunk_size(
    num_gallery: int, device: torch.device | str | None = None, free_bytes: int | None = None
) -> int:
    """Query rows per block: about 16M distances on the CPU; on a GPU a quarter of the free
    memory (``free_bytes``, default ``torch.cuda.mem_get_info``) at ``BYTES_PER_ENTRY`` each."""
    elems = _BLOCK_ELEMS
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda" or free_bytes is not None:
        if free_bytes is None:
            free_bytes = torch.cuda.mem_get_info(dev)[0]
        elems = max(elems, int(free_bytes) // 4 // BYTES_PER_ENTRY)
    return max(1, elems // max(num_gallery, 1))


def evaluate(
    q_feats,
    g_feats,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    settings: EvalSettings | None = None,
    device: torch.device | str | None = None,
) -> EvalResult:
    """Exact metrics of (m, D) query and (n, D) gallery features under ``settings``
    (:class:`EvalSettings`: protocol, metric, backend, chunk size, max rank, seed, AP mode,
    re-ranking; default ``EvalSettings()``).

    Gives the numbers :func:`evaluate_distmat` gives on the full distance matrix of the same
    metric. backend: "torch" (exact GEMM blocks on ``device``, default CPU or the features'
    device), "faiss" (FAISS pairwise distances, GPU when available); "auto" = FAISS when it is
    installed and the features are on the CPU (measured as fast or faster, see
    docs/benchmarks.md), else torch. Both compute every distance of a query row in float32;
    distances within ``NEAR_TIE_TOL`` of a true match's are re-scored in float64, so backend and
    chunk size do not change the numbers (ties: lower gallery index first). rerank: None or
    dict(k1=20, k2=6, lambda_value=0.3) for k-reciprocal re-ranking (sparse feature path).
    """
    s = settings or EvalSettings()
    if s.backend not in BACKENDS:
        raise InputError(f"unknown backend {s.backend!r}; available: {', '.join(BACKENDS)}")
    m, n = len(q_feats), len(g_feats)
    qp, qc = as_labels(q_pids, "q_pids", m), as_labels(q_camids, "q_camids", m)
    as_labels(g_pids, "g_pids", n)
    acc = Accumulator(g_pids, g_camids, s.protocol, s.max_rank, s.seed, s.ap_mode)
    dev = device if device is not None else _features_gpu(q_feats, g_feats)
    chunk = int(s.chunk_size) if s.chunk_size else default_chunk_size(n, dev)
    if chunk < 1:
        raise InputError(f"chunk_size must be >= 1, got {s.chunk_size}")
    blocks, exact = distance_blocks(q_feats, g_feats, s.metric, s.backend, chunk, dev, s.rerank)
    for sl, block in blocks:
        acc.add(block, qp[sl], qc[sl], exact=exact.at(sl) if exact is not None else None)
    return acc.result()


def _features_gpu(*feats) -> torch.device | None:
    """The GPU the first CUDA tensor among ``feats`` lives on (None: all on the CPU)."""
    return next((x.device for x in feats if isinstance(x, torch.Tensor) and x.is_cuda), None)
