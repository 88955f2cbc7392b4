"""A model on a query / gallery pair: extract features, then evaluate them (one result type,
:class:`~reidbox.evaluation.metrics.EvalResult`); plus the CSV writer of ranked lists."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..utils import distributed as du
from ..utils.misc import eval_mode
from ..utils.progress import progress as show_progress
from .features import FeatureModel
from .metrics import EvalResult
from .settings import EvalSettings
from .streaming import evaluate

logger = logging.getLogger("reidbox")


@torch.no_grad()
def extract_features(
    features: FeatureModel,
    loader,
    device: torch.device,
    desc: str = "features",
    progress: bool = True,
) -> torch.Tensor:
    """``features`` (a :class:`FeatureModel`: the model and its flip / normalisation rules)
    of every image in ``loader`` order: (N, D) float32 on the CPU. The model runs in eval mode;
    its train/eval mode is restored afterwards."""
    feats = []
    with eval_mode(features):
        for batch in show_progress(loader, desc, progress, unit="batches"):
            feats.append(features(batch["images"].to(device, non_blocking=True)).cpu())
    return torch.cat(feats) if feats else torch.zeros(0, 0)


@dataclass
class Features:
    """Query (Q, D) and gallery (G, D) features of one test set."""

    query: torch.Tensor
    gallery: torch.Tensor


def extract_query_gallery(
    features: FeatureModel,
    query: Sequence,
    gallery: Sequence,
    make_loader: Callable,
    device: torch.device,
    progress: bool = True,
    name: Optional[str] = None,
) -> Optional[Features]:
    """Query and gallery ``features`` (:func:`extract_features`) via ``make_loader(items)``.

    Under DDP every rank extracts a contiguous shard and rank 0 gathers them; the other ranks
    get None.
    """
    items = list(query) + list(gallery)
    rank, world = du.get_rank(), du.get_world_size()
    chunk = -(-len(items) // world)
    shard = items[rank * chunk : (rank + 1) * chunk]
    feats = extract_features(
        features,
        make_loader(shard),
        device,
        desc=f"features {name or ''}".strip(),
        progress=progress and rank == 0,
    )
    if world > 1:
        parts = du.all_gather_object(feats)
        if rank != 0:
            return None
        feats = torch.cat([p for p in parts if p.numel()])
    return Features(feats[: len(query)], feats[len(query) :])


def evaluate_features(
    feats: Features, query: Sequence, gallery: Sequence, settings: EvalSettings
) -> EvalResult:
    """The metrics of ``feats`` under ``settings`` (items carry ``pid`` and ``camid``);
    with ``settings.roc`` also the verification metrics, in ``result.verification``."""
    labels = (
        np.asarray([s.pid for s in query]),
        np.asarray([s.pid for s in gallery]),
        np.asarray([s.camid for s in query]),
        np.asarray([s.camid for s in gallery]),
    )
    result = evaluate(feats.query, feats.gallery, *labels, settings)
    if settings.roc:
        from .verification import verification_metrics

        v = verification_metrics(
            feats.query, feats.gallery, *labels, metric=settings.metric, protocol=settings.protocol
        )
        result.verification = v.as_dict()
    return result


def evaluate_model(
    model: nn.Module,
    query: Sequence,
    gallery: Sequence,
    make_loader: Callable,
    device: torch.device,
    settings: EvalSettings,
    progress: bool = True,
    name: Optional[str] = None,
) -> Tuple[EvalResult, Optional[Features]]:
    """Extract, then evaluate: ``(result, features)``.

    Under DDP rank 0 scores and the result is broadcast, so every rank returns the same
    result; the features come back on rank 0 only (None elsewhere).
    """
    features = FeatureModel.from_settings(model, settings)
    feats = extract_query_gallery(features, query, gallery, make_loader, device, progress, name)
    result = evaluate_features(feats, query, gallery, settings) if feats is not None else None
    if du.get_world_size() > 1:
        result = du.broadcast_object(result)
    return result, feats


def rank_items(
    feats: Features,
    query: Sequence,
    gallery: Sequence,
    topk: int,
    settings: EvalSettings,
    rows: Optional[Sequence[int]] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Top-``topk`` gallery indices and distances ((Q', k) each) of the queries ``rows``
    (default all), ranked as ``settings`` evaluates (protocol's junk rule, metric, backend,
    re-ranking): :func:`reidbox.retrieval.rank_lists` on the items' labels."""
    from ..retrieval import Labels, rank_lists

    rows = list(range(len(query))) if rows is None else list(rows)
    qs = [query[i] for i in rows]
    labels = Labels(
        q_pids=[q.pid for q in qs],
        g_pids=[g.pid for g in gallery],
        q_camids=[q.camid for q in qs],
        g_camids=[g.camid for g in gallery],
    )
    return rank_lists(feats.query[rows], feats.gallery, topk, settings.ranking(), labels)


RANK_LIST_COLUMNS = [
    "query_index",  # what visualize_ranks --queries takes
    "query",
    "query_pid",
    "query_camera",  # numbered from 1, as in the file names and the rank-list images
    "query_ap",  # the query's AP under the evaluation's protocol (empty: no valid match)
    "rank",
    "gallery",
    "gallery_pid",
    "gallery_camera",
    "distance",
    "same_identity",
]


def save_rank_lists(
    path: str,
    query: Sequence,
    gallery: Sequence,
    indices: np.ndarray,
    distances: np.ndarray,
    ap: Optional[np.ndarray] = None,
) -> str:
    """Per query, its ranked gallery images (``indices``/``distances`` (Q, k) of
    :func:`reidbox.retrieval.rank_lists`, -1 ends a short row) as CSV rows, rank 1 first
    (:data:`RANK_LIST_COLUMNS`; ``ap``: per-query AP, NaN where no valid match)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(RANK_LIST_COLUMNS)
        for qi, q in enumerate(query):
            q_ap = "" if ap is None or not np.isfinite(ap[qi]) else f"{float(ap[qi]):.6f}"
            for r, (gi, d) in enumerate(zip(indices[qi], distances[qi]), start=1):
                if gi < 0:
                    break
                g = gallery[int(gi)]
                w.writerow(
                    [
                        qi,
                        q.path,
                        q.pid,
                        q.camid + 1,
                        q_ap,
                        r,
                        g.path,
                        g.pid,
                        g.camid + 1,
                        f"{d:.6f}",
                        int(g.pid == q.pid),
                    ]
                )
    return path


def format_table(rows) -> str:
    """Markdown table: one row per run/test set with mAP, rank-1/5/10 and mINP in percent
    (``rows``: name -> headline dict)."""
    from ..utils.tables import markdown_table

    keys = ("mAP", "rank1", "rank5", "rank10", "mINP")
    return markdown_table(
        ["run", "mAP", "rank-1", "rank-5", "rank-10", "mINP"],
        [[name, *(f"{100 * m[k]:.1f}" for k in keys)] for name, m in rows.items()],
    )
