"""Rank-list images of a model on its test sets, without computing metrics
(``tools/visualize_ranks.py``)."""

from __future__ import annotations

import os
from typing import List, Optional, Sequence

from ..config import ConfigError
from ..data import build_test_loader
from ..errors import InputError
from ..utils.misc import resolve_device
from .run_folder import eval_dir
from .tasks import build_task


def rank_images(
    cfg,
    weights: Optional[str],
    out_dir: Optional[str] = None,
    topk: int = 10,
    num_queries: int = 10,
    query_indices: Optional[Sequence[int]] = None,
    progress: bool = True,
    order: str = "random",
) -> List[str]:
    """Rank-list images of ``weights`` (default ``MODEL.WEIGHTS``) on every ``DATASETS.TEST``
    set, into ``out_dir/<testset>/`` (default ``<eval_dir>/ranks``, where ``test_net --vis-ranks``
    draws for the same settings); no metrics computed."""
    from ..evaluation.evaluator import extract_query_gallery
    from ..evaluation.features import FeatureModel

    for name, flag, value in (
        ("topk", "--topk", topk),
        ("num_queries", "--num-queries", num_queries),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} ({flag}) is {value!r}; it must be a whole number >= 1")
    if cfg.TASK != "reid":
        raise ConfigError(f"rank lists need TASK reid (query and gallery); TASK is {cfg.TASK!r}")
    device = resolve_device(cfg.DEVICE)
    task = build_task(cfg)
    task.load_test()
    weights = weights or cfg.MODEL.WEIGHTS or None
    model = task.test_model(weights, device)
    out_dir = out_dir or os.path.join(eval_dir(cfg, weights), "ranks")
    paths: List[str] = []
    for ts in task.test_sets:
        feats = extract_query_gallery(
            FeatureModel.from_settings(model, task.settings),
            ts.query,
            ts.gallery,
            lambda items: build_test_loader(cfg, items),
            device,
            progress,
            ts.name,
        )
        paths += task.draw(
            ts,
            feats,
            os.path.join(out_dir, ts.name),
            topk,
            num_queries,
            list(query_indices) if query_indices is not None else None,
            order=order,
        )
    return paths
