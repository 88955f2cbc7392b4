"""Feature extraction and evaluation of a model on query/gallery sets."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

logger = logging.getLogger("reidbox")


@torch.no_grad()
def extract_features(model: nn.Module, loader, device: torch.device, flip: bool = False,
                     normalize: bool = True, desc: str = "features",
                     progress: bool = True) -> torch.Tensor:
    """Eval-mode features of every image in ``loader`` order: (N, D) float32 on the CPU.

    ``flip`` averages the features of the image and its horizontal mirror; ``normalize``
    L2-normalises the (averaged) feature.
    """
    was_training = model.training
    model.eval()
    feats = []
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False, dynamic_ncols=True):
        images = batch["images"].to(device, non_blocking=True)
        f = model(images).float()
        if flip:
            f = (f + model(images.flip(3)).float()) / 2
        if normalize:
            f = F.normalize(f, dim=1)
        feats.append(f.cpu())
    model.train(was_training)
    return torch.cat(feats) if feats else torch.zeros(0, 0)


@dataclass
class Metrics:
    """Headline numbers of one evaluation, as fractions in [0, 1]."""

    mAP: float
    rank1: float
    rank5: float
    rank10: float
    mINP: float
    num_query: int
    num_gallery: int
    num_valid: int
    protocol: str
    cmc: List[float]

    def headline(self) -> Dict[str, float]:
        return {"mAP": self.mAP, "rank1": self.rank1, "rank5": self.rank5,
                "rank10": self.rank10, "mINP": self.mINP}


def _at(cmc: np.ndarray, k: int) -> float:
    return float(cmc[min(k, len(cmc)) - 1]) if len(cmc) else float("nan")


def evaluate_features(q_feats: torch.Tensor, g_feats: torch.Tensor, q_pids: Sequence[int],
                      g_pids: Sequence[int], q_camids: Sequence[int], g_camids: Sequence[int],
                      protocol: str = "market1501", metric: str = "euclidean", max_rank: int = 50,
                      **kwargs) -> Metrics:
    """Run the retrieval protocol on features and return the headline metrics."""
    from . import evaluate

    r = evaluate(q_feats, g_feats, np.asarray(q_pids), np.asarray(g_pids), np.asarray(q_camids),
                 np.asarray(g_camids), protocol=protocol, metric=metric, max_rank=max_rank,
                 **kwargs)
    cmc = np.asarray(r.cmc, dtype=np.float64)
    return Metrics(mAP=float(r.mAP), rank1=_at(cmc, 1), rank5=_at(cmc, 5), rank10=_at(cmc, 10),
                   mINP=float(r.mINP), num_query=len(q_pids), num_gallery=len(g_pids),
                   num_valid=int(r.num_valid), protocol=protocol, cmc=cmc.tolist())


def extract_query_gallery(model: nn.Module, query, gallery, make_loader, device: torch.device,
                          flip: bool = False, normalize: bool = True, progress: bool = True,
                          name: Optional[str] = None):
    """Query and gallery features ``(Q, D), (G, D)`` via ``make_loader(items)``.

    Under DDP every rank extracts a contiguous shard and rank 0 gathers them; the other ranks
    get ``(None, None)``.
    """
    from ..utils import distributed as du

    items = list(query) + list(gallery)
    rank, world = du.get_rank(), du.get_world_size()
    chunk = -(-len(items) // world)
    shard = items[rank * chunk:(rank + 1) * chunk]
    feats = extract_features(model, make_loader(shard), device, flip, normalize,
                             desc=f"features {name or ''}".strip(),
                             progress=progress and rank == 0)
    if world > 1:
        parts = du.all_gather_object(feats)
        if rank != 0:
            return None, None
        feats = torch.cat([p for p in parts if p.numel()])
    return feats[:len(query)], feats[len(query):]


def evaluate_model(model: nn.Module, query, gallery, make_loader, device: torch.device,
                   flip: bool = False, normalize: bool = True, protocol: str = "market1501",
                   metric: str = "euclidean", max_rank: int = 50, progress: bool = True,
                   name: Optional[str] = None, features_out: Optional[dict] = None,
                   **kwargs) -> Metrics:
    """Extract query and gallery features and evaluate them with ``protocol``.

    Under DDP rank 0 scores and the result is broadcast, so every rank returns the same
    :class:`Metrics`. ``features_out`` (a dict) receives ``query`` / ``gallery`` features on
    rank 0 for callers that also want rank lists.
    """
    from ..utils import distributed as du

    qf, gf = extract_query_gallery(model, query, gallery, make_loader, device, flip, normalize,
                                   progress, name)
    if qf is None:
        return du.broadcast_object(None)
    if features_out is not None:
        features_out.update(query=qf, gallery=gf)
    result = evaluate_features(qf, gf, [s.pid for s in query], [s.pid for s in gallery],
                               [s.camid for s in query], [s.camid for s in gallery], protocol,
                               metric, max_rank, **kwargs)
    return du.broadcast_object(result) if du.get_world_size() > 1 else result


def save_rank_lists(path: str, query, gallery, q_feats: torch.Tensor, g_feats: torch.Tensor,
                    topk: int, metric: str = "euclidean", protocol: str = "market1501",
                    **rank_kwargs) -> str:
    """Per query, its top-``topk`` gallery images as CSV rows (rank 1 first), ranked by
    :func:`reidbox.retrieval.rank_lists` with ``protocol``'s junk rule and the evaluation's tie
    rule, so the rank-1 column gives the metrics' rank-1."""
    import csv

    from ..retrieval import rank_lists

    idx, dist = rank_lists(q_feats, g_feats, topk, metric, q_pids=[q.pid for q in query],
                           g_pids=[g.pid for g in gallery], q_camids=[q.camid for q in query],
                           g_camids=[g.camid for g in gallery], protocol=protocol,
                           **rank_kwargs)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["query", "query_pid", "query_camid", "rank", "gallery", "gallery_pid",
                    "gallery_camid", "distance", "same_identity"])
        for qi, q in enumerate(query):
            for r, (gi, d) in enumerate(zip(idx[qi], dist[qi]), start=1):
                if gi < 0:
                    break
                g = gallery[int(gi)]
                w.writerow([q.path, q.pid, q.camid, r, g.path, g.pid, g.camid, f"{d:.6f}",
                            int(g.pid == q.pid)])
    return path


def format_table(rows: Dict[str, Dict[str, float]]) -> str:
    """Markdown table: one row per run/test set with mAP, rank-1/5/10 and mINP in percent."""
    head = "| run | mAP | rank-1 | rank-5 | rank-10 | mINP |\n|---|---:|---:|---:|---:|---:|"
    lines = [head]
    for name, m in rows.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{100 * m[k]:.1f}" for k in ("mAP", "rank1", "rank5", "rank10", "mINP")) + " |")
    return "\n".join(lines)
