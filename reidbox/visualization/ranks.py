"""Rank-list images: each query followed by its top-k gallery images, green = same identity,
red = different identity, the distance printed under each (OpenCV)."""

from __future__ import annotations

import os
import random
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

GREEN, RED, GREY = (0, 170, 0), (0, 0, 220), (90, 90, 90)  # BGR


def rank_lists(q_feats: torch.Tensor, g_feats: torch.Tensor, topk: int,
               metric: str = "euclidean", q_pids: Optional[Sequence[int]] = None,
               g_pids: Optional[Sequence[int]] = None, q_camids: Optional[Sequence[int]] = None,
               g_camids: Optional[Sequence[int]] = None, chunk: int = 256
               ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Top-``topk`` gallery indices and distances per query: ((Q, k) dist, (Q, k) index).

    With ids and cameras given, gallery images the Market protocol ignores (same identity and
    same camera as the query, junk id -1) are left out, as in evaluation. Queries are processed
    in chunks so the dense Q x G matrix never exists at once.
    """
    q, g = q_feats.float(), g_feats.float()
    if metric == "cosine":
        q, g = torch.nn.functional.normalize(q, dim=1), torch.nn.functional.normalize(g, dim=1)
    elif metric not in ("euclidean", "sqeuclidean"):
        raise KeyError(f"unknown metric {metric!r}; available: cosine, euclidean, sqeuclidean")
    k = min(topk, g.shape[0])
    mask_on = q_pids is not None and g_pids is not None
    if mask_on:
        qp, gp = torch.as_tensor(np.asarray(q_pids)), torch.as_tensor(np.asarray(g_pids))
        qc = torch.as_tensor(np.asarray(q_camids if q_camids is not None else [0] * len(qp)))
        gc = torch.as_tensor(np.asarray(g_camids if g_camids is not None else [1] * len(gp)))
    dists, idxs = [], []
    for s in range(0, q.shape[0], chunk):
        qs = q[s:s + chunk]
        if metric == "cosine":
            d = 1 - qs @ g.T  # (c, G)
        else:
            d = torch.cdist(qs, g)
            if metric == "sqeuclidean":
                d = d.pow(2)
        if mask_on:
            ignore = (qp[s:s + chunk, None] == gp[None]) & (qc[s:s + chunk, None] == gc[None])
            d = d.masked_fill(ignore | (gp[None] == -1), float("inf"))
        v, i = torch.topk(d, k, dim=1, largest=False)
        dists.append(v)
        idxs.append(i)
    return torch.cat(dists), torch.cat(idxs)


def _tile(path: str, size: Tuple[int, int], colour, text: str, border: int = 4) -> np.ndarray:
    import cv2

    h, w = size
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read image {path}")
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
    img = cv2.copyMakeBorder(img, border, border, border, border, cv2.BORDER_CONSTANT,
                             value=colour)
    strip = np.full((18, img.shape[1], 3), 255, np.uint8)
    cv2.putText(strip, text, (2, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1,
                cv2.LINE_AA)
    return np.concatenate([img, strip], axis=0)


def draw_rank_list(query_path: str, gallery_paths: Sequence[str], matches: Sequence[bool],
                   distances: Sequence[float], out_path: str,
                   size: Tuple[int, int] = (128, 64), query_label: str = "query") -> str:
    """One row: the query (grey border), a gap, then the ranked gallery images with green
    (true match) or red (false match) borders and the distance under each; written as PNG."""
    import cv2

    tiles = [_tile(query_path, size, GREY, query_label)]
    gap = np.full((tiles[0].shape[0], 12, 3), 255, np.uint8)
    row = [tiles[0], gap]
    for p, ok, d in zip(gallery_paths, matches, distances):
        row.append(_tile(p, size, GREEN if ok else RED, f"{d:.3f}"))
        row.append(np.full((tiles[0].shape[0], 3, 3), 255, np.uint8))
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    if not cv2.imwrite(out_path, np.concatenate(row, axis=1)):
        raise OSError(f"cannot write {out_path}")
    return out_path


def visualize_ranks(query, gallery, q_feats: torch.Tensor, g_feats: torch.Tensor,
                    out_dir: str, topk: int = 10, num_queries: int = 10,
                    query_indices: Optional[Sequence[int]] = None, metric: str = "euclidean",
                    seed: int = 0, size: Tuple[int, int] = (128, 64)) -> List[str]:
    """PNG rank lists for chosen (``query_indices``) or ``num_queries`` random queries.

    ``query``/``gallery``: items with ``.path``, ``.pid``, ``.camid`` in feature order;
    ``q_feats`` (Q, D), ``g_feats`` (G, D). Returns the written paths.
    """
    if topk < 1:
        raise ValueError(f"topk must be >= 1, got {topk}")
    if query_indices is None:
        rng = random.Random(seed)
        query_indices = sorted(rng.sample(range(len(query)), min(num_queries, len(query))))
    bad = [i for i in query_indices if not 0 <= i < len(query)]
    if bad:
        raise ValueError(f"query indices {bad} out of range: there are {len(query)} queries")
    sel = list(query_indices)
    qs = [query[i] for i in sel]
    dist, idx = rank_lists(q_feats[sel], g_feats, topk, metric, [q.pid for q in qs],
                           [g.pid for g in gallery], [q.camid for q in qs],
                           [g.camid for g in gallery])
    paths = []
    for row, (qi, q) in enumerate(zip(sel, qs)):
        keep = torch.isfinite(dist[row])
        ranked = [gallery[j] for j in idx[row][keep].tolist()]
        name = f"query{qi:05d}_id{q.pid}_c{q.camid}.png"
        paths.append(draw_rank_list(q.path, [g.path for g in ranked],
                                    [g.pid == q.pid for g in ranked],
                                    dist[row][keep].tolist(), os.path.join(out_dir, name), size,
                                    query_label=f"id {q.pid}"))
    return paths


def visualize_model_ranks(cfg, weights: Optional[str], out_dir: Optional[str] = None,
                          topk: int = 10, num_queries: int = 10,
                          query_indices: Optional[Sequence[int]] = None,
                          progress: bool = True) -> List[str]:
    """Rank lists of a trained model on every ``DATASETS.TEST`` set, into
    ``out_dir/<testset>/`` (default ``OUTPUT_DIR/ranks``)."""
    from ..data import build_test_loader, build_test_sets
    from ..engine.runner import build_test_model
    from ..evaluation.evaluator import extract_features
    from ..utils.misc import resolve_device

    device = resolve_device(cfg.DEVICE)
    model = build_test_model(cfg, weights or cfg.MODEL.WEIGHTS or None, device)
    out_dir = out_dir or os.path.join(cfg.OUTPUT_DIR, "ranks")
    paths: List[str] = []
    for ts in build_test_sets(cfg):
        feats = extract_features(model, build_test_loader(cfg, list(ts.query) + list(ts.gallery)),
                                 device, cfg.TEST.FLIP_AUG, cfg.TEST.NORM_FEAT,
                                 desc=f"features {ts.name}", progress=progress)
        nq = len(ts.query)
        paths += visualize_ranks(ts.query, ts.gallery, feats[:nq], feats[nq:],
                                 os.path.join(out_dir, ts.name), topk, num_queries,
                                 query_indices, cfg.TEST.METRIC, cfg.SEED,
                                 tuple(cfg.INPUT.SIZE_TEST))
    return paths
