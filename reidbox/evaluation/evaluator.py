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


def evaluate_model(model: nn.Module, query, gallery, make_loader, device: torch.device,
                   flip: bool = False, normalize: bool = True, protocol: str = "market1501",
                   metric: str = "euclidean", max_rank: int = 50, progress: bool = True,
                   name: Optional[str] = None, **kwargs) -> Metrics:
    """Extract query and gallery features with ``make_loader(items)`` and evaluate them."""
    items = list(query) + list(gallery)
    feats = extract_features(model, make_loader(items), device, flip, normalize,
                             desc=f"features {name or ''}".strip(), progress=progress)
    nq = len(query)
    return evaluate_features(feats[:nq], feats[nq:], [s.pid for s in query],
                             [s.pid for s in gallery], [s.camid for s in query],
                             [s.camid for s in gallery], protocol, metric, max_rank, **kwargs)


def format_table(rows: Dict[str, Dict[str, float]]) -> str:
    """Markdown table: one row per run/test set with mAP, rank-1/5/10 and mINP in percent."""
    head = "| run | mAP | rank-1 | rank-5 | rank-10 | mINP |\n|---|---:|---:|---:|---:|---:|"
    lines = [head]
    for name, m in rows.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{100 * m[k]:.1f}" for k in ("mAP", "rank1", "rank5", "rank10", "mINP")) + " |")
    return "\n".join(lines)
