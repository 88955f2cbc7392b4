"""Batch-hard triplet loss (Hermans et al. 2017)."""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ...registry import LOSSES
from ..output import ModelOutput


def pair_masks(targets: torch.Tensor):
    """(positives, negatives, valid anchors) of a batch's labels (B,): (B, B) masks of the
    other images of the same identity and of every other identity, and (B,) the anchors that
    have at least one of each."""
    same = targets[:, None] == targets[None, :]
    eye = torch.eye(len(targets), dtype=torch.bool, device=targets.device)
    pos, neg = same & ~eye, ~same
    return pos, neg, pos.any(1) & neg.any(1)


def batch_hard_triplet(
    features: torch.Tensor, targets: torch.Tensor, margin: float = 0.3, soft_margin: bool = False
) -> torch.Tensor:
    """For each anchor: hardest positive (farthest) and hardest negative (closest), Euclidean.

    features: (B, D); targets: (B,). Anchors with no positive or no negative are skipped.
    """
    dist = torch.cdist(features, features).clamp_min(1e-12)  # (B, B)
    pos_mask, neg_mask, valid = pair_masks(targets)
    if not valid.any():
        return features.sum() * 0.0
    d_ap = dist.masked_fill(~pos_mask, float("-inf")).amax(1)[valid]
    d_an = dist.masked_fill(~neg_mask, float("inf")).amin(1)[valid]
    if soft_margin:
        return F.softplus(d_ap - d_an).mean()
    return F.relu(d_ap - d_an + margin).mean()


def mean_over_metric_features(
    output: ModelOutput, loss: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Mean of ``loss`` over ``extras['triplet_features']`` (a list: MGN's global features) or
    else over ``[output.features]``: where every metric-learning loss reads its features."""
    feats = output.extras.get("triplet_features", [output.features])
    return torch.stack([loss(f) for f in feats]).mean()


@LOSSES.register("triplet")
class TripletLoss(nn.Module):
    """Batch-hard triplet on ``extras['triplet_features']`` (a list) or else on ``features``."""

    def __init__(self, margin: float = 0.3, soft_margin: bool = False) -> None:
        super().__init__()
        self.margin, self.soft_margin = margin, soft_margin

    @classmethod
    def from_config(cls, cfg: Any) -> TripletLoss:
        t = cfg.MODEL.LOSSES.TRIPLET
        return cls(margin=t.MARGIN, soft_margin=t.SOFT_MARGIN)

    @staticmethod
    def config_weight(cfg: Any) -> float:
        return cfg.MODEL.LOSSES.TRIPLET.WEIGHT

    def forward(self, output: ModelOutput, targets: torch.Tensor) -> torch.Tensor:
        return mean_over_metric_features(
            output, lambda f: batch_hard_triplet(f, targets, self.margin, self.soft_margin)
        )
